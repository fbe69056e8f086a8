package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/hedge-edge/hedge/agent"
)

func TestRecentRingNewestFirst(t *testing.T) {
	tel := New(nil, Options{Recent: 3})
	for i := 1; i <= 5; i++ {
		tel.Observe(agent.Query{ID: fmt.Sprint(i), Text: "secret text", Transport: "mqtt"}, agent.Answer{Tier: agent.TierSLM, Intent: "x", Confidence: 0.9})
	}
	s := tel.Snapshot()
	if len(s.Recent) != 3 || s.Recent[0].ID != "5" || s.Recent[2].ID != "3" {
		t.Fatalf("recent = %+v, want ids 5,4,3", s.Recent)
	}
	if s.Recent[0].Text != "" || s.Recent[0].Prefer != "auto" {
		t.Fatalf("decision = %+v: text must be hidden, prefer defaults to auto", s.Recent[0])
	}
	if s.Requests != 5 || s.ByTier["slm"] != 5 || s.Link != LinkNone {
		t.Fatalf("snapshot = %+v", s)
	}

	none := New(nil, Options{Recent: -1})
	none.Observe(agent.Query{}, agent.Answer{Tier: agent.TierLLM})
	if s := none.Snapshot(); len(s.Recent) != 0 || s.Requests != 1 {
		t.Fatalf("Recent -1: %+v", s)
	}
}

func TestEscalationOutcomes(t *testing.T) {
	tel := New(nil, Options{})
	for _, a := range []agent.Answer{
		{Tier: agent.TierCloud},
		{Tier: agent.TierLLM, Queued: true, Degraded: "offline"},
		{Tier: agent.TierLLM, Degraded: "offline"},
		{Tier: agent.TierSLM, Degraded: "budget"},
		{Tier: agent.TierLLM, Degraded: "private"},
		{Tier: agent.TierSLM},
		{Error: &agent.Error{Code: agent.CodeNoTier}},
	} {
		tel.Observe(agent.Query{Transport: "socket"}, a)
	}
	for outcome, want := range map[string]float64{"answered": 1, "queued": 1, "offline": 1, "budget": 1, "private": 1} {
		if got := testutil.ToFloat64(tel.escalations.WithLabelValues(outcome)); got != want {
			t.Errorf("escalations{%s} = %v, want %v", outcome, got, want)
		}
	}
	if got := testutil.CollectAndCount(tel.escalations); got != 5 {
		t.Errorf("%d escalation series, want 5", got)
	}
	s := tel.Snapshot()
	if s.Escalations != 2 || s.Queued != 1 || s.Errors != 1 {
		t.Fatalf("snapshot = %+v", s)
	}
	if got := testutil.ToFloat64(tel.errors.WithLabelValues("socket", "no_tier")); got != 1 {
		t.Fatalf("errors{socket,no_tier} = %v", got)
	}
}

func TestCacheHitsDoNotRecountConfidence(t *testing.T) {
	tel := New(nil, Options{})
	tel.Observe(agent.Query{}, agent.Answer{Tier: agent.TierSLM, Intent: "greet", Confidence: 0.8})
	tel.Observe(agent.Query{}, agent.Answer{Tier: agent.TierCache, Intent: "greet", Confidence: 0.8})
	if got := testutil.CollectAndCount(tel.confidence); got != 1 {
		t.Fatal("confidence series missing")
	}
	var m = &prometheusMetric{}
	m.read(t, tel.confidence)
	if m.count != 1 {
		t.Fatalf("confidence observations = %d, want 1 (the cache hit is not a classification)", m.count)
	}
}

type memCache struct{ m map[string]agent.Answer }

func (c *memCache) Get(ctx context.Context, key string) (agent.Answer, bool, error) {
	if key == "broken" {
		return agent.Answer{}, false, errors.New("disk on fire")
	}
	a, ok := c.m[key]
	return a, ok, nil
}

func (c *memCache) Put(ctx context.Context, key string, a agent.Answer, ttl time.Duration) error {
	c.m[key] = a
	return nil
}

