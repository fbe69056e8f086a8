package cloudbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/cloudbridge/anonymize"
)

// deferred is an outbox entry's payload. It holds the anonymized text that
// will be sent and, beside it, the mapping that restores the answer: the
// outbox is local storage (hedge.db, 0600), and the mapping is never sent.
// The original text is not stored; it is Restore(Text, Mapping).
type deferred struct {
	V         int               `json:"v"`
	ID        string            `json:"id,omitempty"`
	Text      string            `json:"text"`
	Mapping   anonymize.Mapping `json:"mapping,omitempty"`
	Entities  map[string]int    `json:"entities,omitempty"`
	Caller    string            `json:"caller,omitempty"`
	MaxTokens int               `json:"max_tokens,omitempty"`
	// CacheKey is agent.CacheKey of the original query's cloud answer,
	// max_tokens included: the late answer is cached under it.
	CacheKey string    `json:"cache_key"`
	Queued   time.Time `json:"queued"`
	// System and Prior are the query's own system prompt and the earlier
	// turns of its conversation, anonymized with Mapping (absent in
	// entries queued before conversations).
	System string     `json:"system,omitempty"`
	Prior  []exchange `json:"prior,omitempty"`
}

const deferredVersion = 1

// Defer durably stores q's anonymized escalation; Run sends it when the
// link is up and delivers the answer to q.ReplyTo with Late set. A query
// queued twice (same id, caller, reply_to and text) is stored once. When
// the outbox is full the oldest entries are dropped to make room.
func (b *Bridge) Defer(ctx context.Context, q agent.Query) error {
	r := b.anonymizeQuery(q)
	if r.Private() {
		return fmt.Errorf("queue cloud escalation: %w (%s)", ErrPrivate, kindList(r.KeepLocal))
	}
	now := b.o.State.Now()
	payload, err := json.Marshal(deferred{
		V: deferredVersion, ID: q.ID, Text: r.Text, Mapping: r.Mapping, Entities: r.CountsByName(),
		Caller: q.Caller, MaxTokens: q.MaxTokens, System: r.System, Prior: r.Prior,
		CacheKey: agent.CacheKey(q, agent.TierCloud, b.o.CacheVersion), Queued: now,
	})
	if err != nil {
		return fmt.Errorf("queue cloud escalation: %w", err)
	}
	dropped, err := b.o.State.Enqueue(ctx, store.OutboxEntry{
		Key: idempotencyKey(q), ReplyTo: q.ReplyTo, Payload: payload,
		Created: now, Expires: now.Add(b.o.MaxAge),
	})
	switch {
	case errors.Is(err, store.ErrDuplicate):
		return nil // already queued (or answered): one late answer is enough
	case errors.Is(err, store.ErrTooLarge):
		b.count(func(s *Stats) { s.Drops["too_large"]++ })
		return fmt.Errorf("queue cloud escalation: %w", err)
	case err != nil:
		return fmt.Errorf("queue cloud escalation: %w", err)
	}
	b.count(func(s *Stats) {
		s.Deferred++
		if dropped > 0 {
			s.Drops["full"] += int64(dropped)
		}
	})
	if dropped > 0 {
		b.log.Warn("outbox full, dropped the oldest escalations", "dropped", dropped)
	}
	b.kick()
	b.reportDepth(ctx)
	return nil
}

// kick wakes Run without blocking.
func (b *Bridge) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Bridge) reportDepth(ctx context.Context) {
	if b.o.Metrics == nil {
		return
	}
	if n, _, err := b.o.State.OutboxStats(ctx); err == nil {
		b.o.Metrics.SetOutboxDepth(n)
	}
}

