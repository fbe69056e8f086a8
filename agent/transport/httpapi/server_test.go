package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/telemetry"
)

const testToken = "test-token-0123456789abcdef"

func TestTokenRequiredBeyondLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		_, err := New(Options{Listen: addr})
		if !errors.Is(err, ErrTokenRequired) {
			t.Errorf("New(%s, no token) = %v, want ErrTokenRequired", addr, err)
		}
	}
	if _, err := New(Options{Listen: "127.0.0.1:notaport"}); err == nil {
		t.Error("New with a bad port: want an error")
	}
}

func TestAuth(t *testing.T) {
	// Beyond loopback with a token; the test dials it on 127.0.0.1 only.
	r := serve(t, Options{Listen: "0.0.0.0:0", Token: testToken, Telemetry: telemetry.New(nil, telemetry.Options{})},
		newAgent(t, defaultTiers(), nil))
	_, port, _ := net.SplitHostPort(r.Addr())
	base := "http://127.0.0.1:" + port
	chat := `{"model":"hedge-auto","messages":[{"role":"user","content":"hello"}]}`

	for _, c := range []struct {
		method, path, token, body string
		status                    int
	}{
		{"POST", "/v1/chat/completions", "", chat, 401},
		{"POST", "/v1/chat/completions", "wrong-token-0123456789", chat, 401},
		{"POST", "/v1/chat/completions", testToken, chat, 200},
		{"GET", "/v1/models", "", "", 401},
		{"GET", "/v1/models", testToken, "", 200},
		{"GET", "/metrics", "", "", 401},
		{"GET", "/metrics", testToken, "", 200},
		{"GET", "/api/status", "", "", 401},
		{"GET", "/api/status", testToken, "", 200},
		// Probes and the static page carry no data and stay open.
		{"GET", "/healthz", "", "", 200},
		{"GET", "/readyz", "", "", 200},
		{"GET", "/", "", "", 200},
		{"GET", "/assets/app.js", "", "", 200},
	} {
		resp, raw := do(t, c.method, base+c.path, c.token, c.body)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s token %q: status %d, want %d: %.200s", c.method, c.path, c.token, resp.StatusCode, c.status, raw)
			continue
		}
		if c.status == 401 {
			if !strings.Contains(raw, `"code":"invalid_api_key"`) || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 reply %s, headers %v", c.method, c.path, raw, resp.Header)
			}
			if strings.Contains(raw, testToken) {
				t.Errorf("401 reply reveals the token")
			}
		}
	}

	cfg := openai.DefaultConfig("wrong-token-0123456789")
	cfg.BaseURL = base + "/v1"
	_, err := openai.NewClientWithConfig(cfg).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "hedge-auto", Messages: userMsg("hello")})
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 401 {
		t.Fatalf("go-openai with a wrong token: %v, want 401", err)
	}
	cfg = openai.DefaultConfig(testToken)
	cfg.BaseURL = base + "/v1"
	resp, err := openai.NewClientWithConfig(cfg).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "hedge-auto", Messages: userMsg("hello")})
	if err != nil || resp.Choices[0].Message.Content != helloAnswer {
		t.Fatalf("go-openai with the token: %v", err)
	}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "http.sock")
	r := serve(t, Options{Listen: "unix:" + path}, newAgent(t, defaultTiers(), nil))
	if r.Addr() != "unix:"+path {
		t.Errorf("Addr = %q", r.Addr())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket file: %v %v", fi.Mode(), err)
	}
	// A second hedge must not steal a live socket.
	if _, err := New(Options{Listen: "unix:" + path}); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("second New on a live socket = %v, want ErrSocketInUse", err)
	}

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	cfg := openai.DefaultConfig("")
	cfg.BaseURL = r.URL() + "/v1"
	cfg.HTTPClient = hc
	resp, err := openai.NewClientWithConfig(cfg).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "hedge-local", Messages: userMsg("tell me a story")})
	if err != nil || resp.Choices[0].Message.Content != llmAnswer {
		t.Fatalf("chat over the socket: %+v %v", resp, err)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left behind: %v", err)
	}
}

func TestUnixSocketStaleFileReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "http.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, no one listens: a crashed hedge's leftover
	serve(t, Options{Listen: "unix:" + path}, newAgent(t, defaultTiers(), nil))
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the replaced socket: %v", err)
	}
	c.Close()
}

// A unix: address that names an ordinary file (a typo in http.listen) must
// fail and leave the file alone: dialling a regular file is refused just
// like a stale socket, so a dial alone does not prove the file disposable.
func TestUnixListenLeavesRegularFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := New(Options{Listen: "unix:" + path}); err == nil {
		s.Close()
		t.Fatal("New on a regular file succeeded, want an error")
	} else if !strings.Contains(err.Error(), "regular file") {
		t.Errorf("New on a regular file: %v, want it to say a regular file is there", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Fatalf("the file was touched: %q %v", b, err)
	}
}

