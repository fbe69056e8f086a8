package cloudbridge

import (
	"math/rand/v2"
	"sync"
	"time"
)

// LinkState is the circuit breaker's view of the cloud link.
type LinkState string

// The breaker states.
const (
	// LinkClosed: the link is up; requests go through.
	LinkClosed LinkState = "closed"
	// LinkOpen: the link is down; nothing waits on the cloud until the
	// backoff has passed.
	LinkOpen LinkState = "open"
	// LinkHalfOpen: the backoff has passed and one trial (the monitor's
	// probe or one queued escalation) decides between closed and open.
	LinkHalfOpen LinkState = "half-open"
)

// breaker is a circuit breaker. Connection errors, timeouts and 429 open
// it at once; 5xx and malformed replies open it after `threshold` in a row.
// While open, allow refuses at once. After the backoff (doubled after each
// failed trial, with ±20% jitter, at least Retry-After) one trial is let
// through; its success closes the circuit, its failure opens it again.
// It is safe for concurrent use.
type breaker struct {
	mu        sync.Mutex
	now       func() time.Time
	threshold int
	min, max  time.Duration

	state     LinkState
	failures  int // consecutive server failures while closed
	backoff   time.Duration
	openUntil time.Time
	trial     bool // a half-open trial is in flight
	onChange  func(LinkState)
}

func newBreaker(threshold int, min, max time.Duration, now func() time.Time) *breaker {
	return &breaker{now: now, threshold: max1(threshold), min: min, max: max, state: LinkClosed, backoff: min}
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// State returns the current state; an open circuit whose backoff has
// passed reads as half-open. It never blocks on anything but the mutex.
func (b *breaker) State() LinkState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == LinkOpen && !b.now().Before(b.openUntil) {
		return LinkHalfOpen
	}
	return b.state
}

// Ready reports whether a request may go now without being the trial of a
// half-open circuit: only when closed.
func (b *breaker) Ready() bool { return b.State() == LinkClosed }

// allow reports whether a request may go now. When the circuit is open and
// the backoff has passed, the first caller becomes the trial (trial ==
// true) and must report its outcome; others are refused until it does.
func (b *breaker) allow() (ok, trial bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case LinkClosed:
		return true, false
	case LinkOpen:
		if b.now().Before(b.openUntil) {
			return false, false
		}
		b.set(LinkHalfOpen)
		b.trial = true
		return true, true
	default: // half-open
		if b.trial {
			return false, false
		}
		b.trial = true
		return true, true
	}
}

// retryAt returns when the open circuit may be tried again (zero when not open).
func (b *breaker) retryAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == LinkClosed {
		return time.Time{}
	}
	return b.openUntil
}

// success reports a request that reached the cloud and got an answer
// (or a 4xx refusal, which proves the link works).
func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = 0
	b.backoff = b.min
	b.trial = false
	b.set(LinkClosed)
}

// failure reports a failed request of kind k; retryAfter, when positive,
// is the server's Retry-After. It returns the time the next trial may go
// (zero if the circuit stays closed).
func (b *breaker) failure(k failure, retryAfter time.Duration) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch k {
	case failNone, failRejected:
		// The server answered: the link is fine.
		b.failures = 0
		b.trial = false
		b.set(LinkClosed)
		return time.Time{}
	}
	now := b.now()
	switch {
	case b.trial:
		// The half-open trial failed: open again, waiting twice as long.
		b.trial = false
		b.backoff = min(b.backoff*2, b.max)
	case b.state != LinkClosed:
		// A request sent before the circuit opened failed too: it tells
		// nothing new, except a longer Retry-After.
		if until := now.Add(retryAfter); retryAfter > 0 && until.After(b.openUntil) {
			b.openUntil = until
		}
		return b.openUntil
	case k == failServer:
		b.failures++
		if b.failures < b.threshold {
			return time.Time{}
		}
	}
	wait := jitter(b.backoff)
	if retryAfter > wait {
		wait = retryAfter
	}
	b.openUntil = now.Add(wait)
	b.failures = 0
	b.set(LinkOpen)
	return b.openUntil
}

// set changes the state and tells onChange; the caller holds mu.
func (b *breaker) set(s LinkState) {
	if b.state == s {
		return
	}
	b.state = s
	if b.onChange != nil {
		b.onChange(s)
	}
}

// jitter spreads d by ±20% so that a fleet of devices behind one uplink
// does not probe the cloud in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	f := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * f)
}

// abort gives back a trial that was allowed but never sent (its budget was
// spent, its context ended): the circuit stays open and the next caller may
// try.
func (b *breaker) abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == LinkHalfOpen && b.trial {
		b.trial = false
		b.set(LinkOpen)
	}
}
