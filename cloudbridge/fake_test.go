package cloudbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/cloudbridge/anonymize"
)

// testKey is the API key of the tests; it must never show up in an error
// or a log line.
const testKey = "sk-test-7Hq2mVx9Lr4Tz8Wn3Kp6Yb1Cf5Dg0Js"

// fakeCloud is an OpenAI-compatible server on loopback: chat completions
// (plain and SSE streaming), /models, and whatever errors a test makes it
// return. It records every raw request body.
type fakeCloud struct {
	t   testing.TB
	srv *httptest.Server

	mu     sync.Mutex
	bodies []string
	auth   []string
	// handle, when set, answers chat requests instead of the default.
	handle func(w http.ResponseWriter, r *http.Request, req chatRequest) bool
	// answer builds the default answer from the user's message.
	answer func(user string) string
	tokens int // total_tokens reported per answer
	// cut makes the server count a word a token and cut answers at
	// max_tokens, with finish_reason "length".
	cut bool
	// down makes the server drop every connection without a reply.
	down          atomic.Bool
	chats, probes atomic.Int64
}

type chatRequest struct {
	Model     string `json:"model"`
	MaxTokens int    `json:"max_tokens"`
	Stream    bool   `json:"stream"`
	Messages  []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

// user is the last user message: the question, after any earlier turns.
func (r chatRequest) user() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

func newFakeCloud(t testing.TB) *fakeCloud {
	f := &fakeCloud{t: t, tokens: 42, answer: func(user string) string { return "You asked: " + user }}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCloud) URL() string { return f.srv.URL + "/v1" }

func (f *fakeCloud) serve(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		hj, ok := w.(http.Hijacker)
		if !ok {
			f.t.Error("cannot hijack")
			return
		}
		c, _, _ := hj.Hijack()
		_ = c.Close()
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(body))
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	handle := f.handle
	f.mu.Unlock()
	switch r.URL.Path {
	case "/v1/models":
		f.probes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"fake-model","object":"model","owned_by":"test"}]}`)
		return
	case "/v1/chat/completions":
	default:
		http.NotFound(w, r)
		return
	}
	f.chats.Add(1)
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":"bad json: %s","type":"invalid_request_error"}}`, err)
		return
	}
	if handle != nil && handle(w, r, req) {
		return
	}
	text, finish := f.answer(req.user()), "stop"
	if f.cut {
		text, finish = cutAt(text, req.MaxTokens)
	}
	if req.Stream {
		f.stream(w, text, finish)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "fake-model",
		"choices": []any{map[string]any{"index": 0, "finish_reason": finish,
			"message": map[string]any{"role": "assistant", "content": text}}},
		"usage": map[string]any{"prompt_tokens": f.tokens / 2, "completion_tokens": f.tokens - f.tokens/2, "total_tokens": f.tokens},
	})
}

// cutAt is the answer as a server that counts a word a token sends it for
// max_tokens: cut, with finish_reason "length", when it is longer.
func cutAt(text string, maxTokens int) (string, string) {
	words := strings.SplitAfter(text, " ")
	if maxTokens <= 0 || len(words) <= maxTokens {
		return text, "stop"
	}
	return strings.Join(words[:maxTokens], ""), "length"
}

