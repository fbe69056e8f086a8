package store

import (
	"context"
	"testing"
	"time"
)

func TestCounters(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	ctx := context.Background()
	day := clk.Now().Add(time.Hour)
	if n, err := s.Counter(ctx, "absent"); n != 0 || err != nil {
		t.Fatalf("Counter(absent) = %d, %v", n, err)
	}
	for i, want := range []int64{3, 5, 4} {
		n, err := s.Add(ctx, "cloud.requests", []int64{3, 2, -1}[i], day)
		if err != nil || n != want {
			t.Fatalf("Add #%d = %d, %v; want %d", i, n, err, want)
		}
	}
	if _, err := s.Add(ctx, "forever", 10, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Counter(ctx, "cloud.requests"); n != 4 {
		t.Errorf("Counter = %d, want 4", n)
	}
	clk.Advance(time.Hour)
	if n, err := s.Counter(ctx, "cloud.requests"); n != 0 || err != nil {
		t.Errorf("expired Counter = %d, %v; want 0", n, err)
	}
	// The read purged it: the next Add starts from zero.
	if n, _ := s.Add(ctx, "cloud.requests", 1, clk.Now().Add(time.Hour)); n != 1 {
		t.Errorf("Add after expiry = %d, want 1", n)
	}
	clk.Advance(1000 * time.Hour)
	if n, _ := s.Counter(ctx, "forever"); n != 10 {
		t.Errorf("counter without expiry = %d, want 10", n)
	}
	// An Add purges every expired counter, not just its own.
	if _, err := s.Add(ctx, "other", 1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n := bucketKeys(t, s, bCounter); n != 2 {
		t.Errorf("%d counters stored, want 2 (forever, other)", n)
	}
	if n := bucketKeys(t, s, bCounterExp); n != 0 {
		t.Errorf("%d counter expiries stored, want 0", n)
	}
}
