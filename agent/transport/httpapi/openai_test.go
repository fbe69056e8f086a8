package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
)

func client(r *running, token string) *openai.Client {
	cfg := openai.DefaultConfig(token)
	cfg.BaseURL = r.URL() + "/v1"
	return openai.NewClientWithConfig(cfg)
}

func userMsg(text string) []openai.ChatCompletionMessage {
	return []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: "You are a helpful assistant."},
		{Role: openai.ChatMessageRoleUser, Content: "an earlier question"},
		{Role: openai.ChatMessageRoleAssistant, Content: "an earlier answer"},
		{Role: openai.ChatMessageRoleUser, Content: text},
	}
}

// hedgeOf reads the hedge object of a raw completion.
func hedgeOf(t *testing.T, raw string) Info {
	t.Helper()
	var v struct {
		Hedge *Info `json:"hedge"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil || v.Hedge == nil {
		t.Fatalf("no hedge object in %s (%v)", raw, err)
	}
	return *v.Hedge
}

func TestModelsList(t *testing.T) {
	r := serve(t, Options{}, newAgent(t, defaultTiers(), nil))
	l, err := client(r, "").ListModels(context.Background())
	if err != nil {
		t.Fatalf("ListModels: %v", err)
	}
	var ids []string
	for _, m := range l.Models {
		ids = append(ids, m.ID)
		if m.Object != "model" || m.OwnedBy != "hedge" {
			t.Errorf("model %+v: want object model, owned_by hedge", m)
		}
	}
	if strings.Join(ids, ",") != "hedge-auto,hedge-local,hedge-cloud" {
		t.Fatalf("models = %v", ids)
	}
	m, err := client(r, "").GetModel(context.Background(), "hedge-local")
	if err != nil || m.ID != "hedge-local" {
		t.Fatalf("GetModel = %+v, %v", m, err)
	}
	_, err = client(r, "").GetModel(context.Background(), "gpt-4o")
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Fatalf("GetModel(gpt-4o) = %v, want 404 model_not_found", err)
	}
}

func TestChatCompletionEachModel(t *testing.T) {
	r := serve(t, Options{}, newAgent(t, defaultTiers(), nil))
	cases := []struct {
		model, text, answer string
		tier                agent.Tier
		intent              string
		conf                float64
		tierModel           string
	}{
		{"hedge-auto", "hello there", helloAnswer, agent.TierSLM, "greeting", 0.93, "fake-slm"},
		{"hedge-local", "tell me a story", llmAnswer, agent.TierLLM, "weather", 0.21, "fake-llm-q4"},
		{"hedge-cloud", "what is the tallest mountain?", cloudAnswer, agent.TierCloud, "weather", 0.21, "fake-cloud-4o"},
		{"hedge-auto", "what is the tallest mountain?", cloudAnswer, agent.TierCloud, "weather", 0.21, "fake-cloud-4o"},
	}
	for _, c := range cases {
		t.Run(c.model+"/"+c.text, func(t *testing.T) {
			resp, err := client(r, "").CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
				Model: c.model, Messages: userMsg(c.text), Temperature: 0.2, MaxTokens: 64,
			})
			if err != nil {
				t.Fatalf("CreateChatCompletion: %v", err)
			}
			if resp.Object != "chat.completion" || !strings.HasPrefix(resp.ID, "chatcmpl-") || resp.Model != c.model || resp.Created == 0 {
				t.Errorf("envelope = id %q object %q model %q created %d", resp.ID, resp.Object, resp.Model, resp.Created)
			}
			if len(resp.Choices) != 1 {
				t.Fatalf("choices = %d, want 1", len(resp.Choices))
			}
			ch := resp.Choices[0]
			if ch.Message.Role != "assistant" || ch.Message.Content != c.answer || ch.FinishReason != openai.FinishReasonStop {
				t.Errorf("choice = %+v, want assistant %q stop", ch, c.answer)
			}
		})
	}
	// The hedge object, read raw: go-openai does not know it.
	for _, c := range cases {
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}]}`, c.model, c.text)
		resp, raw := do(t, "POST", r.URL()+"/v1/chat/completions", "", body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", c.model, resp.StatusCode, raw)
		}
		h := hedgeOf(t, raw)
		if h.Tier != c.tier || h.Intent != c.intent || h.Confidence != c.conf || h.Model != c.tierModel || h.Queued || h.Degraded != "" || h.LatencyMS <= 0 {
			t.Errorf("%s %q: hedge = %+v", c.model, c.text, h)
		}
	}
}

