package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/telemetry"
	"github.com/hedge-edge/hedge/agent/transport/local"
)

// storiesConfig is llm.model set to the real stories260K model, greedy, one
// thread, no queue: a request that finds the model busy is refused.
func storiesConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.LLM.Model = tinyModel(t)
	cfg.LLM.Temperature = 0
	cfg.LLM.Threads = 1
	cfg.LLM.SystemPrompt = ""
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestLLMSpeedFromLlamaCounts: hedge_llm_tokens_per_second comes from the
// generator's own token count and timing, for a plain request too (no emit
// to count pieces with), one observation per answer.
func TestLLMSpeedFromLlamaCounts(t *testing.T) {
	tel := telemetry.New(nil, telemetry.Options{})
	gen, closeFn, err := wireLLM(context.Background(), storiesConfig(t), slog.New(slog.DiscardHandler), tel)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	start := time.Now()
	a, err := gen.Generate(context.Background(), agent.Query{Text: "Once upon a time", MaxTokens: 12}, nil)
	wall := time.Since(start)
	if err != nil || !a.Truncated {
		t.Fatalf("answer %+v, %v: want 12 tokens, cut", a, err)
	}
	h := llmSpeed(t, tel)
	// 11 decoding steps took at most the whole request.
	if h.GetSampleCount() != 1 || h.GetSampleSum() < 11/wall.Seconds() {
		t.Fatalf("speed: %d observations, sum %.0f tokens/s; want one of at least %.0f", h.GetSampleCount(), h.GetSampleSum(), 11/wall.Seconds())
	}
}

// llmSpeed reads hedge_llm_tokens_per_second from tel's registry.
func llmSpeed(t *testing.T, tel *telemetry.Telemetry) *dto.Histogram {
	t.Helper()
	mfs, err := tel.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "hedge_llm_tokens_per_second" {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatal("no hedge_llm_tokens_per_second")
	return nil
}

// pacedLLM slows the real generator to one token every step, so that a
// hang-up lands mid-generation; first is closed at the first token and
// ended receives how each generation ended.
type pacedLLM struct {
	agent.Generator
	step  time.Duration
	first chan struct{}
	ended chan error
}

func (p *pacedLLM) Generate(ctx context.Context, q agent.Query, emit func(string)) (agent.Answer, error) {
	n := 0
	a, err := p.Generator.Generate(ctx, q, func(s string) {
		if n++; n == 1 && p.first != nil {
			close(p.first)
			p.first = nil
		}
		time.Sleep(p.step)
		if emit != nil {
			emit(s)
		}
	})
	p.ended <- err
	return a, err
}

// TestSocketHangupFreesLLM: a plain socket request whose client hangs up
// stops generating with the real llama.cpp generator, and the model's one
// slot (no queue) answers the next client instead of busy.
func TestSocketHangupFreesLLM(t *testing.T) {
	gen, closeFn, err := wireLLM(context.Background(), storiesConfig(t), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	p := &pacedLLM{Generator: gen, step: 20 * time.Millisecond, first: make(chan struct{}), ended: make(chan error, 2)}
	first := p.first
	a := agent.New(agent.Options{LLM: p, Limits: agent.Limits{MaxQueryBytes: 1024, MaxTokens: 400}})
	path := filepath.Join(tempState(t, "hc"), "hedge.sock")
	sock, err := local.Listen(path, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- sock.Serve(ctx, a) }()
	defer func() { cancel(); <-served }()

	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(`{"id":"long","text":"Once upon a time","max_tokens":400}` + "\n"))
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		t.Fatal("no first token")
	}
	c.Close() // 400 tokens at 20 ms would take 8 s
	select {
	case err := <-p.ended:
		if err != context.Canceled {
			t.Fatalf("generation ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the generation went on after the client hung up")
	}

	ans, err := local.Ask(context.Background(), path, agent.Query{ID: "next", Text: "Once upon a time", MaxTokens: 4}, nil)
	if err != nil || ans.Error != nil || ans.Tier != agent.TierLLM || ans.Answer == "" {
		t.Fatalf("next request: %+v, %v", ans, err)
	}
	<-p.ended
}
