package platform

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFactsCache: within maxAge the device is not read again (a changed
// load average stays unseen), yet Now is the time of each call and Uptime
// moves with it; past maxAge the new reading shows.
func TestFactsCache(t *testing.T) {
	root := fixtureRoot(t, "pi4")
	first, err := Detect(root)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewFactsCache(root, time.Second)
	c.now = func() time.Time { return clock }

	f := c.Facts()
	if !f.Now.Equal(clock) || f.Load != first.Load || f.Uptime != first.Uptime || f.Board != first.Board {
		t.Fatalf("first call: now %v load %v uptime %v board %q; want %v, %v, %v, %q",
			f.Now, f.Load, f.Uptime, f.Board, clock, first.Load, first.Uptime, first.Board)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/loadavg"), []byte("3.00 2.00 1.00 1/100 4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(900 * time.Millisecond)
	f = c.Facts()
	if f.Load != first.Load {
		t.Errorf("within maxAge: load %v, want the cached %v", f.Load, first.Load)
	}
	if !f.Now.Equal(clock) {
		t.Errorf("within maxAge: now %v, want the call's time %v", f.Now, clock)
	}
	if want := first.Uptime + 900*time.Millisecond; f.Uptime != want {
		t.Errorf("within maxAge: uptime %v, want %v", f.Uptime, want)
	}

	clock = clock.Add(100 * time.Millisecond)
	f = c.Facts()
	if f.Load != [3]float64{3, 2, 1} {
		t.Errorf("past maxAge: load %v, want the new reading [3 2 1]", f.Load)
	}
	if f.Uptime != first.Uptime {
		t.Errorf("past maxAge: uptime %v, want the file's %v", f.Uptime, first.Uptime)
	}

	// A clock that went back reads again rather than trusting a reading
	// from its future.
	if err := os.WriteFile(filepath.Join(root, "proc/loadavg"), []byte("0.50 0.40 0.30 1/100 4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(-time.Hour)
	if f = c.Facts(); f.Load != [3]float64{0.5, 0.4, 0.3} {
		t.Errorf("after the clock went back: load %v, want a new reading", f.Load)
	}
}

// TestFactsCacheNoAge: a maxAge of 0 reads on every call.
func TestFactsCacheNoAge(t *testing.T) {
	root := fixtureRoot(t, "pi4")
	c := NewFactsCache(root, 0)
	_ = c.Facts()
	if err := os.WriteFile(filepath.Join(root, "proc/loadavg"), []byte("3.00 2.00 1.00 1/100 4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f := c.Facts(); f.Load != [3]float64{3, 2, 1} {
		t.Errorf("load %v, want the new reading", f.Load)
	}
}

// BenchmarkFacts compares a reading of the device with a cached one.
func BenchmarkFacts(b *testing.B) {
	b.Run("detect", func(b *testing.B) {
		for b.Loop() {
			_, _ = Detect("/")
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := NewFactsCache("/", time.Second)
		for b.Loop() {
			_ = c.Facts()
		}
	})
}