func TestReadinessTransitions(t *testing.T) {
	ready := NewReadiness("slm", "socket")
	r := serve(t, Options{Ready: ready}, newAgent(t, defaultTiers(), nil))
	get := func() (int, readyReply) {
		resp, raw := do(t, "GET", r.URL()+"/readyz", "", "")
		var rr readyReply
		if err := json.Unmarshal([]byte(raw), &rr); err != nil {
			t.Fatalf("readyz body %q: %v", raw, err)
		}
		return resp.StatusCode, rr
	}
	if code, rr := get(); code != 503 || strings.Join(rr.NotReady, ",") != "slm,socket" || !rr.Parts["http"] || rr.Status != "not ready" {
		t.Fatalf("start: %d %+v, want 503 naming slm and socket", code, rr)
	}
	ready.Set("slm", true)
	if code, rr := get(); code != 503 || strings.Join(rr.NotReady, ",") != "socket" {
		t.Fatalf("slm loaded: %d %+v, want 503 naming socket", code, rr)
	}
	ready.Set("socket", true)
	if code, rr := get(); code != 200 || rr.Status != "ready" || len(rr.NotReady) != 0 {
		t.Fatalf("all up: %d %+v, want 200", code, rr)
	}
	ready.Set("slm", false) // e.g. a model reload
	if code, rr := get(); code != 503 || strings.Join(rr.NotReady, ",") != "slm" {
		t.Fatalf("slm reloading: %d %+v", code, rr)
	}
	ready.Set("slm", true)
	// A watched part is read at every request: a wedged pipeline.
	var wedged atomic.Bool
	ready.Watch("pipeline", func() bool { return !wedged.Load() })
	if code, _ := get(); code != 200 {
		t.Fatalf("pipeline healthy: %d, want 200", code)
	}
	wedged.Store(true)
	if code, rr := get(); code != 503 || strings.Join(rr.NotReady, ",") != "pipeline" || rr.Parts["pipeline"] {
		t.Fatalf("pipeline wedged: %d %+v, want 503 naming pipeline", code, rr)
	}
	wedged.Store(false)
	if resp, raw := do(t, "GET", r.URL()+"/healthz", "", ""); resp.StatusCode != 200 || !strings.Contains(raw, "alive") {
		t.Fatalf("healthz %d %s", resp.StatusCode, raw)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if ok, _, not := ready.Status(); ok || strings.Join(not, ",") != "http" {
		t.Fatalf("after shutdown ready = %v, not ready %v; want http not ready", ok, not)
	}
}

// TestGracefulShutdown: a request in flight when the context ends gets its
// whole answer; new connections are refused; Serve returns nil after.
func TestGracefulShutdown(t *testing.T) {
	tr := defaultTiers()
	tr.llm.gate = make(chan struct{})
	tr.llm.started = make(chan struct{})
	r := serve(t, Options{}, newAgent(t, tr, nil))
	url := r.URL() + "/v1/chat/completions"

	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"model":"hedge-local","messages":[{"role":"user","content":"tell me a story"}]}`))
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-tr.llm.started
	r.cancel()
	// Shutdown has begun once the listener refuses connections.
	for {
		c, err := net.DialTimeout("tcp", r.Addr(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	close(tr.llm.gate)
	got := <-res
	if got.err != nil || got.status != 200 || !strings.Contains(got.body, llmAnswer) {
		t.Fatalf("in-flight request: %d %q %v", got.status, got.body, got.err)
	}
	if err := <-r.done; err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	r.done <- nil
}

// TestLongGenerationOutlivesTimeouts: read and write timeouts bound I/O,
// not generation; a slow answer (plain and streamed) is delivered whole.
func TestLongGenerationOutlivesTimeouts(t *testing.T) {
	tr := defaultTiers()
	tr.llm.delay = 60 * time.Millisecond // ~0.65 s for the answer
	r := serve(t, Options{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}, newAgent(t, tr, nil))
	c := client(r, "")
	resp, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "hedge-local", Messages: userMsg("tell me a story")})
	if err != nil || resp.Choices[0].Message.Content != llmAnswer {
		t.Fatalf("slow plain answer: %v", err)
	}
	st, err := c.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{Model: "hedge-local", Messages: userMsg("tell me another story")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	text, err := streamed(st)
	if err != nil {
		t.Fatalf("slow stream: %v after %q", err, text)
	}
	if text != llmAnswer {
		t.Fatalf("slow stream text %q", text)
	}
}

func TestBusy(t *testing.T) {
	tr := defaultTiers()
	tr.llm.gate = make(chan struct{})
	tr.llm.started = make(chan struct{})
	r := serve(t, Options{MaxInFlight: 1}, newAgent(t, tr, nil))
	url := r.URL() + "/v1/chat/completions"
	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"model":"hedge-local","messages":[{"role":"user","content":"tell me a story"}]}`))
		if err != nil {
			done <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-tr.llm.started
	resp, raw := do(t, "POST", url, "", `{"model":"hedge-auto","messages":[{"role":"user","content":"hello"}]}`)
	if resp.StatusCode != 429 || !strings.Contains(raw, `"code":"busy"`) || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("second request: %d %s, want 429 busy with Retry-After", resp.StatusCode, raw)
	}
	close(tr.llm.gate)
	if code := <-done; code != 200 {
		t.Fatalf("first request: %d", code)
	}
	resp, raw = do(t, "POST", url, "", `{"model":"hedge-auto","messages":[{"role":"user","content":"hello"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("after the slot freed: %d %s", resp.StatusCode, raw)
	}
}

func TestAgentErrorStatuses(t *testing.T) {
	for code, want := range map[agent.ErrorCode]int{
		agent.CodeBadRequest: 400, agent.CodeTooLarge: 413, agent.CodeBusy: 429, agent.CodeRefused: 403,
		agent.CodeNoTier: 503, agent.CodeShuttingDown: 503, agent.CodeTimeout: 504, agent.CodeInternal: 500,
		agent.CodeCloudConfig: 502,
	} {
		if got, _ := statusOf(code); got != want {
			t.Errorf("statusOf(%s) = %d, want %d", code, got, want)
		}
	}
}

func TestServeTwice(t *testing.T) {
	r := serve(t, Options{}, newAgent(t, defaultTiers(), nil))
	if err := r.Serve(context.Background(), newAgent(t, defaultTiers(), nil)); err == nil {
		t.Fatal("second Serve: want an error")
	}
}

// TestDashboardIsSelfContained: the embedded page loads nothing from
// elsewhere, and the server says so in its Content-Security-Policy.
func TestDashboardIsSelfContained(t *testing.T) {
	entries, err := dashboardFS.ReadDir("dashboard")
	if err != nil || len(entries) == 0 {
		t.Fatalf("embedded dashboard: %v", err)
	}
	for _, e := range entries {
		b, err := dashboardFS.ReadFile("dashboard/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		s = strings.ReplaceAll(s, "http://www.w3.org/2000/svg", "") // the SVG namespace is a name, not a fetch
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "<script>"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", e.Name(), bad)
			}
		}
	}
	r := serve(t, Options{}, newAgent(t, defaultTiers(), nil))
	resp, body := do(t, "GET", r.URL()+"/", "", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script src="/assets/app.js"`) {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	for _, asset := range []string{"app.js", "style.css", "favicon.svg"} {
		if resp, _ := do(t, "GET", r.URL()+"/assets/"+asset, "", ""); resp.StatusCode != 200 {
			t.Errorf("/assets/%s: %d", asset, resp.StatusCode)
		}
	}
	if resp, _ := do(t, "GET", r.URL()+"/assets/missing.js", "", ""); resp.StatusCode != 404 {
		t.Errorf("/assets/missing.js: %d, want 404", resp.StatusCode)
	}
	if resp, _ := do(t, "HEAD", r.URL()+"/", "", ""); resp.StatusCode != 200 {
		t.Errorf("HEAD /: %d", resp.StatusCode)
	}
}

