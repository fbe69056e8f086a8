// Package cloudbridge is hedge's cloud tier: it anonymizes a query on the
// device, asks any OpenAI-compatible API (through go-openai), restores the
// placeholders in the answer, and keeps escalations in a durable outbox
// while the link is down, delivering their answers late when it returns.
//
// A circuit breaker tracks the link; while it is open nothing waits on the
// cloud: Check answers from memory, Generate fails at once, and only the
// monitor (Run) probes the endpoint, with backoff. A daily budget of
// requests and tokens, per device and per caller, is kept in the store's
// counters.
package cloudbridge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/cloudbridge/anonymize"
)

// State is what the bridge keeps on the device: the durable outbox, the
// budget counters and the answer cache. *store.Store implements it; its
// methods are safe for concurrent use, and a missing outbox key is
// store.ErrNotFound, a repeated one store.ErrDuplicate.
type State interface {
	Enqueue(ctx context.Context, e store.OutboxEntry) (dropped int, err error)
	Claim(ctx context.Context, n int, lease time.Duration) ([]store.OutboxEntry, error)
	MarkAnswered(ctx context.Context, key string, answer []byte) error
	Ack(ctx context.Context, key string) error
	Release(ctx context.Context, key string, notBefore time.Time) error
	OutboxStats(ctx context.Context) (count int, size int64, err error)
	Add(ctx context.Context, key string, delta int64, expires time.Time) (int64, error)
	Counter(ctx context.Context, key string) (int64, error)
	Put(ctx context.Context, key string, a agent.Answer, ttl time.Duration) error
	// Now is the clock the state judges expiry by; the bridge has no other,
	// so its budgets and delays never disagree with the store's records.
	Now() time.Time
}

// Metrics receives the bridge's gauges and counters as they change; the
// telemetry package implements it. Its methods must not block.
type Metrics interface {
	SetOutboxDepth(n int)
	SetLinkUp(up bool)
	AddCloudTokens(n int)
}

// Options configures a Bridge. Zero durations and counts take the
// defaults of agent/config.
type Options struct {
	// BaseURL, Model and APIKey name the OpenAI-compatible API. The key is
	// sent as a bearer token and appears nowhere else.
	BaseURL, Model, APIKey string
	SystemPrompt           string
	// Timeout bounds a request end to end; ConnectTimeout the handshake.
	Timeout, ConnectTimeout time.Duration
	// MaxTokens caps an answer; a query's own max_tokens may lower it.
	MaxTokens int
	// Stream uses the streaming API when the caller passes emit.
	Stream bool

	// Failures, BackoffMin and BackoffMax tune the circuit breaker.
	Failures               int
	BackoffMin, BackoffMax time.Duration

	// Concurrency bounds the requests of a drain; MaxAttempts bounds how
	// often a refused (4xx) escalation is tried before it is dropped.
	Concurrency, MaxAttempts int
	// MaxAge is how long a queued escalation waits before it expires.
	MaxAge time.Duration
	// Lease is how long a drain holds an entry before another may claim it
	// (after a crash, the entries in flight wait this long); 0 means
	// 2×Timeout + 30s.
	Lease time.Duration
	// Poll is how often Run looks for entries whose retry time has come
	// while nothing else wakes it; 0 means 10s.
	Poll time.Duration

	Budget Budget

	Anonymizer *anonymize.Anonymizer
	State      State
	// Courier delivers late answers; nil caches them only.
	Courier agent.Courier
	// CacheVersion and CacheTTL must match the agent's, so that a late
	// answer serves the next identical query from the cache.
	CacheVersion string
	CacheTTL     time.Duration
	Metrics      Metrics
	Log          *slog.Logger
	// Transport replaces the HTTP transport (tests); nil builds one.
	Transport http.RoundTripper
}

