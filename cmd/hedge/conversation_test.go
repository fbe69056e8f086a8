package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
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