func TestChatCompletionStream(t *testing.T) {
	r := serve(t, Options{}, newAgent(t, defaultTiers(), nil))
	for _, c := range []struct{ model, text, answer string }{
		{"hedge-local", "tell me a story", llmAnswer},
		{"hedge-cloud", "what is the tallest mountain?", cloudAnswer},
		{"hedge-auto", "hello", helloAnswer},
	} {
		t.Run(c.model, func(t *testing.T) {
			st, err := client(r, "").CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
				Model: c.model, Messages: userMsg(c.text),
			})
			if err != nil {
				t.Fatalf("CreateChatCompletionStream: %v", err)
			}
			defer st.Close()
			var text strings.Builder
			var chunks int
			var role string
			var finish openai.FinishReason
			id := ""
			for {
				ch, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Recv: %v", err)
				}
				chunks++
				if id == "" {
					id = ch.ID
				}
				if ch.ID != id || ch.Object != "chat.completion.chunk" || ch.Model != c.model {
					t.Errorf("chunk envelope = %q %q %q", ch.ID, ch.Object, ch.Model)
				}
				if len(ch.Choices) != 1 {
					t.Fatalf("chunk choices = %d", len(ch.Choices))
				}
				if ch.Choices[0].Delta.Role != "" {
					role = ch.Choices[0].Delta.Role
				}
				text.WriteString(ch.Choices[0].Delta.Content)
				if ch.Choices[0].FinishReason != "" {
					finish = ch.Choices[0].FinishReason
				}
			}
			if text.String() != c.answer || role != "assistant" || finish != openai.FinishReasonStop {
				t.Fatalf("streamed %q role %q finish %q, want %q assistant stop", text.String(), role, finish, c.answer)
			}
			if c.model == "hedge-local" && chunks < len(strings.Fields(c.answer)) {
				t.Errorf("local answer came in %d chunks, want one per word", chunks)
			}
		})
	}
}

// TestFinishReasonLength: an answer cut at max_tokens has finish_reason
// "length", plain and streamed, also when the cache (bbolt) serves it; one
// that ended on its own, and a template, which is never cut, have "stop".
func TestFinishReasonLength(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr := defaultTiers()
	tr.cache = st
	r := serve(t, Options{}, newAgent(t, tr, nil))
	for _, c := range []struct {
		model, text, answer string
		max                 int
		finish              openai.FinishReason
	}{
		{"hedge-local", "tell me a story", "Once upon a ", 3, openai.FinishReasonLength},
		{"hedge-local", "tell me a story", llmAnswer, 64, openai.FinishReasonStop},
		{"hedge-cloud", "what is the tallest mountain?", "The cloud ", 2, openai.FinishReasonLength},
		{"hedge-auto", "hello", helloAnswer, 1, openai.FinishReasonStop},
	} {
		// One message: a first turn, which the cache may answer.
		req := openai.ChatCompletionRequest{Model: c.model, Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: c.text}}, MaxTokens: c.max}
		// Plain (the tier answers), then streamed (the cache answers).
		resp, err := client(r, "").CreateChatCompletion(context.Background(), req)
		if err != nil || resp.Choices[0].Message.Content != c.answer || resp.Choices[0].FinishReason != c.finish {
			t.Errorf("%s max_tokens %d: %+v, %v; want %q %s", c.model, c.max, resp.Choices, err, c.answer, c.finish)
		}
		req.Stream = true
		s, err := client(r, "").CreateChatCompletionStream(context.Background(), req)
		if err != nil {
			t.Fatalf("CreateChatCompletionStream: %v", err)
		}
		text, finish, err := streamedFinish(s)
		s.Close()
		if err != nil || text != c.answer || finish != c.finish {
			t.Errorf("%s max_tokens %d streamed: %q %s, %v; want %q %s", c.model, c.max, text, finish, err, c.answer, c.finish)
		}
	}
	body := `{"model":"hedge-local","max_tokens":3,"messages":[{"role":"user","content":"tell me a story"}]}`
	if _, raw := do(t, "POST", r.URL()+"/v1/chat/completions", "", body); hedgeOf(t, raw).Tier != agent.TierCache || !strings.Contains(raw, `"finish_reason":"length"`) {
		t.Errorf("a cached cut answer: %s", raw)
	}
}