// Run monitors the link and drains the outbox until ctx ends; it returns
// nil then. While the circuit is closed it sends queued escalations,
// Concurrency at a time; while it is open it sleeps until the backoff has
// passed and probes the endpoint (the half-open trial).
func (b *Bridge) Run(ctx context.Context) error {
	b.reportDepth(ctx)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		switch b.br.State() {
		case LinkHalfOpen:
			b.probe(ctx)
			continue
		case LinkClosed:
			n, err := b.drainBatch(ctx)
			if err != nil && ctx.Err() == nil {
				b.log.Warn("outbox drain failed", "err", err)
			}
			if n > 0 {
				b.reportDepth(ctx)
				continue
			}
		}
		wait := b.o.Poll
		if at := b.br.retryAt(); !at.IsZero() {
			wait = min(wait, max(at.Sub(b.o.State.Now()), time.Millisecond))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// probe is the half-open trial of the monitor.
func (b *Bridge) probe(ctx context.Context) {
	ok, trial := b.br.allow()
	if !ok || !trial {
		return
	}
	err := b.cl.probe(ctx)
	var ce *callError
	switch {
	case err == nil:
		b.br.success()
		b.log.Info("cloud link is up")
	case errors.As(err, &ce):
		next := b.br.failure(ce.kind, ce.retryAfter)
		b.count(func(s *Stats) { s.Failures++ })
		b.log.Debug("cloud link still down", "err", err, "next_probe", next)
	default:
		b.br.abort()
	}
}

// drainBatch claims up to Concurrency entries and handles them in
// parallel; it returns how many it claimed. Entries handled together are
// finished (acked or released) before the next batch is claimed.
func (b *Bridge) drainBatch(ctx context.Context) (int, error) {
	entries, err := b.o.State.Claim(ctx, b.o.Concurrency, b.o.Lease)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.handle(ctx, e)
		}()
	}
	wg.Wait()
	return len(entries), nil
}

// handle takes one claimed entry to its end: ask the cloud (unless an
// answer is stored already), store the answer, cache it, deliver it, ack.
// The answer is stored before delivery, so a crash in between re-delivers
// the stored answer without a new cloud call. On failure the entry is
// released for a later attempt.
func (b *Bridge) handle(ctx context.Context, e store.OutboxEntry) {
	var p deferred
	if err := json.Unmarshal(e.Payload, &p); err != nil || p.V != deferredVersion {
		b.log.Warn("outbox entry unreadable, dropped", "key", e.Key, "err", err)
		b.ack(ctx, e.Key)
		b.count(func(s *Stats) { s.Drops["corrupt"]++ })
		return
	}
	var ans agent.Answer
	if e.State == store.OutboxAnswered {
		if err := json.Unmarshal(e.Answer, &ans); err != nil {
			// The stored answer is unreadable: ask again.
			e.State = store.OutboxClaimed
		}
	}
	if e.State != store.OutboxAnswered {
		var ok bool
		if ans, ok = b.ask(ctx, e, p); !ok {
			return
		}
	}
	b.deliver(ctx, e, ans)
}

// ask sends a queued escalation; ok is false when the entry was released
// or dropped instead.
func (b *Bridge) ask(ctx context.Context, e store.OutboxEntry, p deferred) (agent.Answer, bool) {
	now := b.o.State.Now()
	if spent, err := b.spent(ctx, p.Caller); err != nil || spent {
		// Try again tomorrow; the entry may expire first.
		b.release(ctx, e.Key, nextDay(now))
		return agent.Answer{}, false
	}
	ok, trial := b.br.allow()
	if !ok {
		b.release(ctx, e.Key, b.br.retryAt())
		return agent.Answer{}, false
	}
	r := anonymized{Result: anonymize.Result{Text: p.Text, Mapping: p.Mapping, Counts: map[anonymize.Kind]int{}}, System: p.System, Prior: p.Prior}
	for k, n := range p.Entities {
		r.Counts[anonymize.Kind(k)] = n
	}
	rep, err := b.call(ctx, p.Caller, r, p.MaxTokens, trial, nil)
	if err != nil {
		b.failed(ctx, e, p, err, now)
		return agent.Answer{}, false
	}
	ans := agent.Answer{
		ID:         p.ID,
		Answer:     anonymize.Restore(rep.Text, p.Mapping),
		Tier:       agent.TierCloud,
		Model:      rep.Model,
		Truncated:  rep.Truncated,
		Late:       true,
		Anonymized: true,
		Entities:   p.Entities,
		Reason:     "late cloud answer to an escalation queued while the link was down",
	}
	data, err := json.Marshal(ans)
	if err == nil {
		err = b.o.State.MarkAnswered(ctx, e.Key, data)
	}
	if err != nil {
		// Without a stored answer a crash could ask twice; delivering now
		// could deliver twice. Keep the entry for another attempt.
		b.log.Warn("cloud answer not stored, will ask again", "key", e.Key, "err", err)
		b.release(context.WithoutCancel(ctx), e.Key, now.Add(b.o.BackoffMin))
		return agent.Answer{}, false
	}
	if b.o.CacheTTL > 0 && p.CacheKey != "" {
		cached := ans
		cached.Late, cached.Reason = false, ""
		if err := b.o.State.Put(ctx, p.CacheKey, cached, b.o.CacheTTL); err != nil {
			b.log.Warn("late cloud answer not cached", "err", err)
		}
	}
	return ans, true
}

