// Package telemetry counts what hedge does: Prometheus metrics on a registry
// of hedge's own (never the global default one) and the recent decisions the
// dashboard shows. The agent feeds it through Observe (agent.Options.Observe);
// the tiers that know more (outbox, link, cloud tokens, the LLM's own
// token counts) call its setters from the wiring.
package telemetry

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hedge-edge/hedge/agent"
)

// Options tunes a Telemetry.
type Options struct {
	// Debug keeps the query text in the recent decisions. Off by default:
	// query text is private and only ever kept in memory when asked for.
	Debug bool
	// Recent is how many decisions are kept for the dashboard; 0 keeps 50,
	// a negative value keeps none.
	Recent int
	// Log receives errors of /metrics scrapes; nil discards them.
	Log *slog.Logger
}

// Telemetry holds hedge's metrics and recent decisions. It is safe for
// concurrent use; every method is cheap and never blocks on I/O, so the
// agent may call Observe inline.
type Telemetry struct {
	reg   *prometheus.Registry
	debug bool
	log   *slog.Logger
	start time.Time

	requests    *prometheus.CounterVec
	errors      *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	cacheErrors prometheus.Counter
	confidence  prometheus.Histogram
	escalations *prometheus.CounterVec
	outboxDepth prometheus.Gauge
	linkUp      prometheus.Gauge
	cloudTokens prometheus.Counter
	llmSpeed    prometheus.Histogram

	// The dashboard's view, kept beside the metrics so that it needs no
	// scrape and no parsing of the registry.
	mu        sync.Mutex
	total     uint64
	failed    uint64
	byTier    map[agent.Tier]uint64
	hits      uint64
	misses    uint64
	escalated uint64
	queued    uint64
	outbox    int
	link      LinkState
	tokens    uint64
	recent    []Decision
	next      int // where the next decision goes in recent
	filled    bool
}

// LinkState is the cloud link as the dashboard shows it.
type LinkState string

// The link states. LinkNone means no tier ever reported a link: no cloud is
// configured.
const (
	LinkNone LinkState = "none"
	LinkUp   LinkState = "up"
	LinkDown LinkState = "down"
)

// Latency buckets in seconds: a cache hit takes well under a millisecond, a
// local LLM on a Pi may take most of a minute.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New registers hedge's metrics on reg and returns the Telemetry feeding
// them. A nil reg gets a fresh registry. It panics only if reg already holds
// metrics of the same names, which is a wiring mistake.
func New(reg *prometheus.Registry, o Options) *Telemetry {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	n := o.Recent
	switch {
	case n == 0:
		n = 50
	case n < 0:
		n = 0
	}
	t := &Telemetry{
		reg:    reg,
		debug:  o.Debug,
		log:    o.Log.With("component", "telemetry"),
		start:  time.Now(),
		byTier: map[agent.Tier]uint64{},
		link:   LinkNone,
		recent: make([]Decision, n),

		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedge_requests_total",
			Help: "Queries answered, by transport and by the tier that answered (tier=\"none\" for error replies).",
		}, []string{"transport", "tier"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedge_request_errors_total",
			Help: "Error replies, by transport and error code.",
		}, []string{"transport", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hedge_request_duration_seconds",
			Help:    "Time from query to reply, by the tier that answered (tier=\"none\" for error replies).",
			Buckets: latencyBuckets,
		}, []string{"tier"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hedge_cache_hits_total",
			Help: "Answer cache look-ups that found a live answer.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hedge_cache_misses_total",
			Help: "Answer cache look-ups that found nothing (or an expired answer).",
		}),
		cacheErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hedge_cache_errors_total",
			Help: "Answer cache look-ups that failed.",
		}),
		confidence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hedge_slm_confidence",
			Help:    "Calibrated confidence of the intent classifier's best intent, per classified query.",
			Buckets: prometheus.LinearBuckets(0.1, 0.1, 10),
		}),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedge_escalations_total",
			Help: "Queries the policy sent toward the cloud, by outcome: answered, queued (link down, answer later), offline (link down, not queued), budget, private.",
		}, []string{"outcome"}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hedge_outbox_depth",
			Help: "Cloud escalations waiting in the outbox.",
		}),
		linkUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hedge_cloud_link_up",
			Help: "1 when the cloud link is up (circuit closed), 0 when it is down.",
		}),
		cloudTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hedge_cloud_tokens_total",
			Help: "Tokens spent on the cloud API (prompt and completion).",
		}),
		llmSpeed: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hedge_llm_tokens_per_second",
			Help:    "Generation speed of the local LLM, one observation per answer.",
			Buckets: []float64{0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
	}
	reg.MustRegister(t.requests, t.errors, t.latency, t.cacheHits, t.cacheMisses, t.cacheErrors,
		t.confidence, t.escalations, t.outboxDepth, t.linkUp, t.cloudTokens, t.llmSpeed)
	return t
}

