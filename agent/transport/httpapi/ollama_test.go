package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/ollama"
)

// fakeLoader counts the Ollama API's load and unload calls.
type fakeLoader struct {
	loaded         atomic.Bool
	loads, unloads atomic.Int32
	busy           bool // Unload refuses: a request holds the model
}

func (l *fakeLoader) Load(ctx context.Context) error {
	l.loads.Add(1)
	l.loaded.Store(true)
	return nil
}
func (l *fakeLoader) Loaded() bool { return l.loaded.Load() }
func (l *fakeLoader) Unload() bool {
	l.unloads.Add(1)
	if l.busy {
		return false
	}
	l.loaded.Store(false)
	return true
}

// ollamaReply is a chat or generate reply object as clients read it.
type ollamaReply struct {
	Model      string `json:"model"`
	CreatedAt  string `json:"created_at"`
	Message    *struct{ Role, Content string }
	Response   *string `json:"response"`
	Done       bool    `json:"done"`
	DoneReason string  `json:"done_reason"`
	Total      int64   `json:"total_duration"`
	PromptEval int     `json:"prompt_eval_count"`
	Eval       int     `json:"eval_count"`
	Error      string  `json:"error"`
	Hedge      *struct {
		Tier   agent.Tier `json:"tier"`
		Intent string     `json:"intent"`
		Format string     `json:"format"`
	} `json:"hedge"`
}

func serveOllama(t *testing.T, tr tiers, o Options) *running {
	t.Helper()
	return serve(t, o, newAgent(t, tr, nil))
}

func post(t *testing.T, r *running, path, body string) (*http.Response, string) {
	t.Helper()
	return do(t, http.MethodPost, r.URL()+path, "", body)
}

func decodeReply(t *testing.T, body string) ollamaReply {
	t.Helper()
	var rep ollamaReply
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("reply %q: %v", body, err)
	}
	return rep
}

// lines reads an NDJSON body.
func lines(t *testing.T, body string) []ollamaReply {
	t.Helper()
	var out []ollamaReply
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		out = append(out, decodeReply(t, sc.Text()))
	}
	return out
}