// TestNoQueryTextInInfoLogs runs the whole stack with an Info logger and
// checks that the question and the answer never reach the log.
func TestNoQueryTextInInfoLogs(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tr := defaultTiers()
	tr.llm.failAfter = 2 // an error path logs too
	a := agent.New(agent.Options{Log: log, Limits: agent.Limits{MaxQueryBytes: 1024}, Classifier: fakeClassifier{}, Skills: fakeSkills{}, LLM: tr.llm, Cloud: tr.cloud})
	r := serve(t, Options{Log: log, Token: testToken}, a)
	for _, q := range []string{
		`{"model":"hedge-auto","messages":[{"role":"user","content":"hello secret-alpha"}]}`,
		`{"model":"hedge-local","stream":true,"messages":[{"role":"user","content":"story secret-beta"}]}`,
		`{"model":"hedge-cloud","messages":[{"role":"user","content":"mountain secret-gamma"}]}`,
	} {
		do(t, "POST", r.URL()+"/v1/chat/completions", testToken, q)
	}
	do(t, "POST", r.URL()+"/v1/chat/completions", "wrong-token-xxxxxxxxxx", `{"model":"hedge-auto","messages":[{"role":"user","content":"secret-delta"}]}`)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, secret := range []string{"secret-", "Mount Everest", testToken, "wrong-token"} {
		if strings.Contains(out, secret) {
			t.Errorf("info log holds %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "serving") {
		t.Errorf("the info log does not say the server started:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
