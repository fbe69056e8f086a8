package conversation

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
)

func openStore(t *testing.T, dir string, now func() time.Time) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func users(ts []agent.Turn) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.User)
	}
	return strings.Join(s, ",")
}

func TestBoundsScopeAndRestart(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	dir := t.TempDir()
	st := openStore(t, dir, now)
	m := New(st, Options{MaxTurns: 3, IdleTTL: time.Hour})
	for i := 1; i <= 5; i++ {
		if err := m.Append(ctx, "uid:1000", "kitchen", agent.Turn{User: fmt.Sprint("q", i), Answer: "a", Tier: agent.TierSLM}); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := m.History(ctx, "uid:1000", "kitchen"); err != nil || users(h) != "q3,q4,q5" {
		t.Fatalf("history = %q %v, want the last 3 turns", users(h), err)
	}
	// Another caller with the same id has a conversation of its own.
	if h, _ := m.History(ctx, "uid:1001", "kitchen"); len(h) != 0 {
		t.Fatalf("another caller reads %q", users(h))
	}
	st.Close()
	st = openStore(t, dir, now)
	defer st.Close()
	m = New(st, Options{MaxTurns: 3, IdleTTL: time.Hour})
	if h, _ := m.History(ctx, "uid:1000", "kitchen"); users(h) != "q3,q4,q5" || !h[0].At.Equal(clock) {
		t.Fatalf("after a restart: %q (at %v)", users(h), h[0].At)
	}
	clock = clock.Add(61 * time.Minute)
	if h, _ := m.History(ctx, "uid:1000", "kitchen"); len(h) != 0 {
		t.Fatalf("an idle conversation outlived its TTL: %q", users(h))
	}
}

func TestBytesBoundDropsOldest(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir(), nil)
	defer st.Close()
	m := New(st, Options{MaxBytes: 600})
	long := strings.Repeat("x", 200)
	for i := 1; i <= 4; i++ {
		if err := m.Append(ctx, "c", "id", agent.Turn{User: fmt.Sprint("q", i), Answer: long}); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := m.History(ctx, "c", "id")
	if len(h) == 0 || len(h) >= 4 || h[len(h)-1].User != "q4" {
		t.Fatalf("history %q: want the newest turns within 600 bytes", users(h))
	}
	if ok, err := m.Delete(ctx, "c", "id"); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if h, _ := m.History(ctx, "c", "id"); len(h) != 0 {
		t.Fatal("deleted conversation still has turns")
	}
}
