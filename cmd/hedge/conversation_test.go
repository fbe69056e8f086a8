package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/gguf"
)

// TestE2EConversationEveryTransport: a five-turn conversation over the
// socket, one over MQTT and one over HTTP, against the real binary with the
// trained SLM and stories260K. Each keeps its turns (whichever tier
// answered), each is scoped to its caller, and the socket's conversation
// survives a restart; `hedge conversation show|rm` reads and forgets it.
func TestE2EConversationEveryTransport(t *testing.T) {
	h := startBadHedge(t)
	texts := []string{"hello", "tell me a story about a dog", "and then what happened?", "why did he do that?", "how did it end?"}
	for i, text := range texts {
		a := h.ask(t, agent.Query{ID: fmt.Sprint("s", i), Text: text, Conversation: "kitchen"})
		if a.Error != nil {
			t.Fatalf("socket turn %d: %+v", i+1, a)
		}
		if i > 0 && a.Tier == agent.TierCache {
			t.Fatalf("socket turn %d answered from the cache: %+v", i+1, a)
		}
	}
	b := newBadClient(t, h.broker.URL)
	for i, text := range []string{"hello", "tell me a story", "and then?"} {
		b.publish(t, fmt.Sprintf(`{"id":"m%d","text":%q,"conversation":"kitchen","reply_to":"conv/reply"}`, i, text))
		m := b.take(t, "a reply", func(m badMsg) bool { return m.topic == "conv/reply" })
		var a agent.Answer
		if err := json.Unmarshal(m.payload, &a); err != nil || a.Error != nil || a.ID != fmt.Sprint("m", i) {
			t.Fatalf("mqtt turn %d: %s (%v)", i+1, m.payload, err)
		}
	}
	for i, text := range []string{"hello", "tell me a story"} {
		body := fmt.Sprintf(`{"model":"hedge-local","conversation":"kitchen","messages":[{"role":"user","content":%q}]}`, text)
		resp, err := http.Post(h.httpURL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("http turn %d: %v %v", i+1, resp, err)
		}
		resp.Body.Close()
	}
	// The socket's conversation holds its five turns only: the MQTT and
	// HTTP callers' "kitchen" are conversations of their own.
	turns := showConversation(t, h.socket, "kitchen")
	if len(turns) != 5 || turns[0].Tier != agent.TierSLM || turns[1].Tier != agent.TierLLM || turns[4].User != texts[4] {
		t.Fatalf("socket conversation %+v, want the five turns, slm then llm", turns)
	}
	if strings.Contains(h.logs.String(), "story about a dog") {
		t.Fatal("query text in the info log")
	}
	// A restart keeps it.
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	h.waitExit(t, 30*time.Second)
	p := launch(t, h.state+"/config.yaml")
	p.state, p.socket = h.state, h.socket
	p.waitListening(t)
	if again := showConversation(t, p.socket, "kitchen"); len(again) != 5 {
		t.Fatalf("after a restart the conversation has %d turns, want 5", len(again))
	}
	a := p.ask(t, agent.Query{ID: "s6", Text: "and what did I ask first?", Conversation: "kitchen"})
	if a.Error != nil || a.HistoryTruncated {
		t.Fatalf("sixth turn after the restart: %+v", a)
	}
	out, err := exec.Command(hedgeBinary(t), "conversation", "rm", "--socket", p.socket, "kitchen").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "deleted" {
		t.Fatalf("conversation rm: %s %v", out, err)
	}
	if gone := showConversation(t, p.socket, "kitchen"); len(gone) != 0 {
		t.Fatalf("a deleted conversation has %d turns", len(gone))
	}
}

// showConversation runs `hedge conversation show --json ID`.
func showConversation(t *testing.T, socket, id string) []agent.Turn {
	t.Helper()
	out, err := exec.Command(hedgeBinary(t), "conversation", "show", "--json", "--socket", socket, id).Output()
	if err != nil {
		t.Fatalf("conversation show: %v\n%s", err, out)
	}
	var a agent.Answer
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("conversation show printed %q: %v", out, err)
	}
	return a.Turns
}