// streamedFinish reads a stream to its end and returns the text of its
// deltas and its finish_reason.
func streamedFinish(st *openai.ChatCompletionStream) (string, openai.FinishReason, error) {
	var text strings.Builder
	var finish openai.FinishReason
	for {
		ch, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return text.String(), finish, nil
		}
		if err != nil {
			return text.String(), finish, err
		}
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
			if ch.Choices[0].FinishReason != "" {
				finish = ch.Choices[0].FinishReason
			}
		}
	}
}

// TestStreamFraming reads the raw bytes: OpenAI's SSE framing, one event
// per token, and the hedge object on the last chunk.
func TestStreamFraming(t *testing.T) {
	r := serve(t, Options{}, newAgent(t, defaultTiers(), nil))
	resp, raw := do(t, "POST", r.URL()+"/v1/chat/completions", "",
		`{"model":"hedge-local","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"tell me"},{"type":"text","text":"a story"}]}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q", cc)
	}
	if !strings.HasSuffix(raw, "data: [DONE]\n\n") {
		t.Fatalf("stream does not end with data: [DONE]: %q", raw[max(0, len(raw)-80):])
	}
	events := strings.Split(strings.TrimSuffix(raw, "\n\n"), "\n\n")
	if events[len(events)-1] != "data: [DONE]" {
		t.Fatalf("last event %q", events[len(events)-1])
	}
	events = events[:len(events)-1]
	// role chunk + one per word + final chunk
	if want := 2 + len(strings.Fields(llmAnswer)); len(events) != want {
		t.Fatalf("%d events, want %d: %q", len(events), want, raw)
	}
	var text strings.Builder
	for i, ev := range events {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("event %d is not one data line: %q", i, ev)
		}
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta        map[string]string `json:"delta"`
				FinishReason *string           `json:"finish_reason"`
			} `json:"choices"`
			Hedge *Info `json:"hedge"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, data)
		}
		if c.Object != "chat.completion.chunk" || len(c.Choices) != 1 {
			t.Fatalf("event %d: %s", i, data)
		}
		text.WriteString(c.Choices[0].Delta["content"])
		last := i == len(events)-1
		if last != (c.Choices[0].FinishReason != nil) || last != (c.Hedge != nil) {
			t.Errorf("event %d (last %v): finish_reason/hedge misplaced: %s", i, last, data)
		}
		if i == 0 && c.Choices[0].Delta["role"] != "assistant" {
			t.Errorf("first event has no assistant role: %s", data)
		}
		if last && (c.Hedge.Tier != agent.TierLLM || c.Hedge.Model != "fake-llm-q4" || *c.Choices[0].FinishReason != "stop") {
			t.Errorf("final chunk = %s", data)
		}
	}
	if text.String() != llmAnswer {
		t.Fatalf("streamed text %q, want %q", text.String(), llmAnswer)
	}
}