// stream sends text as SSE chunks of 3 bytes, so that placeholders are cut
// across chunks, then the finish_reason, a usage chunk and [DONE].
func (f *fakeCloud) stream(w http.ResponseWriter, text, finish string) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	for i := 0; i < len(text); i += 3 {
		piece := text[i:min(i+3, len(text))]
		send(map[string]any{"id": "c1", "object": "chat.completion.chunk", "model": "fake-model",
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": piece}}}})
	}
	send(map[string]any{"id": "c1", "object": "chat.completion.chunk", "model": "fake-model",
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": finish}}})
	send(map[string]any{"id": "c1", "object": "chat.completion.chunk", "model": "fake-model", "choices": []any{},
		"usage": map[string]any{"prompt_tokens": 1, "completion_tokens": f.tokens - 1, "total_tokens": f.tokens}})
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

func (f *fakeCloud) setHandle(h func(w http.ResponseWriter, r *http.Request, req chatRequest) bool) {
	f.mu.Lock()
	f.handle = h
	f.mu.Unlock()
}

func (f *fakeCloud) Bodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}

// recordingCourier records late answers; with a file it also appends one
// JSON line per delivery (fsynced), so that deliveries can be counted
// across processes.
type recordingCourier struct {
	mu   sync.Mutex
	got  []delivery
	file string
	// block, when set, is called before a delivery is recorded and may
	// block it.
	block func(a agent.Answer)
	fail  atomic.Bool
}

type delivery struct {
	ReplyTo string       `json:"reply_to"`
	Answer  agent.Answer `json:"answer"`
}

func (c *recordingCourier) Deliver(ctx context.Context, replyTo string, a agent.Answer) error {
	if c.block != nil {
		c.block(a)
	}
	if c.fail.Load() {
		return fmt.Errorf("broker unreachable")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := delivery{ReplyTo: replyTo, Answer: a}
	c.got = append(c.got, d)
	if c.file != "" {
		f, err := os.OpenFile(c.file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		b, _ := json.Marshal(d)
		if _, err := f.Write(append(b, '\n')); err != nil {
			return err
		}
		return f.Sync()
	}
	return nil
}

func (c *recordingCourier) Got() []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]delivery(nil), c.got...)
}

var _ agent.Courier = (*recordingCourier)(nil)

// corpus is cloudbridge/anonymize/testdata/corpus.json.
type corpus struct {
	Names struct {
		People    []string `json:"people"`
		Orgs      []string `json:"orgs"`
		Locations []string `json:"locations"`
		Owner     string   `json:"owner"`
		Household []string `json:"household"`
		Location  string   `json:"location"`
	} `json:"names"`
	Examples []struct {
		Kind  string `json:"kind"`
		Text  string `json:"text"`
		Value string `json:"value"`
	} `json:"examples"`
}

func loadCorpus(t testing.TB) corpus {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("anonymize", "testdata", "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c corpus
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func testAnonymizer(t testing.TB, policy map[anonymize.Kind]anonymize.Action) *anonymize.Anonymizer {
	t.Helper()
	n := loadCorpus(t).Names
	a, err := anonymize.New(anonymize.Options{
		Names: anonymize.Names{People: n.People, Orgs: n.Orgs, Locations: n.Locations,
			Owner: n.Owner, Household: n.Household, Location: n.Location},
		Policy: policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testBridge returns a bridge on a fresh store in t.TempDir() (or st),
// logging at debug level into logs.
func testBridge(t testing.TB, baseURL string, st State, mod func(*Options)) (*Bridge, *syncBuffer) {
	t.Helper()
	if st == nil {
		s := openStore(t, t.TempDir())
		t.Cleanup(func() { _ = s.Close() })
		st = s
	}
	logs := &syncBuffer{}
	o := Options{
		BaseURL: baseURL, Model: "fake-model", APIKey: testKey, SystemPrompt: "keep placeholders",
		Timeout: 5 * time.Second, ConnectTimeout: time.Second, MaxTokens: 100,
		Failures: 3, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Concurrency: 2, MaxAttempts: 3, Lease: 2 * time.Second, Poll: 20 * time.Millisecond,
		Anonymizer: testAnonymizer(t, nil), State: st,
		CacheVersion: "v1", CacheTTL: time.Hour,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b, logs
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr + "/v1"
}

// blackHole returns a loopback endpoint that accepts connections and never
// answers.
func blackHole(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return "http://" + l.Addr().String() + "/v1"
}

// waitFor polls cond until it holds or the deadline passes; it is for
// waiting on background work, never for asserting speed.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func containsAny(s string, vals []string) string {
	for _, v := range vals {
		if strings.Contains(s, v) {
			return v
		}
	}
	return ""
}
