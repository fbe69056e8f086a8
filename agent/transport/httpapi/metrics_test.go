package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/telemetry"
)

// scrape reads /metrics and parses it as Prometheus' text format.
func scrape(t *testing.T, r *running) map[string]*dto.MetricFamily {
	t.Helper()
	resp, raw := do(t, "GET", r.URL()+"/metrics", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, raw)
	}
	return mfs
}

// value returns the counter, gauge or histogram count of the series of
// family name whose labels include want; 0 when absent.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
next:
	for _, m := range mf.Metric {
		for k, v := range want {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

func TestMetricsMoveAfterQueries(t *testing.T) {
	tel := telemetry.New(nil, telemetry.Options{})
	tr := defaultTiers()
	r := serve(t, Options{Telemetry: tel}, newAgent(t, tr, tel))

	before := scrape(t, r)
	for _, name := range []string{"hedge_outbox_depth", "hedge_cloud_link_up", "hedge_cloud_tokens_total",
		"hedge_cache_hits_total", "hedge_cache_misses_total", "hedge_slm_confidence", "hedge_llm_tokens_per_second"} {
		if before[name] == nil {
			t.Errorf("metric %s missing before any query", name)
		}
	}
	if v := value(before, "hedge_requests_total", map[string]string{"transport": "http", "tier": "slm"}); v != 0 {
		t.Fatalf("requests before = %v", v)
	}

	ask := func(model, text string) {
		resp, raw := do(t, "POST", r.URL()+"/v1/chat/completions", "", `{"model":"`+model+`","messages":[{"role":"user","content":"`+text+`"}]}`)
		if resp.StatusCode != 200 && resp.StatusCode != 413 {
			t.Fatalf("%s %q: %d %s", model, text, resp.StatusCode, raw)
		}
	}
	ask("hedge-auto", "hello")
	ask("hedge-auto", "hello again")
	ask("hedge-local", "tell me a story")
	ask("hedge-cloud", "tallest mountain")
	ask("hedge-auto", strings.Repeat("x", 2000)) // too_large
	tel.SetOutboxDepth(3)
	tel.SetLinkUp(true)
	tel.AddCloudTokens(42)
	tel.ObserveLLMTokensPerSecond(12.5)

	after := scrape(t, r)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"hedge_requests_total", map[string]string{"transport": "http", "tier": "slm"}, 2},
		{"hedge_requests_total", map[string]string{"transport": "http", "tier": "llm"}, 1},
		{"hedge_requests_total", map[string]string{"transport": "http", "tier": "cloud"}, 1},
		{"hedge_requests_total", map[string]string{"transport": "http", "tier": "none"}, 1},
		{"hedge_request_errors_total", map[string]string{"transport": "http", "code": "too_large"}, 1},
		{"hedge_request_duration_seconds", map[string]string{"tier": "slm"}, 2},
		{"hedge_request_duration_seconds", map[string]string{"tier": "cloud"}, 1},
		{"hedge_slm_confidence", nil, 4},
		{"hedge_escalations_total", map[string]string{"outcome": "answered"}, 1},
		{"hedge_outbox_depth", nil, 3},
		{"hedge_cloud_link_up", nil, 1},
		{"hedge_cloud_tokens_total", nil, 42},
		{"hedge_llm_tokens_per_second", nil, 1},
	}
	for _, c := range checks {
		if got := value(after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if after["hedge_request_duration_seconds"].GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("latency is %v, want a histogram", after["hedge_request_duration_seconds"].GetType())
	}

	// The dashboard's view agrees, and hides query texts without debug.
	resp, raw := do(t, "GET", r.URL()+"/api/status", "", "")
	var st statusReply
	if err := json.Unmarshal([]byte(raw), &st); err != nil || resp.StatusCode != 200 || st.Metrics == nil {
		t.Fatalf("/api/status: %d %v %s", resp.StatusCode, err, raw)
	}
	m := st.Metrics
	if m.Requests != 5 || m.Errors != 1 || m.ByTier["slm"] != 2 || m.ByTier["llm"] != 1 || m.ByTier["cloud"] != 1 ||
		m.OutboxDepth != 3 || m.Link != telemetry.LinkUp || m.Escalations != 1 || len(m.Recent) != 5 {
		t.Fatalf("snapshot = %+v", m)
	}
	if m.Recent[0].Error != "too_large" || m.Recent[1].Tier != string(agent.TierCloud) || m.Recent[4].Intent != "greeting" {
		t.Errorf("recent order (newest first) = %+v", m.Recent)
	}
	if strings.Contains(raw, "tell me a story") || strings.Contains(raw, "hello again") {
		t.Errorf("query text in /api/status without debug: %s", raw)
	}
}

func TestStatusShowsTextsInDebug(t *testing.T) {
	tel := telemetry.New(nil, telemetry.Options{Debug: true})
	r := serve(t, Options{Telemetry: tel, Device: "pi-kitchen"}, newAgent(t, defaultTiers(), tel))
	do(t, "POST", r.URL()+"/v1/chat/completions", "", `{"model":"hedge-auto","messages":[{"role":"user","content":"hello there"}]}`)
	_, raw := do(t, "GET", r.URL()+"/api/status", "", "")
	var st statusReply
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	if st.Device != "pi-kitchen" || len(st.Metrics.Recent) != 1 || st.Metrics.Recent[0].Text != "hello there" || !st.Metrics.Debug {
		t.Fatalf("debug status = %s", raw)
	}
}

func TestMetricsWithoutTelemetry(t *testing.T) {
	r := serve(t, Options{}, newAgent(t, defaultTiers(), nil))
	if resp, _ := do(t, "GET", r.URL()+"/metrics", "", ""); resp.StatusCode != 404 {
		t.Fatalf("/metrics without telemetry: %d, want 404", resp.StatusCode)
	}
}