// Bridge is the cloud tier. It is safe for concurrent use.
type Bridge struct {
	o    Options
	log  *slog.Logger
	cl   *client
	br   *breaker
	anon *anonymize.Anonymizer
	wake chan struct{}
	// refusals rate-limits the log lines of refused requests.
	refusals *refusalLog

	mu    sync.Mutex
	stats Stats
}

// Stats is a snapshot of the bridge for metrics and the dashboard.
type Stats struct {
	Link        LinkState `json:"link"`
	OutboxDepth int       `json:"outbox_depth"`
	OutboxBytes int64     `json:"outbox_bytes"`
	// Escalations answered at once; Deferred escalations queued; Late
	// answers delivered (or cached, without a reply_to) after a queue.
	Escalations int64 `json:"escalations"`
	Deferred    int64 `json:"deferred"`
	Late        int64 `json:"late"`
	// Failures of cloud calls and probes; DeliveryFailures of late answers.
	Failures         int64 `json:"failures"`
	DeliveryFailures int64 `json:"delivery_failures"`
	TokensSpent      int64 `json:"tokens_spent"`
	// Entities counts replaced values by kind over every escalation.
	Entities map[string]int64 `json:"entities,omitempty"`
	// Drops counts queued escalations given up, by reason: "full" (the
	// oldest dropped for a new one), "too_large" (an entry larger than the
	// whole outbox), "rejected" (refused max_attempts times), "corrupt".
	Drops map[string]int64 `json:"drops,omitempty"`
}