func TestWrapCacheCounts(t *testing.T) {
	tel := New(nil, Options{})
	if tel.WrapCache(nil) != nil {
		t.Fatal("WrapCache(nil) must stay nil so the agent skips the cache")
	}
	c := tel.WrapCache(&memCache{m: map[string]agent.Answer{}})
	ctx := context.Background()
	c.Get(ctx, "k")
	c.Put(ctx, "k", agent.Answer{Answer: "a"}, time.Minute)
	if a, ok, _ := c.Get(ctx, "k"); !ok || a.Answer != "a" {
		t.Fatal("wrapped cache lost the answer")
	}
	c.Get(ctx, "k")
	c.Get(ctx, "broken")
	if h, m, e := testutil.ToFloat64(tel.cacheHits), testutil.ToFloat64(tel.cacheMisses), testutil.ToFloat64(tel.cacheErrors); h != 2 || m != 1 || e != 1 {
		t.Fatalf("hits %v misses %v errors %v, want 2 1 1", h, m, e)
	}
	if s := tel.Snapshot(); s.CacheHits != 2 || s.CacheMisses != 1 {
		t.Fatalf("snapshot cache = %d/%d", s.CacheHits, s.CacheMisses)
	}
}

func TestSetters(t *testing.T) {
	tel := New(nil, Options{})
	tel.SetLinkUp(false)
	tel.SetOutboxDepth(7)
	tel.AddCloudTokens(100)
	tel.AddCloudTokens(-5)
	tel.ObserveLLMTokensPerSecond(0)
	tel.ObserveLLMTokensPerSecond(9)
	s := tel.Snapshot()
	if s.Link != LinkDown || s.OutboxDepth != 7 || s.CloudTokens != 100 {
		t.Fatalf("snapshot = %+v", s)
	}
	if testutil.ToFloat64(tel.linkUp) != 0 || testutil.ToFloat64(tel.outboxDepth) != 7 || testutil.ToFloat64(tel.cloudTokens) != 100 {
		t.Fatal("gauges disagree with the snapshot")
	}
	var m prometheusMetric
	m.read(t, tel.llmSpeed)
	if m.count != 1 {
		t.Fatalf("llm speed observations = %d, want 1", m.count)
	}
}

func TestOwnRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	tel := New(reg, Options{})
	if tel.Registry() != reg {
		t.Fatal("Registry is not the one given")
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) == 0 {
		t.Fatalf("Gather: %d families, %v", len(mfs), err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering twice on one registry must panic (a wiring bug)")
		}
	}()
	New(reg, Options{})
}

// prometheusMetric reads a histogram's sample count.
type prometheusMetric struct{ count uint64 }

func (p *prometheusMetric) read(t *testing.T, h prometheus.Histogram) {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	p.count = m.GetHistogram().GetSampleCount()
}

func TestObserveLLMGeneration(t *testing.T) {
	tel := New(nil, Options{})
	tel.ObserveLLMGeneration(9, 500*time.Millisecond) // 8 steps in 0.5 s
	tel.ObserveLLMGeneration(1, time.Second)          // one token: no speed
	tel.ObserveLLMGeneration(5, 0)                    // no time measured
	var m dto.Metric
	if err := tel.llmSpeed.Write(&m); err != nil {
		t.Fatal(err)
	}
	h := m.GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 16 {
		t.Fatalf("speed: %d observations summing %v, want one of 16 tokens/s", h.GetSampleCount(), h.GetSampleSum())
	}
}

func TestCountMQTTReadsAtScrape(t *testing.T) {
	tel := New(nil, Options{})
	var busy atomic.Int64
	tel.CountMQTT(func() map[string]int64 { return map[string]int64{"busy": busy.Load(), "malformed": 2} })
	busy.Store(7)
	want := `
# HELP hedge_mqtt_requests_total MQTT request messages by outcome: received from the broker, answered, duplicates (answered from a stored reply), busy, malformed (error replies), unanswered (no reply topic), store_lag (reply records kept in memory only), panics (answered internal).
# TYPE hedge_mqtt_requests_total counter
hedge_mqtt_requests_total{outcome="busy"} 7
hedge_mqtt_requests_total{outcome="malformed"} 2
`
	if err := testutil.GatherAndCompare(tel.Registry(), strings.NewReader(want), "hedge_mqtt_requests_total"); err != nil {
		t.Error(err)
	}
}
