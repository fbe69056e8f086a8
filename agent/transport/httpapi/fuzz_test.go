package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/chat"
)

// FuzzParseChat feeds arbitrary bodies to the chat completions decoder.
// Each is refused with an OpenAI error object a client can read (400
// bad_request naming the param, or 404 model_not_found), or gives a
// preference and a UTF-8 question that the agent then validates like any
// other. A client's question, as an OpenAI SDK encodes it (a string or text
// parts), comes through unchanged.
func FuzzParseChat(f *testing.F) {
	f.Add([]byte(`{"model":"hedge-auto","messages":[{"role":"user","content":"hi"}]}`), "what time is it")
	limits := agent.Limits{MaxQueryBytes: 256, MaxTokens: 4096}
	f.Fuzz(func(t *testing.T, body []byte, content string) {
		req, prefer, text, perr := parseChat(chat.NewCatalog(""), body)
		if perr != nil {
			checkChatError(t, body, perr)
		} else {
			if p, ok := chat.NewCatalog("").Find(req.Model); !ok || p.Prefer != prefer || !prefer.Valid() {
				t.Fatalf("parseChat(%q): model %q gave preference %q", body, req.Model, prefer)
			}
			last := req.Messages[len(req.Messages)-1]
			if !utf8.ValidString(text) || last.Role != "user" || req.N != nil && *req.N != 1 || req.MaxTokens < 0 || req.MaxCompletionTokens < 0 {
				t.Fatalf("parseChat(%q) accepted %+v with text %q", body, req, text)
			}
			q := agent.Query{Text: text, Prefer: prefer, MaxTokens: max(req.MaxTokens, req.MaxCompletionTokens)}
			if e := q.Validate(limits); e != nil && e.Code != agent.CodeBadRequest && e.Code != agent.CodeTooLarge {
				t.Fatalf("Validate of %q's query: %v", body, e)
			}
		}

		if !utf8.ValidString(content) {
			return
		}
		parts := []map[string]string{{"type": "text", "text": content}}
		for _, c := range []any{content, parts} {
			b, err := json.Marshal(map[string]any{
				"model": "hedge-local", "temperature": 0.2,
				"messages": []map[string]any{{"role": "system", "content": "be brief"}, {"role": "user", "content": c}},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, prefer, text, perr := parseChat(chat.NewCatalog(""), b)
			if perr != nil || prefer != agent.PreferLocal || text != content {
				t.Fatalf("parseChat(%s) = %q, %q, %+v; want %q", b, prefer, text, perr, content)
			}
		}
	})
}

// checkChatError asserts what a refusal of parseChat may be, and that the
// reply written for it is an OpenAI error object carrying it.
func checkChatError(t *testing.T, body []byte, perr *requestError) {
	t.Helper()
	switch {
	case perr.Status == http.StatusNotFound && (perr.Code != "model_not_found" || perr.Param != "model"),
		perr.Status == http.StatusBadRequest && perr.Code != string(agent.CodeBadRequest),
		perr.Status != http.StatusNotFound && perr.Status != http.StatusBadRequest:
		t.Fatalf("parseChat(%q): status %d code %q param %q", body, perr.Status, perr.Code, perr.Param)
	case perr.Msg == "" || !utf8.ValidString(perr.Msg):
		t.Fatalf("parseChat(%q): message %q", body, perr.Msg)
	}
	switch perr.Param {
	case "", "model", "n", "max_tokens", "messages":
	default:
		t.Fatalf("parseChat(%q): param %q", body, perr.Param)
	}
	w := httptest.NewRecorder()
	writeError(w, perr.Status, typeInvalidRequest, perr.Code, perr.Msg, perr.Param)
	var reply errorReply
	if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil || w.Code != perr.Status ||
		reply.Error.Message != perr.Msg || reply.Error.Code != perr.Code || (reply.Error.Param == nil) != (perr.Param == "") {
		t.Fatalf("error reply for %q: %d %s (%v)", body, w.Code, w.Body.Bytes(), err)
	}
}
