package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/telemetry"
)

// The tests run the real agent (agent.New, its policy and its Handle) with
// small tiers: the SLM, LLM and cloud are not what this package tests.

const (
	helloAnswer = "Hello! I am hedge, answering on this device."
	llmAnswer   = "Once upon a time a small model answered at the edge."
	cloudAnswer = "The cloud says: Mount Everest is the tallest mountain."
)

// fakeClassifier knows one intent: greetings.
type fakeClassifier struct{}

func (fakeClassifier) Classify(ctx context.Context, text string) (agent.Intent, error) {
	if strings.Contains(strings.ToLower(text), "hello") {
		return agent.Intent{Name: "greeting", Confidence: 0.93, Top: []agent.Scored{{Intent: "greeting", Confidence: 0.93}, {Intent: "goodbye", Confidence: 0.04}}}, nil
	}
	return agent.Intent{Name: "weather", Confidence: 0.21, Top: []agent.Scored{{Intent: "weather", Confidence: 0.21}}}, nil
}

type fakeSkills struct{}

func (fakeSkills) Spec(name string) (agent.IntentSpec, bool) {
	if name == "greeting" {
		return agent.IntentSpec{Name: name, Escalate: agent.EscalateLowConfidence}, true
	}
	return agent.IntentSpec{}, false
}

func (fakeSkills) Respond(ctx context.Context, q agent.Query, in agent.Intent) (string, error) {
	return helloAnswer, nil
}

// fakeGen streams its text word by word, a word a token: max_tokens cuts
// it (and marks it truncated). When gate is set, it emits the first word,
// signals started and waits for gate before the rest; failAfter makes it
// fail after that many words.
type fakeGen struct {
	text      string
	model     string
	delay     time.Duration
	started   chan struct{}
	gate      chan struct{}
	failAfter int
	// last is the last query asked (its history and system prompt).
	last atomic.Pointer[agent.Query]
}

func (g *fakeGen) Generate(ctx context.Context, q agent.Query, emit func(string)) (agent.Answer, error) {
	g.last.Store(&q)
	words := strings.SplitAfter(g.text, " ")
	truncated := q.MaxTokens > 0 && len(words) > q.MaxTokens
	if truncated {
		words = words[:q.MaxTokens]
	}
	for i, w := range words {
		if g.failAfter > 0 && i == g.failAfter {
			return agent.Answer{}, errors.New("generator crashed mid-answer")
		}
		if emit != nil {
			emit(w)
		}
		if i == 0 && g.started != nil {
			close(g.started)
		}
		if i == 0 && g.gate != nil {
			select {
			case <-g.gate:
			case <-ctx.Done():
				return agent.Answer{}, ctx.Err()
			}
		}
		if g.delay > 0 {
			select {
			case <-time.After(g.delay):
			case <-ctx.Done():
				return agent.Answer{}, ctx.Err()
			}
		}
	}
	return agent.Answer{Answer: strings.Join(words, ""), Model: g.model, Truncated: truncated}, nil
}

// fakeCloud is an agent.Cloud whose link is up.
type fakeCloud struct {
	fakeGen
	state agent.CloudState
}

func (c *fakeCloud) Check(ctx context.Context, q agent.Query) agent.CloudState { return c.state }
func (c *fakeCloud) Defer(ctx context.Context, q agent.Query) error            { return nil }

type tiers struct {
	llm   *fakeGen
	cloud *fakeCloud
	// cache, when set, caches answers for an hour.
	cache agent.Cache
}

func defaultTiers() tiers {
	return tiers{
		llm:   &fakeGen{text: llmAnswer, model: "fake-llm-q4"},
		cloud: &fakeCloud{fakeGen: fakeGen{text: cloudAnswer, model: "fake-cloud-4o"}, state: agent.CloudReady},
	}
}

func newAgent(t *testing.T, tr tiers, tel *telemetry.Telemetry) *agent.Agent {
	t.Helper()
	o := agent.Options{
		Limits:     agent.Limits{MaxQueryBytes: 1024, MaxTokens: 512},
		Classifier: fakeClassifier{},
		Skills:     fakeSkills{},
		SLMModel:   "fake-slm",
		LLM:        tr.llm,
		Cloud:      tr.cloud,
	}
	if tr.cloud == nil {
		o.Cloud = nil
	}
	if tr.llm == nil {
		o.LLM = nil
	}
	if tel != nil {
		o.Observe = tel.Observe
	}
	if tr.cache != nil {
		o.Cache, o.CacheTTL = tr.cache, time.Hour
	}
	return agent.New(o)
}

// running is a served Server and the means to stop it.
type running struct {
	*Server
	cancel context.CancelFunc
	done   chan error
}

// serve opens a server with o (on 127.0.0.1:0 unless o.Listen is set) and
// serves h until the test ends.
func serve(t *testing.T, o Options, h agent.Handler) *running {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Limits.MaxQueryBytes == 0 {
		o.Limits = agent.Limits{MaxQueryBytes: 1024, MaxTokens: 512}
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Server: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	})
	waitReady(t, s)
	return r
}

// waitReady waits until the server reports its http part ready.
func waitReady(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, parts, _ := s.o.Ready.Status()
		if parts[TransportName] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("server never became ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends Serve and returns its result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- nil // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context ended")
		return nil
	}
}

func do(t *testing.T, method, url, token, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, url, err)
	}
	return resp, string(b)
}