// TestStreamArrivesBeforeAnswerEnds proves tokens are flushed as produced:
// the first word is read while the generator is still held.
func TestStreamArrivesBeforeAnswerEnds(t *testing.T) {
	tr := defaultTiers()
	tr.llm.gate = make(chan struct{})
	r := serve(t, Options{}, newAgent(t, tr, nil))
	req, _ := http.NewRequest("POST", r.URL()+"/v1/chat/completions",
		strings.NewReader(`{"model":"hedge-local","stream":true,"messages":[{"role":"user","content":"tell me a story"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var got []string
	for len(got) < 2 { // role chunk, first word
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read while the generator is held: %v (got %q)", err, got)
		}
		if strings.HasPrefix(line, "data: ") {
			got = append(got, line)
		}
	}
	if !strings.Contains(got[1], `"content":"Once "`) {
		t.Fatalf("second event %q, want the first word", got[1])
	}
	close(tr.llm.gate)
	rest, err := io.ReadAll(br)
	if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Fatalf("rest of stream: %v %q", err, rest)
	}
}

func TestStreamErrors(t *testing.T) {
	tr := defaultTiers()
	tr.llm.failAfter = 3
	r := serve(t, Options{}, newAgent(t, tr, nil))

	// After tokens went out the error is an event the client reports.
	st, err := client(r, "").CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
		Model: "hedge-local", Messages: userMsg("tell me a story"),
	})
	if err != nil {
		t.Fatalf("CreateChatCompletionStream: %v", err)
	}
	defer st.Close()
	text, err := streamed(st)
	if err == nil || !strings.Contains(err.Error(), "generator crashed mid-answer") {
		t.Fatalf("Recv = %v after %q, want the generator's error", err, text)
	}
	if text != "Once upon a " {
		t.Errorf("text before the error = %q", text)
	}

	// Before any token it is an ordinary HTTP error with its status.
	_, err = client(r, "").CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
		Model: "hedge-auto", Messages: userMsg(strings.Repeat("x", 2000)),
	})
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 413 || apiErr.Code != "too_large" {
		t.Fatalf("oversize streamed query = %v, want 413 too_large", err)
	}
}

func TestNoTierAnswers503(t *testing.T) {
	r := serve(t, Options{}, newAgent(t, tiers{}, nil))
	resp, raw := do(t, "POST", r.URL()+"/v1/chat/completions", "", `{"model":"hedge-auto","messages":[{"role":"user","content":"what is the weather"}]}`)
	if resp.StatusCode != 503 || !strings.Contains(raw, `"code":"no_tier"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d %s, want 503 no_tier with Retry-After", resp.StatusCode, raw)
	}
	// A greeting still works: the SLM is there.
	resp, raw = do(t, "POST", r.URL()+"/v1/chat/completions", "", `{"model":"hedge-cloud","messages":[{"role":"user","content":"hello"}]}`)
	if resp.StatusCode != 200 || hedgeOf(t, raw).Tier != agent.TierSLM {
		t.Fatalf("hello with no cloud: %d %s", resp.StatusCode, raw)
	}
}

func TestBadRequests(t *testing.T) {
	r := serve(t, Options{MaxBodyBytes: 4096}, newAgent(t, defaultTiers(), nil))
	url := r.URL() + "/v1/chat/completions"
	cases := []struct {
		name, method, path, body string
		status                   int
		code, param, msg         string
	}{
		{"not json", "POST", url, `hello`, 400, "bad_request", "", "syntax error"},
		{"truncated", "POST", url, `{"model":"hedge-auto","messages":[`, 400, "bad_request", "", "truncated JSON"},
		{"empty body", "POST", url, ``, 400, "bad_request", "", "body is empty"},
		{"trailing data", "POST", url, `{"model":"hedge-auto","messages":[{"role":"user","content":"hi"}]} {}`, 400, "bad_request", "", "after the JSON object"},
		{"wrong type", "POST", url, `{"model":"hedge-auto","messages":"hi"}`, 400, "bad_request", "", `"messages"`},
		{"array body", "POST", url, `[1,2]`, 400, "bad_request", "", "expected a JSON object"},
		{"no model", "POST", url, `{"messages":[{"role":"user","content":"hi"}]}`, 400, "bad_request", "model", "model is missing"},
		{"unknown model", "POST", url, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found", "model", `"gpt-4o" does not exist`},
		{"no messages", "POST", url, `{"model":"hedge-auto","messages":[]}`, 400, "bad_request", "messages", "messages is empty"},
		{"last not user", "POST", url, `{"model":"hedge-auto","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`, 400, "bad_request", "messages", `role "assistant"`},
		{"image part", "POST", url, `{"model":"hedge-auto","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "bad_request", "messages", "text only"},
		{"null content", "POST", url, `{"model":"hedge-auto","messages":[{"role":"user","content":null}]}`, 400, "bad_request", "messages", "no content"},
		{"blank text", "POST", url, `{"model":"hedge-auto","messages":[{"role":"user","content":"   "}]}`, 400, "bad_request", "", "text is empty"},
		{"n=2", "POST", url, `{"model":"hedge-auto","n":2,"messages":[{"role":"user","content":"hi"}]}`, 400, "bad_request", "n", "one answer"},
		{"negative max_tokens", "POST", url, `{"model":"hedge-auto","max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}`, 400, "bad_request", "max_tokens", "negative"},
		{"max_tokens over limit", "POST", url, `{"model":"hedge-auto","max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}`, 400, "bad_request", "", "above the limit"},
		{"invalid utf-8", "POST", url, "{\"model\":\"hedge-auto\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", 400, "bad_request", "", "UTF-8"},
		{"body too large", "POST", url, `{"model":"hedge-auto","messages":[{"role":"user","content":"` + strings.Repeat("a", 5000) + `"}]}`, 413, "too_large", "", "4096 bytes"},
		{"text too large", "POST", url, `{"model":"hedge-auto","messages":[{"role":"user","content":"` + strings.Repeat("a", 2000) + `"}]}`, 413, "too_large", "", "limit is 1024"},
		{"wrong method", "GET", url, ``, 405, "method_not_allowed", "", "use POST"},
		{"wrong method models", "DELETE", r.URL() + "/v1/models", ``, 405, "method_not_allowed", "", "use GET"},
		{"unknown path", "GET", r.URL() + "/v1/embeddings", ``, 404, "not_found", "", "no such endpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, raw := do(t, c.method, c.path, "", c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, raw)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    string  `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				t.Fatalf("error reply is not OpenAI's shape: %v: %s", err, raw)
			}
			if e.Error.Code != c.code || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, c.msg) {
				t.Errorf("error = %+v, want code %s message containing %q", e.Error, c.code, c.msg)
			}
			if (c.param == "") != (e.Error.Param == nil) || (e.Error.Param != nil && *e.Error.Param != c.param) {
				t.Errorf("param = %v, want %q", e.Error.Param, c.param)
			}
		})
	}
	// The server is still fine.
	resp, raw := do(t, "POST", url, "", `{"model":"hedge-auto","messages":[{"role":"user","content":"hello"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("after bad requests: %d %s", resp.StatusCode, raw)
	}
}

// TestBadRequestsThroughClient checks go-openai sees hedge's errors as
// APIErrors with status and code.
func TestBadRequestsThroughClient(t *testing.T) {
	r := serve(t, Options{}, newAgent(t, defaultTiers(), nil))
	_, err := client(r, "").CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "gpt-4o-mini", Messages: userMsg("hello"),
	})
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 404 || apiErr.Code != "model_not_found" || apiErr.Type != "invalid_request_error" {
		t.Fatalf("unknown model: %v", err)
	}
	_, err = client(r, "").CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "hedge-auto", Messages: userMsg(strings.Repeat("é", 600)),
	})
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 413 || apiErr.Code != "too_large" {
		t.Fatalf("oversize text: %v", err)
	}
}

// TestStreamCloudFailsMidAnswer: the cloud streams part of its answer and
// fails; the agent answers locally instead. The stream must still carry
// the answer that the final chunk's hedge object describes, not only the
// cloud's abandoned start.
func TestStreamCloudFailsMidAnswer(t *testing.T) {
	tr := defaultTiers()
	tr.cloud.failAfter = 2
	r := serve(t, Options{}, newAgent(t, tr, nil))
	st, err := client(r, "").CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
		Model: "hedge-cloud", Messages: userMsg("what is the tallest mountain?"),
	})
	if err != nil {
		t.Fatalf("CreateChatCompletionStream: %v", err)
	}
	defer st.Close()
	text, err := streamed(st)
	if err != nil {
		t.Fatalf("Recv: %v after %q", err, text)
	}
	if !strings.HasSuffix(text, llmAnswer) {
		t.Fatalf("streamed %q, want it to end with the local answer %q", text, llmAnswer)
	}
}

// streamed reads a stream to its end and returns the text of its deltas;
// the error is the first one other than the end of the stream, with the
// text received before it.
func streamed(st *openai.ChatCompletionStream) (string, error) {
	text, _, err := streamedFinish(st)
	return text, err
}

// TestQueuedErrorSaysSo: with the cloud link down and no local tier, the
// escalation is stored and the 503 says so in a field, not only in words.
func TestQueuedErrorSaysSo(t *testing.T) {
	down := &fakeCloud{fakeGen: fakeGen{text: cloudAnswer}, state: agent.CloudDown}
	r := serve(t, Options{}, newAgent(t, tiers{cloud: down}, nil))
	resp, raw := do(t, "POST", r.URL()+"/v1/chat/completions", "", `{"model":"hedge-auto","messages":[{"role":"user","content":"what is the weather"}]}`)
	var er errorReply
	if err := json.Unmarshal([]byte(raw), &er); err != nil {
		t.Fatalf("error body %q: %v", raw, err)
	}
	if resp.StatusCode != 503 || er.Error.Code != "no_tier" || er.Hedge == nil || !er.Hedge.Queued {
		t.Fatalf("status %d %s, want 503 no_tier with hedge.queued", resp.StatusCode, raw)
	}
	// Not queued: no hedge object.
	r2 := serve(t, Options{}, newAgent(t, tiers{}, nil))
	if _, raw := do(t, "POST", r2.URL()+"/v1/chat/completions", "", `{"model":"hedge-auto","messages":[{"role":"user","content":"what is the weather"}]}`); strings.Contains(raw, `"hedge"`) {
		t.Fatalf("unqueued error carries hedge facts: %s", raw)
	}
}

// TestMessagesAreTheConversation: the messages before the question are the
// history the tier sees (system prompt included, through the official
// client's wire format); a request that also names a hedge conversation is
// refused, since it would carry two histories.
func TestMessagesAreTheConversation(t *testing.T) {
	tr := defaultTiers()
	r := serve(t, Options{}, newAgent(t, tr, nil))
	resp, err := client(r, "").CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "hedge-local", Messages: userMsg("and then?")})
	if err != nil || resp.Choices[0].Message.Content != llmAnswer {
		t.Fatalf("%+v, %v", resp, err)
	}
	q := tr.llm.last.Load()
	if q == nil || q.System != "You are a helpful assistant." || len(q.History) != 1 ||
		q.History[0].User != "an earlier question" || q.History[0].Answer != "an earlier answer" || q.Text != "and then?" {
		t.Fatalf("the LLM saw %+v", q)
	}
	body := `{"model":"hedge-local","conversation":"c1","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"and then?"}]}`
	if resp, raw := do(t, "POST", r.URL()+"/v1/chat/completions", "", body); resp.StatusCode != 400 || !strings.Contains(raw, "not both") {
		t.Fatalf("conversation and earlier messages: %d %s, want 400", resp.StatusCode, raw)
	}
	body = `{"model":"hedge-local","messages":[{"role":"tool","content":"42"},{"role":"user","content":"and then?"}]}`
	if resp, raw := do(t, "POST", r.URL()+"/v1/chat/completions", "", body); resp.StatusCode != 400 || !strings.Contains(raw, `role \"tool\"`) {
		t.Fatalf("a tool message: %d %s, want 400 naming the role", resp.StatusCode, raw)
	}
}
