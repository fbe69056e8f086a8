package cloudbridge

import (
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBreakerTransitions(t *testing.T) {
	type step struct {
		do        string // "fail:<kind>", "ok", "allow", "advance"
		kind      failure
		retry     time.Duration
		advance   time.Duration
		wantState LinkState
		wantAllow bool // for "allow"
		wantTrial bool
	}
	const sec = time.Second
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"connection error opens at once", []step{
			{do: "fail", kind: failLink, wantState: LinkOpen},
			{do: "allow", wantState: LinkOpen, wantAllow: false},
		}},
		{"5xx opens after the threshold", []step{
			{do: "fail", kind: failServer, wantState: LinkClosed},
			{do: "fail", kind: failServer, wantState: LinkClosed},
			{do: "fail", kind: failServer, wantState: LinkOpen},
		}},
		{"a success resets the 5xx count", []step{
			{do: "fail", kind: failServer, wantState: LinkClosed},
			{do: "fail", kind: failServer, wantState: LinkClosed},
			{do: "ok", wantState: LinkClosed},
			{do: "fail", kind: failServer, wantState: LinkClosed},
			{do: "fail", kind: failServer, wantState: LinkClosed},
		}},
		{"4xx keeps the link closed", []step{
			{do: "fail", kind: failRejected, wantState: LinkClosed},
			{do: "allow", wantState: LinkClosed, wantAllow: true},
		}},
		{"429 honours Retry-After", []step{
			{do: "fail", kind: failThrottle, retry: 60 * sec, wantState: LinkOpen},
			{do: "advance", advance: 59 * sec, wantState: LinkOpen},
			{do: "allow", wantState: LinkOpen, wantAllow: false},
			{do: "advance", advance: 2 * sec, wantState: LinkHalfOpen},
		}},
		{"half-open lets one trial through; success closes", []step{
			{do: "fail", kind: failLink, wantState: LinkOpen},
			{do: "advance", advance: 2 * sec, wantState: LinkHalfOpen},
			{do: "allow", wantState: LinkHalfOpen, wantAllow: true, wantTrial: true},
			{do: "allow", wantState: LinkHalfOpen, wantAllow: false},
			{do: "ok", wantState: LinkClosed},
			{do: "allow", wantState: LinkClosed, wantAllow: true},
		}},
		{"a failed trial reopens with a longer backoff", []step{
			{do: "fail", kind: failLink, wantState: LinkOpen}, // backoff 1s ±20%
			{do: "advance", advance: 1300 * time.Millisecond, wantState: LinkHalfOpen},
			{do: "allow", wantState: LinkHalfOpen, wantAllow: true, wantTrial: true},
			{do: "fail", kind: failServer, wantState: LinkOpen}, // a trial's 5xx opens at once: 2s ±20%
			{do: "advance", advance: 1300 * time.Millisecond, wantState: LinkOpen},
			{do: "advance", advance: 1200 * time.Millisecond, wantState: LinkHalfOpen},
		}},
		{"backoff is capped", []step{
			{do: "fail", kind: failLink, wantState: LinkOpen},
			{do: "advance", advance: 2 * sec}, {do: "allow", wantAllow: true, wantTrial: true, wantState: LinkHalfOpen},
			{do: "fail", kind: failLink, wantState: LinkOpen},
			{do: "advance", advance: 3 * sec}, {do: "allow", wantAllow: true, wantTrial: true, wantState: LinkHalfOpen},
			{do: "fail", kind: failLink, wantState: LinkOpen},
			{do: "advance", advance: 5 * sec}, {do: "allow", wantAllow: true, wantTrial: true, wantState: LinkHalfOpen},
			{do: "fail", kind: failLink, wantState: LinkOpen}, // capped at 4s ±20%
			{do: "advance", advance: 4900 * time.Millisecond, wantState: LinkHalfOpen},
		}},
		{"an aborted trial gives its turn back", []step{
			{do: "fail", kind: failLink, wantState: LinkOpen},
			{do: "advance", advance: 2 * sec},
			{do: "allow", wantAllow: true, wantTrial: true, wantState: LinkHalfOpen},
			{do: "abort", wantState: LinkHalfOpen}, // open with the backoff passed reads half-open
			{do: "allow", wantAllow: true, wantTrial: true, wantState: LinkHalfOpen},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			b := newBreaker(3, sec, 4*sec, clk.now)
			var changes []LinkState
			b.onChange = func(s LinkState) { changes = append(changes, s) }
			for i, s := range tc.steps {
				switch s.do {
				case "fail":
					b.failure(s.kind, s.retry)
				case "ok":
					b.success()
				case "advance":
					clk.advance(s.advance)
				case "abort":
					b.abort()
				case "allow":
					ok, trial := b.allow()
					if ok != s.wantAllow || trial != s.wantTrial {
						t.Fatalf("step %d: allow = %v, %v; want %v, %v", i, ok, trial, s.wantAllow, s.wantTrial)
					}
				}
				if s.wantState != "" && b.State() != s.wantState {
					t.Fatalf("step %d (%s): state %s, want %s", i, s.do, b.State(), s.wantState)
				}
			}
		})
	}
}

func TestJitterBounds(t *testing.T) {
	for range 1000 {
		if j := jitter(time.Second); j < 800*time.Millisecond || j > 1200*time.Millisecond {
			t.Fatalf("jitter(1s) = %s", j)
		}
	}
	if jitter(0) != 0 {
		t.Error("jitter(0) != 0")
	}
}