// failed takes care of an entry whose cloud call failed at now: it is
// released for a later attempt, or, refused MaxAttempts times, dropped, and
// its asker, told at first that the answer would follow, is told that it
// will not.
func (b *Bridge) failed(ctx context.Context, e store.OutboxEntry, p deferred, err error, now time.Time) {
	switch {
	case ctx.Err() != nil:
		b.release(context.WithoutCancel(ctx), e.Key, time.Time{})
	case errors.Is(err, ErrRejected) && e.Attempts >= b.o.MaxAttempts:
		b.log.Warn("cloud refused a queued escalation, dropped", "key", e.Key, "attempts", e.Attempts, "err", err)
		b.ack(ctx, e.Key)
		b.count(func(s *Stats) { s.Drops["rejected"]++ })
		b.tellRefused(ctx, e, p, err)
	case errors.Is(err, ErrRejected):
		b.release(ctx, e.Key, now.Add(b.o.BackoffMin<<min(e.Attempts, 16)))
	case errors.Is(err, ErrBudget):
		b.release(ctx, e.Key, nextDay(now))
	default:
		next := b.br.retryAt()
		if next.IsZero() {
			next = now.Add(b.o.BackoffMin)
		}
		b.release(ctx, e.Key, next)
	}
}

// tellRefused delivers a late cloud_config error for a dropped entry, once
// and best effort: the entry is gone, so a failed delivery is only logged.
func (b *Bridge) tellRefused(ctx context.Context, e store.OutboxEntry, p deferred, err error) {
	if e.ReplyTo == "" || b.o.Courier == nil {
		return
	}
	ans := agent.ErrorAnswer(p.ID, agent.Errorf(agent.CodeCloudConfig, "the queued escalation was dropped: %v", err))
	ans.Late = true
	if derr := b.o.Courier.Deliver(context.WithoutCancel(ctx), e.ReplyTo, ans); derr != nil {
		b.count(func(s *Stats) { s.DeliveryFailures++ })
		b.log.Warn("refusal of a queued escalation not delivered", "key", e.Key, "err", derr)
	}
}

// deliver sends a late answer to its reply_to and acks the entry. Without
// a reply_to or a courier the answer was only cached.
func (b *Bridge) deliver(ctx context.Context, e store.OutboxEntry, ans agent.Answer) {
	if e.ReplyTo != "" && b.o.Courier != nil {
		if err := b.o.Courier.Deliver(ctx, e.ReplyTo, ans); err != nil {
			b.count(func(s *Stats) { s.DeliveryFailures++ })
			b.log.Warn("late cloud answer not delivered, will retry", "key", e.Key, "err", err)
			b.release(context.WithoutCancel(ctx), e.Key, b.o.State.Now().Add(b.o.BackoffMin<<min(e.Attempts, 8)))
			return
		}
	}
	b.ack(ctx, e.Key)
	b.count(func(s *Stats) { s.Late++ })
}

func (b *Bridge) ack(ctx context.Context, key string) {
	if err := b.o.State.Ack(context.WithoutCancel(ctx), key); err != nil && !errors.Is(err, store.ErrNotFound) {
		b.log.Warn("outbox ack failed", "key", key, "err", err)
	}
}

func (b *Bridge) release(ctx context.Context, key string, notBefore time.Time) {
	if err := b.o.State.Release(ctx, key, notBefore); err != nil && !errors.Is(err, store.ErrNotFound) {
		b.log.Warn("outbox release failed", "key", key, "err", err)
	}
}