// TestE2EConversationRealTokenizer holds conversations on every transport
// with a model under Llama 3's real tokenizer and chat template (random
// weights: scripts/fetch-tokenizers.sh's vocabulary), and reads what the
// LLM was given from its own token counts (usage). Each turn's prompt
// starts with the whole previous prompt, so the history was rendered and
// reused as it stood (cached_tokens ≥ the last prompt_tokens); the first
// turn of another conversation, or of the same id on another transport,
// is as long as a lone question's: nothing leaks in.
func TestE2EConversationRealTokenizer(t *testing.T) {
	v, err := gguf.Llama3Vocab(gguf.TokenizerDir(gguf.Llama3TokenizerJS))
	if err != nil {
		t.Fatalf("%v (scripts/fetch-tokenizers.sh fetches it)", err)
	}
	model := filepath.Join(t.TempDir(), "llama3-chat.gguf")
	shape := gguf.Shape{Name: "llama3-chat-test", Embd: 32, Layers: 1, Heads: 2, HeadsKV: 1, FFN: 64, Context: 2048, RopeBase: 500000, NormEpsilon: 1e-5}
	if err := (gguf.Fixture{Shape: shape, Type: gguf.F32, Seed: 7, Vocab: &v}).Write(model); err != nil {
		t.Fatal(err)
	}
	// Greedy: the same answers every run. No cache: a first turn, which
	// the cache may answer, is compared with another transport's.
	h := startBadHedgeWith(t, model, "  max_tokens: 8\n  temperature: 0\ncache:\n  enabled: false\n")
	texts := []string{"write a poem about the sea", "make it shorter", "now one about a river", "and a mountain?", "which of them was best?"}
	var socket []*agent.Usage
	for i, text := range texts {
		a := h.ask(t, agent.Query{ID: fmt.Sprint("s", i), Text: text, Conversation: "kitchen"})
		socket = append(socket, llmUsage(t, "socket turn "+fmt.Sprint(i+1), a))
	}
	followsOn(t, "socket", socket)
	// Another conversation of the same caller starts afresh.
	lone := llmUsage(t, "socket, conversation garden", h.ask(t, agent.Query{ID: "g0", Text: texts[1], Conversation: "garden"}))
	if lone.CachedTokens != 0 || lone.PromptTokens >= socket[1].PromptTokens {
		t.Errorf("conversation garden's first turn %+v: it holds kitchen's history (kitchen turn 2 %+v)", lone, socket[1])
	}
	b := newBadClient(t, h.broker.URL)
	var mqttTurns []*agent.Usage
	for i, text := range texts[:3] {
		b.publish(t, fmt.Sprintf(`{"id":"m%d","text":%q,"conversation":"kitchen","reply_to":"conv/reply"}`, i, text))
		m := b.take(t, "a reply", func(m badMsg) bool { return m.topic == "conv/reply" })
		var a agent.Answer
		if err := json.Unmarshal(m.payload, &a); err != nil || a.ID != fmt.Sprint("m", i) {
			t.Fatalf("mqtt turn %d: %s (%v)", i+1, m.payload, err)
		}
		mqttTurns = append(mqttTurns, llmUsage(t, "mqtt turn "+fmt.Sprint(i+1), a))
	}
	followsOn(t, "mqtt", mqttTurns)
	if mqttTurns[0].PromptTokens != socket[0].PromptTokens || mqttTurns[0].CachedTokens != 0 {
		t.Errorf("MQTT's kitchen turn 1 %+v, the socket's %+v: the same lone question must make the same fresh prompt", mqttTurns[0], socket[0])
	}
	// OpenAI clients send the history in messages.
	first := chatUsage(t, h.httpURL, `[{"role":"user","content":"write a poem about the sea"}]`)
	if first.PromptTokens != socket[0].PromptTokens {
		t.Errorf("HTTP's lone question: %d prompt tokens, the socket's %d", first.PromptTokens, socket[0].PromptTokens)
	}
	second := chatUsage(t, h.httpURL, `[{"role":"user","content":"write a poem about the sea"},{"role":"assistant","content":"The sea."},{"role":"user","content":"make it shorter"}]`)
	if second.PromptTokens <= first.PromptTokens+2 {
		t.Errorf("HTTP with history: %d prompt tokens, the lone question %d: the history is missing", second.PromptTokens, first.PromptTokens)
	}
}

// llmUsage is a's usage; a must be a generated answer.
func llmUsage(t *testing.T, what string, a agent.Answer) *agent.Usage {
	t.Helper()
	if a.Error != nil || a.Tier != agent.TierLLM || a.Usage == nil || a.Usage.PromptTokens == 0 || a.HistoryTruncated {
		t.Fatalf("%s: %+v, want an LLM answer with its usage and the whole history", what, a)
	}
	return a.Usage
}

// followsOn checks that every turn's prompt began with the previous one.
func followsOn(t *testing.T, transport string, turns []*agent.Usage) {
	t.Helper()
	for i := 1; i < len(turns); i++ {
		prev, u := turns[i-1], turns[i]
		if u.PromptTokens <= prev.PromptTokens+prev.CompletionTokens || u.CachedTokens < prev.PromptTokens {
			t.Errorf("%s turn %d: %+v after %+v: its prompt must begin with the previous one's, answer and all, and reuse it", transport, i+1, u, prev)
		}
	}
}

// chatUsage posts messages to /v1/chat/completions and returns its usage.
func chatUsage(t *testing.T, base, messages string) agent.Usage {
	t.Helper()
	body := `{"model":"hedge-local","messages":` + messages + `}`
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct {
		Usage *agent.Usage `json:"usage"`
		Hedge struct {
			Tier agent.Tier `json:"tier"`
		} `json:"hedge"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != 200 || c.Usage == nil || c.Hedge.Tier != agent.TierLLM {
		t.Fatalf("chat completion: status %d, %+v (%v)", resp.StatusCode, c, err)
	}
	return *c.Usage
}