// New checks o and returns a Bridge; Run must run for queued escalations
// to drain.
func New(o Options) (*Bridge, error) {
	if o.BaseURL == "" || o.Model == "" {
		return nil, errors.New("cloud bridge: base_url and model are required")
	}
	if o.Anonymizer == nil || o.State == nil {
		return nil, errors.New("cloud bridge: an anonymizer and a state store are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 30*time.Second)
	def(&o.ConnectTimeout, 5*time.Second)
	def(&o.BackoffMin, time.Second)
	def(&o.BackoffMax, 5*time.Minute)
	def(&o.MaxAge, 24*time.Hour)
	def(&o.Lease, 2*o.Timeout+30*time.Second)
	def(&o.Poll, 10*time.Second)
	if o.MaxTokens <= 0 {
		o.MaxTokens = 512
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Failures <= 0 {
		o.Failures = 3
	}
	b := &Bridge{
		o:        o,
		log:      o.Log.With("component", "cloud"),
		anon:     o.Anonymizer,
		wake:     make(chan struct{}, 1),
		refusals: newRefusalLog(refusalLogEvery),
		cl: newClient(clientOptions{
			BaseURL: o.BaseURL, Model: o.Model, APIKey: o.APIKey, SystemPrompt: o.SystemPrompt,
			Timeout: o.Timeout, ConnectTimeout: o.ConnectTimeout, Transport: o.Transport,
			Now: o.State.Now,
		}),
		br:    newBreaker(o.Failures, o.BackoffMin, o.BackoffMax, o.State.Now),
		stats: Stats{Entities: map[string]int64{}, Drops: map[string]int64{}},
	}
	b.br.onChange = func(s LinkState) {
		if o.Metrics != nil && s != LinkHalfOpen {
			o.Metrics.SetLinkUp(s == LinkClosed)
		}
	}
	if o.Metrics != nil {
		o.Metrics.SetLinkUp(true)
	}
	return b, nil
}

var _ agent.Cloud = (*Bridge)(nil)

// Check reports whether q may go to the cloud now, from memory and the
// local store only: keep_local entities first, then the budget, then the
// breaker (half-open counts as down: the monitor's probe is the trial).
func (b *Bridge) Check(ctx context.Context, q agent.Query) agent.CloudState {
	// Check runs for every query, also those the policy answers locally
	// anyway, so it counts nothing: the agent's replies (degraded
	// "private", "budget") say what the cloud was denied.
	if b.anon.KeepsLocal() && b.anonymizeQuery(q).Private() {
		return agent.CloudPrivate
	}
	spent, err := b.spent(ctx, q.Caller)
	if err != nil {
		b.log.Warn("cloud budget unreadable, treating it as spent", "err", err)
		spent = true
	}
	if spent {
		return agent.CloudBudget
	}
	if !b.br.Ready() {
		return agent.CloudDown
	}
	return agent.CloudReady
}

// Generate anonymizes q, asks the cloud and restores the answer. emit, when
// set and streaming is configured, receives restored pieces as they come.
// It fails at once with ErrUnavailable while the circuit is open.
func (b *Bridge) Generate(ctx context.Context, q agent.Query, emit func(string)) (agent.Answer, error) {
	r := b.anonymizeQuery(q)
	if r.Private() {
		return agent.Answer{}, fmt.Errorf("cloud escalation: %w (%s)", ErrPrivate, kindList(r.KeepLocal))
	}
	if spent, err := b.spent(ctx, q.Caller); err != nil {
		return agent.Answer{}, err
	} else if spent {
		return agent.Answer{}, fmt.Errorf("cloud escalation: %w", ErrBudget)
	}
	ok, trial := b.br.allow()
	if !ok {
		return agent.Answer{}, fmt.Errorf("cloud escalation: %w: circuit open until %s", ErrUnavailable, b.br.retryAt().UTC().Format(time.RFC3339))
	}
	rep, err := b.call(ctx, q.Caller, r, q.MaxTokens, trial, emit)
	if err != nil {
		return agent.Answer{}, err
	}
	b.count(func(s *Stats) { s.Escalations++ })
	return agent.Answer{
		Answer:      anonymize.Restore(rep.Text, r.Mapping),
		Tier:        agent.TierCloud,
		Model:       rep.Model,
		Truncated:   rep.Truncated,
		Anonymized:  true,
		Entities:    r.CountsByName(),
		CloudPrompt: r.Text,
		CloudText:   rep.Text,
	}, nil
}

// anonymized is a query as the cloud sees it: the question, the earlier
// turns and the query's own system prompt, all with placeholders from one
// mapping, which restores the answer.
type anonymized struct {
	anonymize.Result
	System string     `json:"system,omitempty"`
	Prior  []exchange `json:"prior,omitempty"`
}

// exchange is one earlier turn, anonymized.
type exchange struct {
	User   string `json:"user"`
	Answer string `json:"answer"`
}

// anonymizeQuery anonymizes q's whole conversation at once, so a value
// keeps its placeholder across the turns: the [PERSON_1] of the first turn
// is the [PERSON_1] of the third, and the answer restores either.
func (b *Bridge) anonymizeQuery(q agent.Query) anonymized {
	texts := make([]string, 0, 2+2*len(q.History))
	texts = append(texts, q.System)
	for _, t := range q.History {
		texts = append(texts, t.User, t.Answer)
	}
	out, r := b.anon.AnonymizeAll(append(texts, q.Text))
	a := anonymized{Result: r, System: out[0]}
	for i := range q.History {
		a.Prior = append(a.Prior, exchange{User: out[1+2*i], Answer: out[2+2*i]})
	}
	return a
}

// call sends an anonymized text the breaker allowed, keeping the breaker,
// the budget and the stats up to date. A trial that cannot go (budget)
// gives its turn back.
func (b *Bridge) call(ctx context.Context, caller string, r anonymized, maxTokens int, trial bool, emit func(string)) (reply, error) {
	if err := b.reserve(ctx, caller); err != nil {
		if trial {
			b.br.abort()
		}
		return reply{}, err
	}
	if maxTokens <= 0 || maxTokens > b.o.MaxTokens {
		maxTokens = b.o.MaxTokens
	}
	var rs *anonymize.Restorer
	var pieces func(string)
	if emit != nil && b.o.Stream {
		rs = anonymize.NewRestorer(r.Mapping)
		pieces = func(p string) {
			if s := rs.Write(p); s != "" {
				emit(s)
			}
		}
	}
	rep, err := b.cl.chat(ctx, r, maxTokens, pieces)
	if err != nil {
		var ce *callError
		if errors.As(err, &ce) {
			b.br.failure(ce.kind, ce.retryAfter)
			b.count(func(s *Stats) { s.Failures++ })
			b.logFailure(ce)
			if ce.kind == failLink {
				// Nothing reached the server: the request does not count.
				b.unreserve(ctx, caller)
			}
		} else if trial {
			b.br.abort()
		}
		return reply{}, err
	}
	if rs != nil {
		if s := rs.Flush(); s != "" {
			emit(s)
		}
	} else if emit != nil {
		emit(anonymize.Restore(rep.Text, r.Mapping))
	}
	b.br.success()
	if rep.Model == "" {
		rep.Model = b.o.Model
	}
	b.charge(ctx, caller, rep.Tokens)
	if b.o.Metrics != nil {
		b.o.Metrics.AddCloudTokens(rep.Tokens)
	}
	b.count(func(s *Stats) {
		s.TokensSpent += int64(rep.Tokens)
		for k, n := range r.Counts {
			s.Entities[string(k)] += int64(n)
		}
	})
	return rep, nil
}

// logFailure logs a failed call. A refusal is a setting to fix, logged
// once per cause (rate-limited); other failures are bounded by the breaker,
// which stops the calls once it opens. The message is already redacted.
func (b *Bridge) logFailure(ce *callError) {
	if ce.kind != failRejected {
		b.log.Warn("cloud request failed", "err", ce, "link", b.br.State())
		return
	}
	if ok, quiet := b.refusals.note(ce.status, b.o.State.Now()); ok {
		b.log.Error("cloud refused the request; its settings need fixing",
			"status", ce.status, "err", ce, "not_logged_since", quiet)
	}
}

// unreserve takes back the request counted for a call that never reached
// the server.
func (b *Bridge) unreserve(ctx context.Context, caller string) {
	if !b.o.Budget.active() {
		return
	}
	k := b.o.Budget.keys(b.o.State.Now(), caller)
	for _, key := range []string{k.requests, k.callerRequests} {
		if key != "" {
			_, _ = b.o.State.Add(context.WithoutCancel(ctx), key, -1, k.expires)
		}
	}
}

// Stats returns a snapshot; the outbox figures are read from the store.
func (b *Bridge) Stats(ctx context.Context) Stats {
	b.mu.Lock()
	s := b.stats
	s.Entities = copyMap(b.stats.Entities)
	s.Drops = copyMap(b.stats.Drops)
	b.mu.Unlock()
	s.Link = b.br.State()
	n, size, err := b.o.State.OutboxStats(ctx)
	if err != nil {
		b.log.Warn("outbox unreadable", "err", err)
	}
	s.OutboxDepth, s.OutboxBytes = n, size
	return s
}

func copyMap(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (b *Bridge) count(f func(*Stats)) {
	b.mu.Lock()
	f(&b.stats)
	b.mu.Unlock()
}

// Link returns the breaker's state.
func (b *Bridge) Link() LinkState { return b.br.State() }

func kindList(ks []anonymize.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// idempotencyKey names a query's escalation: the same request arriving
// twice (an MQTT QoS 1 redelivery) maps to the same key and is queued once.
// A query without an id cannot be told from a new one and gets a random key.
func idempotencyKey(q agent.Query) string {
	if q.ID == "" {
		var r [16]byte
		_, _ = rand.Read(r[:])
		return "r-" + hex.EncodeToString(r[:])
	}
	h := sha256.Sum256([]byte(q.Transport + "\x00" + q.Caller + "\x00" + q.ID + "\x00" + q.ReplyTo + "\x00" + q.Text))
	return "q-" + hex.EncodeToString(h[:16])
}