// Registry returns the registry the metrics live on, for other collectors
// (Go runtime, process) to join.
func (t *Telemetry) Registry() *prometheus.Registry { return t.reg }

// Debug reports whether query texts are kept.
func (t *Telemetry) Debug() bool { return t.debug }

// Handler serves the registry in the Prometheus exposition format.
func (t *Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{t.log},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// slogPrinter adapts slog to promhttp's Logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics scrape failed", "err", v) }

// Observe records one query and its reply. It has the signature of
// agent.Options.Observe and never blocks.
func (t *Telemetry) Observe(q agent.Query, a agent.Answer) {
	transport := q.Transport
	if transport == "" {
		transport = "unknown"
	}
	tier := string(a.Tier)
	if a.Error != nil || tier == "" {
		tier = "none"
	}
	t.requests.WithLabelValues(transport, tier).Inc()
	t.latency.WithLabelValues(tier).Observe(a.LatencyMS / 1000)
	if a.Error != nil {
		t.errors.WithLabelValues(transport, string(a.Error.Code)).Inc()
	}
	// A cache hit carries the confidence of the original classification;
	// counting it again would weigh popular questions twice.
	if a.Error == nil && a.Intent != "" && a.Tier != agent.TierCache {
		t.confidence.Observe(a.Confidence)
	}
	outcome := escalationOutcome(a)
	if outcome != "" {
		t.escalations.WithLabelValues(outcome).Inc()
	}

	d := Decision{
		Time:       time.Now().UTC(),
		ID:         q.ID,
		Transport:  transport,
		Prefer:     string(q.Prefer),
		Intent:     a.Intent,
		Confidence: a.Confidence,
		Tier:       string(a.Tier),
		Model:      a.Model,
		LatencyMS:  a.LatencyMS,
		Degraded:   a.Degraded,
		Queued:     a.Queued,
		Reason:     a.Reason,
	}
	if d.Prefer == "" {
		d.Prefer = string(agent.PreferAuto)
	}
	if a.Error != nil {
		d.Error = string(a.Error.Code)
	}
	if t.debug {
		d.Text = q.Text
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.total++
	if a.Error != nil {
		t.failed++
	} else {
		t.byTier[a.Tier]++
	}
	switch outcome {
	case "answered":
		t.escalated++
	case "queued":
		t.escalated++
		t.queued++
	}
	if len(t.recent) > 0 {
		t.recent[t.next] = d
		t.next = (t.next + 1) % len(t.recent)
		if t.next == 0 {
			t.filled = true
		}
	}
}

// escalationOutcome names what became of a query the policy sent toward the
// cloud, or "" when it did not.
func escalationOutcome(a agent.Answer) string {
	switch {
	case a.Error != nil:
		return ""
	case a.Tier == agent.TierCloud:
		return "answered"
	case a.Queued:
		return "queued"
	case a.Degraded != "":
		return a.Degraded
	}
	return ""
}

// SetOutboxDepth reports how many escalations wait in the outbox.
func (t *Telemetry) SetOutboxDepth(n int) {
	t.outboxDepth.Set(float64(n))
	t.mu.Lock()
	t.outbox = n
	t.mu.Unlock()
}

// SetLinkUp reports the cloud link state (the circuit breaker's view).
func (t *Telemetry) SetLinkUp(up bool) {
	v, s := 0.0, LinkDown
	if up {
		v, s = 1, LinkUp
	}
	t.linkUp.Set(v)
	t.mu.Lock()
	t.link = s
	t.mu.Unlock()
}

// AddCloudTokens counts n tokens spent on the cloud API; n <= 0 is ignored.
func (t *Telemetry) AddCloudTokens(n int) {
	if n <= 0 {
		return
	}
	t.cloudTokens.Add(float64(n))
	t.mu.Lock()
	t.tokens += uint64(n)
	t.mu.Unlock()
}

// ObserveLLMTokensPerSecond records the local LLM's speed for one answer;
// values that are not positive are ignored.
func (t *Telemetry) ObserveLLMTokensPerSecond(v float64) {
	if v > 0 {
		t.llmSpeed.Observe(v)
	}
}

// ObserveLLMGeneration records the speed of one answer from the
// generator's own counts: tokens sampled, and gen, the time from the first
// sampled token to the last. That is tokens-1 steps of decoding, so the
// speed is (tokens-1)/gen; prompt processing is not in it. Counting the
// pieces the generator emits instead would miss tokens held back (half a
// UTF-8 character, the start of a stop string) and merged into one piece.
// An answer of fewer than two tokens has no speed.
func (t *Telemetry) ObserveLLMGeneration(tokens int, gen time.Duration) {
	if tokens >= 2 && gen > 0 {
		t.ObserveLLMTokensPerSecond(float64(tokens-1) / gen.Seconds())
	}
}

// Decision is one query as the dashboard lists it.
type Decision struct {
	Time       time.Time `json:"time"`
	ID         string    `json:"id,omitempty"`
	Transport  string    `json:"transport"`
	Prefer     string    `json:"prefer"`
	Intent     string    `json:"intent,omitempty"`
	Confidence float64   `json:"confidence"`
	Tier       string    `json:"tier,omitempty"`
	Model      string    `json:"model,omitempty"`
	LatencyMS  float64   `json:"latency_ms"`
	Degraded   string    `json:"degraded,omitempty"`
	Queued     bool      `json:"queued,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Error      string    `json:"error,omitempty"`
	// Text is the query, only when debug is on.
	Text string `json:"text,omitempty"`
}

// Snapshot is the dashboard's view of the counters.
type Snapshot struct {
	UptimeSeconds float64           `json:"uptime_seconds"`
	Requests      uint64            `json:"requests"`
	Errors        uint64            `json:"errors"`
	ByTier        map[string]uint64 `json:"by_tier"`
	CacheHits     uint64            `json:"cache_hits"`
	CacheMisses   uint64            `json:"cache_misses"`
	Escalations   uint64            `json:"escalations"`
	Queued        uint64            `json:"queued"`
	OutboxDepth   int               `json:"outbox_depth"`
	Link          LinkState         `json:"link"`
	CloudTokens   uint64            `json:"cloud_tokens"`
	Debug         bool              `json:"debug"`
	// Recent lists the latest decisions, newest first.
	Recent []Decision `json:"recent"`
}

// Snapshot returns the current counters and recent decisions.
func (t *Telemetry) Snapshot() Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Snapshot{
		UptimeSeconds: time.Since(t.start).Seconds(),
		Requests:      t.total,
		Errors:        t.failed,
		ByTier:        map[string]uint64{},
		CacheHits:     t.hits,
		CacheMisses:   t.misses,
		Escalations:   t.escalated,
		Queued:        t.queued,
		OutboxDepth:   t.outbox,
		Link:          t.link,
		CloudTokens:   t.tokens,
		Debug:         t.debug,
		Recent:        []Decision{},
	}
	for _, tier := range []agent.Tier{agent.TierCache, agent.TierSLM, agent.TierLLM, agent.TierCloud} {
		s.ByTier[string(tier)] = t.byTier[tier]
	}
	n := t.next
	if t.filled {
		n = len(t.recent)
	}
	for i := 1; i <= n; i++ {
		s.Recent = append(s.Recent, t.recent[(t.next-i+len(t.recent))%len(t.recent)])
	}
	return s
}

// WrapCache returns c with its look-ups counted as cache hits, misses and
// errors. A nil c stays nil, so an unconfigured cache stays off.
func (t *Telemetry) WrapCache(c agent.Cache) agent.Cache {
	if c == nil {
		return nil
	}
	return &countingCache{Cache: c, t: t}
}

type countingCache struct {
	agent.Cache
	t *Telemetry
}

func (c *countingCache) Get(ctx context.Context, key string) (agent.Answer, bool, error) {
	a, ok, err := c.Cache.Get(ctx, key)
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	switch {
	case err != nil:
		c.t.cacheErrors.Inc()
	case ok:
		c.t.cacheHits.Inc()
		c.t.hits++
	default:
		c.t.cacheMisses.Inc()
		c.t.misses++
	}
	return a, ok, err
}

var _ agent.Cache = (*countingCache)(nil)