func TestOllamaModels(t *testing.T) {
	l := &fakeLoader{}
	r := serveOllama(t, defaultTiers(), Options{LocalModel: ollama.LocalModel{Name: "qwen-tiny", Size: 1234, Family: "qwen2"}, Loader: l})
	resp, body := do(t, http.MethodGet, r.URL()+"/api/tags", "", "")
	var tags struct {
		Models []struct {
			Name, Model, Digest string
			Size                int64
			Details             struct{ Format, Family string }
		}
	}
	if err := json.Unmarshal([]byte(body), &tags); err != nil || resp.StatusCode != 200 || len(tags.Models) != 4 {
		t.Fatalf("tags: %d %s (%v)", resp.StatusCode, body, err)
	}
	if m := tags.Models[3]; m.Name != "qwen-tiny:latest" || m.Size != 1234 || m.Details.Format != "gguf" || m.Details.Family != "qwen2" {
		t.Errorf("local model %+v", m)
	}
	if m := tags.Models[0]; m.Name != "hedge-auto:latest" || m.Size != 0 || len(m.Digest) != 64 {
		t.Errorf("preference %+v", m)
	}
	// /v1/models offers the same models.
	_, body = do(t, http.MethodGet, r.URL()+"/v1/models", "", "")
	if !strings.Contains(body, `"qwen-tiny"`) {
		t.Errorf("/v1/models lacks the local model: %s", body)
	}
	// ps lists the local model only while it is loaded.
	_, body = do(t, http.MethodGet, r.URL()+"/api/ps", "", "")
	if strings.Contains(body, "qwen-tiny") {
		t.Errorf("ps lists an unloaded model: %s", body)
	}
	l.loaded.Store(true)
	if _, body = do(t, http.MethodGet, r.URL()+"/api/ps", "", ""); !strings.Contains(body, "qwen-tiny") {
		t.Errorf("ps lacks the loaded model: %s", body)
	}
	if _, body = do(t, http.MethodGet, r.URL()+"/api/version", "", ""); body != `{"version":"`+ollama.APIVersion+`"}`+"\n" {
		t.Errorf("version %q", body)
	}
	resp, body = post(t, r, "/api/show", `{"model":"hedge-local"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"capabilities":["completion"]`) {
		t.Errorf("show: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, r, "/api/show", `{"name":"qwen-tiny:latest"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"family":"qwen2"`) {
		t.Errorf("show by the older name field: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, r, "/api/show", `{"model":"llama3"}`)
	if e := decodeReply(t, body); resp.StatusCode != 404 || !strings.Contains(e.Error, `"llama3" not found`) {
		t.Errorf("show unknown: %d %s", resp.StatusCode, body)
	}
}

func TestOllamaPull(t *testing.T) {
	r := serveOllama(t, defaultTiers(), Options{Pullable: func(n string) bool { return n == "qwen2.5-0.5b-instruct-q4_k_m" }})
	cases := []struct {
		body, want string
		status     int
	}{
		{`{"model":"hedge-auto","stream":false}`, `{"status":"success"}`, 200},
		{`{"model":"hedge-auto"}`, `{"status":"success"}`, 200},
		{`{"model":"qwen2.5-0.5b-instruct-q4_k_m"}`, "hedge models pull qwen2.5-0.5b-instruct-q4_k_m", 501},
		{`{"model":"llama3:8b"}`, "no such model", 404},
		{`{"model":"a\u001bb"}`, "control character", 400},
	}
	for _, c := range cases {
		resp, body := post(t, r, "/api/pull", c.body)
		if resp.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("pull %s: %d %s; want %d %q", c.body, resp.StatusCode, body, c.status, c.want)
		}
	}
}

func TestOllamaChat(t *testing.T) {
	tr := defaultTiers()
	r := serveOllama(t, tr, Options{})
	// Streamed by default: one chunk per token, then done with the counts.
	resp, body := post(t, r, "/api/chat", `{"model":"hedge-local","messages":[
		{"role":"system","content":"be brief"},
		{"role":"user","content":"tell me a story"},
		{"role":"assistant","content":"Which one?"},
		{"role":"user","content":"any story"}],"options":{"num_predict":4,"num_ctx":8192,"temperature":0.2},"keep_alive":-1}`)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
		t.Fatalf("chat: %d %s %s", resp.StatusCode, ct, body)
	}
	got := lines(t, body)
	if len(got) != 5 {
		t.Fatalf("%d lines, want 4 tokens and done:\n%s", len(got), body)
	}
	var text string
	for _, c := range got[:4] {
		if c.Done || c.Message == nil || c.Message.Role != "assistant" || c.Model != "hedge-local" || c.CreatedAt == "" {
			t.Fatalf("chunk %+v", c)
		}
		text += c.Message.Content
	}
	last := got[4]
	if text != "Once upon a time " || !last.Done || last.DoneReason != "length" || last.Total <= 0 || last.Hedge == nil || last.Hedge.Tier != agent.TierLLM {
		t.Errorf("text %q, final %+v", text, last)
	}
	q := tr.llm.last.Load()
	if q.System != "be brief" || len(q.History) != 1 || q.History[0].Answer != "Which one?" || q.Text != "any story" || q.MaxTokens != 4 {
		t.Errorf("query %+v", q)
	}

	// Not streamed: one object with the whole answer.
	resp, body = post(t, r, "/api/chat", `{"model":"hedge-auto","stream":false,"messages":[{"role":"user","content":"hello there"}]}`)
	rep := decodeReply(t, body)
	if resp.StatusCode != 200 || !rep.Done || rep.DoneReason != "stop" || rep.Message.Content != helloAnswer || rep.Hedge.Tier != agent.TierSLM || rep.Eval != 0 {
		t.Errorf("chat: %d %s", resp.StatusCode, body)
	}
}

// TestOllamaChatTools: a Home Assistant turn (tools offered, an assistant
// tool call and the tool's result last) is answered; the result is the
// question.
func TestOllamaChatTools(t *testing.T) {
	tr := defaultTiers()
	r := serveOllama(t, tr, Options{})
	resp, body := post(t, r, "/api/chat", `{"model":"hedge-local","stream":false,"keep_alive":"-1",
		"tools":[{"type":"function","function":{"name":"HassTurnOn","parameters":{"type":"object"}}}],
		"messages":[{"role":"user","content":"turn on the kitchen light"},
		{"role":"assistant","content":"","tool_calls":[{"function":{"name":"HassTurnOn","arguments":{"name":"kitchen"}}}]},
		{"role":"tool","content":"{\"success\":true}","tool_name":"HassTurnOn"}]}`)
	if resp.StatusCode != 200 || decodeReply(t, body).Message.Content == "" {
		t.Fatalf("tools chat: %d %s", resp.StatusCode, body)
	}
	q := tr.llm.last.Load()
	if q.Text != `Result of tool HassTurnOn: {"success":true}` || len(q.History) != 1 || q.History[0].Answer != `Called tool HassTurnOn({"name":"kitchen"})` {
		t.Errorf("query %+v", q)
	}
}

func TestOllamaGenerate(t *testing.T) {
	tr := defaultTiers()
	r := serveOllama(t, tr, Options{})
	resp, body := post(t, r, "/api/generate", `{"model":"hedge-local","prompt":"tell me a story","system":"you tell stories","stream":false}`)
	rep := decodeReply(t, body)
	if resp.StatusCode != 200 || rep.Response == nil || *rep.Response != llmAnswer || rep.Message != nil || !rep.Done {
		t.Fatalf("generate: %d %s", resp.StatusCode, body)
	}
	if q := tr.llm.last.Load(); q.System != "you tell stories" {
		t.Errorf("system %q", q.System)
	}
	_, body = post(t, r, "/api/generate", `{"model":"hedge-local","prompt":"tell me a story"}`)
	got := lines(t, body)
	if last := got[len(got)-1]; !last.Done || last.Response == nil || *last.Response != "" {
		t.Errorf("the final chunk must carry response \"\": %s", body)
	}
}

// TestOllamaFormat: a JSON answer (fenced or not) is sent as it is; one
// that is not JSON is sent as a JSON string, and the hedge object says so.
// Streamed, the answer comes as one chunk once checked.
func TestOllamaFormat(t *testing.T) {
	tr := defaultTiers()
	r := serveOllama(t, tr, Options{})
	for _, c := range []struct{ text, format, content, how string }{
		{`{"a": 1}`, `"json"`, `{"a": 1}`, "json"},
		{"```json\n[1, 2]\n```", `{"type":"array"}`, `[1, 2]`, "json"},
		{`Once upon a time`, `"json"`, `"Once upon a time"`, "wrapped"},
	} {
		tr.llm.text = c.text
		_, body := post(t, r, "/api/chat", `{"model":"hedge-local","stream":false,"format":`+c.format+`,"messages":[{"role":"user","content":"tell me a story"}]}`)
		rep := decodeReply(t, body)
		if rep.Message == nil || rep.Message.Content != c.content || rep.Hedge.Format != c.how || !json.Valid([]byte(rep.Message.Content)) {
			t.Errorf("%q: %s", c.text, body)
		}
		if q := tr.llm.last.Load(); !strings.Contains(q.System, "JSON") {
			t.Errorf("system prompt %q asks for no JSON", q.System)
		}
	}
	tr.llm.text = `{"b": 2}`
	_, body := post(t, r, "/api/generate", `{"model":"hedge-local","format":"json","prompt":"tell me a story"}`)
	if got := lines(t, body); len(got) != 2 || *got[0].Response != `{"b": 2}` || !got[1].Done {
		t.Errorf("streamed format reply:\n%s", body)
	}
}

// TestOllamaLoadUnload: the forms without a question load or unload the
// local model; keep_alive 0 with a question unloads it after answering.
func TestOllamaLoadUnload(t *testing.T) {
	l := &fakeLoader{}
	r := serveOllama(t, defaultTiers(), Options{Loader: l})
	_, body := post(t, r, "/api/generate", `{"model":"hedge-local"}`)
	if rep := decodeReply(t, body); rep.DoneReason != "load" || !rep.Done || *rep.Response != "" || l.loads.Load() != 1 {
		t.Errorf("load: %s (loads %d)", body, l.loads.Load())
	}
	_, body = post(t, r, "/api/generate", `{"model":"hedge-local","keep_alive":0}`)
	if rep := decodeReply(t, body); rep.DoneReason != "unload" || l.unloads.Load() != 1 || l.Loaded() {
		t.Errorf("unload: %s (unloads %d)", body, l.unloads.Load())
	}
	_, body = post(t, r, "/api/chat", `{"model":"hedge-local","messages":[],"keep_alive":"0s"}`)
	if rep := decodeReply(t, body); rep.DoneReason != "unload" || rep.Message == nil || l.unloads.Load() != 2 {
		t.Errorf("chat unload: %s", body)
	}
	post(t, r, "/api/chat", `{"model":"hedge-local","stream":false,"keep_alive":0,"messages":[{"role":"user","content":"hi"}]}`)
	if l.unloads.Load() != 3 {
		t.Errorf("keep_alive 0 with a question: %d unloads, want 3", l.unloads.Load())
	}
	l.busy = true
	resp, body := post(t, r, "/api/generate", `{"model":"hedge-local","keep_alive":0}`)
	if resp.StatusCode != http.StatusConflict || decodeReply(t, body).Error == "" {
		t.Errorf("unload while busy: %d %s", resp.StatusCode, body)
	}
}

// TestOllamaBadInput: every refusal is Ollama's {"error": "…"} with its
// status, never OpenAI's error object.
func TestOllamaBadInput(t *testing.T) {
	r := serve(t, Options{Token: "", MaxBodyBytes: 4096}, newAgent(t, defaultTiers(), nil))
	msg := func(n int) string {
		return `{"model":"hedge-auto","messages":[` + strings.TrimSuffix(strings.Repeat(`{"role":"user","content":"x"},`, n), ",") + `]}`
	}
	tools := `{"model":"hedge-auto","messages":[{"role":"user","content":"x"}],"tools":[` +
		strings.TrimSuffix(strings.Repeat(`{"type":"function","function":{"name":"f"}},`, ollama.MaxTools+1), ",") + `]}`
	cases := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/api/chat", `{"model":"hedge-auto","messages":"hi"}`, 400, `"messages" has the wrong type`},
		{"POST", "/api/chat", `{"model":"hedge-auto","stream":"yes","messages":[]}`, 400, `"stream" has the wrong type`},
		{"POST", "/api/chat", `{"model":"hedge-auto","options":{"num_predict":"5"},"messages":[]}`, 400, `"options.num_predict" has the wrong type`},
		{"POST", "/api/chat", `{"model":"hedge-auto","options":{"num_predict":-3},"messages":[{"role":"user","content":"x"}]}`, 400, "num_predict"},
		{"POST", "/api/chat", `{"model":"hedge-auto","keep_alive":"soon","messages":[]}`, 400, "keep_alive"},
		{"POST", "/api/chat", `{"model":"hedge-auto","format":"yaml","messages":[]}`, 400, "format"},
		{"POST", "/api/chat", `{"model":"hedge-auto","messages":[{"role":"robot","content":"x"}]}`, 400, `role "robot"`},
		{"POST", "/api/chat", `{"model":"hedge-auto","messages":[{"role":"user","content":"x","images":["aGk="]}]}`, 400, "images"},
		{"POST", "/api/chat", `{"model":"hedge-auto","messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"}]}`, 400, "last message"},
		{"POST", "/api/chat", `{"model":"hedge-auto","messages":[{"role":"user","content":"\u0000"}]}`, 400, "control character"},
		{"POST", "/api/chat", `{"model":"hedge\u0007auto","messages":[]}`, 400, "control character"},
		{"POST", "/api/chat", `{"model":"hedge-auto","messages":[{"role":"user","content":"x"}],"tools":[{"function":{"name":"a\nb"}}]}`, 400, "control character"},
		{"POST", "/api/chat", msg(ollama.MaxMessages + 1), 413, "larger than the limit"},
		{"POST", "/api/chat", `{"model":"gpt-4o","messages":[]}`, 404, `"gpt-4o" not found`},
		{"POST", "/api/chat", `{"messages":[]}`, 400, "model is required"},
		{"POST", "/api/chat", `[]`, 400, "expected a JSON object"},
		{"POST", "/api/chat", `{"model":"hedge-auto"} {}`, 400, "data after"},
		{"POST", "/api/generate", `{"model":"hedge-auto","prompt":"x","images":["aGk="]}`, 400, "images"},
		{"POST", "/api/generate", strings.Repeat(" ", 5000), 413, "larger than the limit"},
		{"GET", "/api/chat", ``, 405, "use POST"},
		{"POST", "/api/tags", `{}`, 405, "use GET"},
		{"POST", "/api/embed", `{}`, 404, "no such endpoint"},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, r.URL()+c.path, "", c.body)
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || resp.StatusCode != c.status || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s %.80s: %d %s; want %d %q", c.method, c.path, c.body, resp.StatusCode, body, c.status, c.want)
		}
	}
	// The message bound, in a body the limit lets through.
	big := serve(t, Options{}, newAgent(t, defaultTiers(), nil))
	resp, body := do(t, "POST", big.URL()+"/api/chat", "", msg(ollama.MaxMessages+1))
	if resp.StatusCode != 400 || !strings.Contains(body, "the limit is 1000") {
		t.Errorf("%d messages: %d %s", ollama.MaxMessages+1, resp.StatusCode, body)
	}
	resp, body = do(t, "POST", big.URL()+"/api/chat", "", tools)
	if resp.StatusCode != 400 || !strings.Contains(body, "the limit is 128") {
		t.Errorf("%d tools: %d %s", ollama.MaxTools+1, resp.StatusCode, body)
	}
	// Still serving.
	if resp, body := post(t, r, "/api/chat", `{"model":"hedge-auto","stream":false,"messages":[{"role":"user","content":"hello"}]}`); resp.StatusCode != 200 {
		t.Errorf("after bad input: %d %s", resp.StatusCode, body)
	}
}

// TestOllamaToken: with a token set, /api/… needs it too, and says so in
// Ollama's error shape; the dashboard's /api/status stays its own.
func TestOllamaToken(t *testing.T) {
	r := serve(t, Options{Token: testToken}, newAgent(t, defaultTiers(), nil))
	resp, body := do(t, http.MethodGet, r.URL()+"/api/tags", "", "")
	var e struct{ Error string }
	if json.Unmarshal([]byte(body), &e); resp.StatusCode != 401 || !strings.Contains(e.Error, "bearer token") {
		t.Errorf("no token: %d %s", resp.StatusCode, body)
	}
	if resp, body = do(t, http.MethodGet, r.URL()+"/api/tags", testToken, ""); resp.StatusCode != 200 {
		t.Errorf("token: %d %s", resp.StatusCode, body)
	}
	if resp, body = do(t, http.MethodGet, r.URL()+"/api/status", testToken, ""); resp.StatusCode != 200 || !strings.Contains(body, `"parts"`) {
		t.Errorf("/api/status: %d %.200s", resp.StatusCode, body)
	}
}
