package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func enqueue(t *testing.T, s *Store, e OutboxEntry) int {
	t.Helper()
	n, err := s.Enqueue(context.Background(), e)
	if err != nil {
		t.Fatalf("Enqueue(%s): %v", e.Key, err)
	}
	return n
}

func claimKeys(t *testing.T, s *Store, n int, lease time.Duration) []string {
	t.Helper()
	es, err := s.Claim(context.Background(), n, lease)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range es {
		keys = append(keys, e.Key)
	}
	return keys
}

func TestOutboxLifecycle(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		enqueue(t, s, OutboxEntry{Key: k, ReplyTo: "reply/" + k, Payload: []byte("q " + k),
			// Whatever the caller says, an entry starts pending and unleased.
			State: OutboxAnswered, Attempts: 9, LeaseUntil: clk.Now().Add(time.Hour), Answer: []byte("no")})
		clk.Advance(time.Millisecond)
	}
	if n, size, err := s.OutboxStats(ctx); n != 3 || size <= 0 || err != nil {
		t.Fatalf("OutboxStats = %d, %d, %v", n, size, err)
	}
	got, err := s.Claim(ctx, 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "a" || got[1].Key != "b" {
		t.Fatalf("Claim(2) = %+v, want a, b", got)
	}
	a := got[0]
	if a.State != OutboxClaimed || a.Attempts != 1 || !a.LeaseUntil.Equal(clk.Now().Add(time.Minute)) ||
		a.ReplyTo != "reply/a" || string(a.Payload) != "q a" || a.Answer != nil || a.Created.IsZero() || a.Expires.IsZero() {
		t.Errorf("claimed entry = %+v", a)
	}
	if keys := claimKeys(t, s, 10, time.Minute); len(keys) != 1 || keys[0] != "c" {
		t.Fatalf("second Claim = %v, want [c]", keys)
	}
	if keys := claimKeys(t, s, 10, time.Minute); len(keys) != 0 {
		t.Fatalf("third Claim = %v, want none (all leased)", keys)
	}
	if err := s.MarkAnswered(ctx, "a", []byte("the answer")); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Ack = %v, want ErrNotFound", err)
	}
	if err := s.Release(ctx, "b", clk.Now().Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if keys := claimKeys(t, s, 10, time.Minute); len(keys) != 0 {
		t.Fatalf("Claim before NotBefore = %v, want none", keys)
	}
	clk.Advance(30 * time.Second)
	got, err = s.Claim(ctx, 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].Key != "b" || got[0].Attempts != 2 || got[0].State != OutboxClaimed {
		t.Fatalf("Claim after NotBefore = %+v, %v; want b, attempt 2", got, err)
	}
	if n, _, _ := s.OutboxStats(ctx); n != 2 {
		t.Errorf("OutboxStats count = %d, want 2", n)
	}
	for _, k := range []string{"b", "c"} {
		if err := s.Ack(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if n, size, _ := s.OutboxStats(ctx); n != 0 || size != 0 {
		t.Errorf("empty outbox stats = %d, %d", n, size)
	}
}

func TestOutboxUnknownKeys(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if err := s.Ack(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Ack = %v, want ErrNotFound", err)
	}
	if err := s.Release(ctx, "x", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Release = %v, want ErrNotFound", err)
	}
	if err := s.MarkAnswered(ctx, "x", []byte("a")); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkAnswered = %v, want ErrNotFound", err)
	}
	if _, err := s.Enqueue(ctx, OutboxEntry{}); err == nil {
		t.Error("Enqueue without key succeeded")
	}
	if _, err := s.Claim(ctx, 1, 0); err == nil {
		t.Error("Claim with zero lease succeeded")
	}
	if es, err := s.Claim(ctx, 0, time.Minute); len(es) != 0 || err != nil {
		t.Errorf("Claim(0) = %v, %v", es, err)
	}
}

func TestOutboxDuplicates(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, ReplyWindow: time.Hour})
	ctx := context.Background()
	enqueue(t, s, OutboxEntry{Key: "k", Payload: []byte("one")})
	_, before, _ := s.OutboxStats(ctx)
	if _, err := s.Enqueue(ctx, OutboxEntry{Key: "k", Payload: []byte("two, longer")}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate Enqueue = %v, want ErrDuplicate", err)
	}
	n, after, _ := s.OutboxStats(ctx)
	if n != 1 || after != before {
		t.Errorf("duplicate wrote something: %d entries, %d → %d bytes", n, before, after)
	}
	es, _ := s.Claim(ctx, 1, time.Minute)
	if len(es) != 1 || string(es[0].Payload) != "one" {
		t.Fatalf("Claim = %+v, want the first payload", es)
	}
	if err := s.Ack(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	// Recently acked: still a duplicate, also after a reopen (see
	// TestReopenKeepsEverything), until the window has passed.
	clk.Advance(59 * time.Minute)
	if _, err := s.Enqueue(ctx, OutboxEntry{Key: "k"}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("Enqueue of an acked key = %v, want ErrDuplicate", err)
	}
	clk.Advance(time.Minute)
	if _, err := s.Enqueue(ctx, OutboxEntry{Key: "k"}); err != nil {
		t.Fatalf("Enqueue after the window: %v", err)
	}
}

func TestOutboxDropOldestByCount(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, OutboxMaxCount: 3})
	ctx := context.Background()
	for i, wantDropped := range []int{0, 0, 0, 1, 1} {
		// a leased entry is dropped like any other
		if got := enqueue(t, s, OutboxEntry{Key: fmt.Sprint(i)}); got != wantDropped {
			t.Errorf("Enqueue #%d dropped %d, want %d", i, got, wantDropped)
		}
		if i == 0 {
			claimKeys(t, s, 1, time.Hour)
		}
		clk.Advance(time.Millisecond)
	}
	if n, _, _ := s.OutboxStats(ctx); n != 3 {
		t.Errorf("outbox holds %d entries, bound 3", n)
	}
	if keys := claimKeys(t, s, 10, time.Minute); fmt.Sprint(keys) != "[2 3 4]" {
		t.Errorf("remaining = %v, want the newest three", keys)
	}
	if err := s.Ack(ctx, "0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Ack of a dropped entry = %v, want ErrNotFound", err)
	}
}

func TestOutboxDropOldestByBytes(t *testing.T) {
	s := openTest(t, Options{OutboxMaxBytes: 1000})
	ctx := context.Background()
	payload := bytes.Repeat([]byte("x"), 200)
	total := 0
	for i := range 20 {
		total += enqueue(t, s, OutboxEntry{Key: fmt.Sprintf("k%02d", i), Payload: payload})
		_, size, _ := s.OutboxStats(ctx)
		if size > 1000 {
			t.Fatalf("after %d enqueues the outbox takes %d bytes, bound 1000", i+1, size)
		}
	}
	n, _, _ := s.OutboxStats(ctx)
	if n < 3 || n > 4 || total != 20-n {
		t.Errorf("%d entries of ~260 bytes kept under 1000 bytes, %d dropped", n, total)
	}
	keys := claimKeys(t, s, 10, time.Minute)
	if keys[len(keys)-1] != "k19" || keys[0] != fmt.Sprintf("k%02d", 20-n) {
		t.Errorf("kept %v, want the newest", keys)
	}
	// An entry bigger than the whole bound is refused, and drops nothing.
	if _, err := s.Enqueue(ctx, OutboxEntry{Key: "huge", Payload: make([]byte, 1000)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge Enqueue = %v, want ErrTooLarge", err)
	}
	if m, _, _ := s.OutboxStats(ctx); m != n {
		t.Errorf("refused entry changed the outbox: %d → %d entries", n, m)
	}
	// An answer that breaks the bound drops the oldest others, never itself.
	if err := s.MarkAnswered(ctx, "k19", make([]byte, 400)); err != nil {
		t.Fatal(err)
	}
	_, size, _ := s.OutboxStats(ctx)
	if size > 1000 {
		t.Errorf("after a big answer the outbox takes %d bytes", size)
	}
	if err := s.Ack(ctx, "k19"); err != nil {
		t.Errorf("answered entry was dropped: %v", err)
	}
	if err := s.MarkAnswered(ctx, keys[len(keys)-2], make([]byte, 2000)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MarkAnswered beyond the bound = %v, want ErrTooLarge", err)
	}
}

func TestOutboxExpiry(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, OutboxMaxAge: time.Hour})
	ctx := context.Background()
	now := clk.Now()
	enqueue(t, s, OutboxEntry{Key: "short", Expires: now.Add(time.Minute)})
	enqueue(t, s, OutboxEntry{Key: "capped", Expires: now.Add(48 * time.Hour)})
	enqueue(t, s, OutboxEntry{Key: "default"})
	es, _ := s.Claim(ctx, 10, time.Second)
	if len(es) != 3 || !es[1].Expires.Equal(now.Add(time.Hour)) || !es[2].Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("claimed %+v; want Expires capped at Created+OutboxMaxAge", es)
	}
	if _, err := s.Enqueue(ctx, OutboxEntry{Key: "stale", Expires: now.Add(-time.Second)}); err == nil {
		t.Error("Enqueue of an expired entry succeeded")
	}
	if _, err := s.Enqueue(ctx, OutboxEntry{Key: "old", Created: now.Add(-2 * time.Hour)}); err == nil {
		t.Error("Enqueue of an entry older than OutboxMaxAge succeeded")
	}
	clk.Advance(time.Minute)
	if keys := claimKeys(t, s, 10, time.Second); fmt.Sprint(keys) != "[capped default]" {
		t.Errorf("Claim after the short one expired = %v", keys)
	}
	if err := s.Ack(ctx, "short"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Ack of an expired entry = %v, want ErrNotFound", err)
	}
	clk.Advance(time.Hour)
	if n, size, err := s.OutboxStats(ctx); n != 0 || size != 0 || err != nil {
		t.Errorf("OutboxStats after everything expired = %d, %d, %v", n, size, err)
	}
	// An expired key was never delivered: it may be enqueued again.
	enqueue(t, s, OutboxEntry{Key: "short"})
}

func TestOutboxLeaseExpiry(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	enqueue(t, s, OutboxEntry{Key: "k"})
	if keys := claimKeys(t, s, 1, time.Minute); len(keys) != 1 {
		t.Fatal("first claim failed")
	}
	clk.Advance(time.Minute - time.Nanosecond)
	if keys := claimKeys(t, s, 1, time.Minute); len(keys) != 0 {
		t.Fatalf("claimed %v while leased", keys)
	}
	// The claimer died without Release: once the lease lapses the entry is
	// claimed again.
	clk.Advance(time.Nanosecond)
	es, err := s.Claim(context.Background(), 1, time.Minute)
	if err != nil || len(es) != 1 || es[0].Attempts != 2 || es[0].State != OutboxClaimed {
		t.Fatalf("re-claim after the lease = %+v, %v", es, err)
	}
}

func TestOutboxAnsweredIsRedelivered(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	ctx := context.Background()
	enqueue(t, s, OutboxEntry{Key: "k", Payload: []byte("question")})
	enqueue(t, s, OutboxEntry{Key: "other"})
	claimKeys(t, s, 1, time.Minute)
	if err := s.MarkAnswered(ctx, "k", []byte("cloud answer")); err != nil {
		t.Fatal(err)
	}
	// Still leased by its claimer after the answer.
	if keys := claimKeys(t, s, 10, time.Minute); fmt.Sprint(keys) != "[other]" {
		t.Fatalf("Claim while the answered entry is leased = %v", keys)
	}
	// The claimer crashed before delivering: after the lease the stored
	// answer comes back, still answered.
	clk.Advance(time.Minute)
	es, err := s.Claim(ctx, 1, time.Minute)
	if err != nil || len(es) != 1 {
		t.Fatal(es, err)
	}
	if e := es[0]; e.Key != "k" || e.State != OutboxAnswered || string(e.Answer) != "cloud answer" || string(e.Payload) != "question" || e.Attempts != 2 {
		t.Errorf("re-claimed entry = %+v", e)
	}
	// A failed delivery releases it; it stays answered.
	if err := s.Release(ctx, "k", clk.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	es, _ = s.Claim(ctx, 1, time.Minute)
	if len(es) != 1 || es[0].State != OutboxAnswered || string(es[0].Answer) != "cloud answer" || !es[0].NotBefore.Equal(clk.Now()) {
		t.Errorf("after Release = %+v", es)
	}
}

func TestOutboxNotBeforeAtEnqueue(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	enqueue(t, s, OutboxEntry{Key: "later", NotBefore: clk.Now().Add(time.Minute)})
	enqueue(t, s, OutboxEntry{Key: "now"})
	if keys := claimKeys(t, s, 10, time.Second); fmt.Sprint(keys) != "[now]" {
		t.Errorf("Claim = %v, want [now]", keys)
	}
	clk.Advance(time.Minute)
	if keys := claimKeys(t, s, 10, time.Second); fmt.Sprint(keys) != "[later now]" {
		t.Errorf("Claim = %v, want [later now]", keys)
	}
}

func TestOutboxDrop(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	enqueue(t, s, OutboxEntry{Key: "k"})
	if err := s.Drop(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Drop(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Drop = %v, want ErrNotFound", err)
	}
	if n, size, _ := s.OutboxStats(ctx); n != 0 || size != 0 {
		t.Errorf("after Drop: %d entries, %d bytes", n, size)
	}
	// Not delivered, so not a duplicate.
	enqueue(t, s, OutboxEntry{Key: "k"})
}

// TestOutboxClockWentBack: delays set while the clock was hours ahead run
// from the corrected clock, not from the wrong one. A device without a
// real-time clock boots on a saved time and NTP may move it back.
func TestOutboxClockWentBack(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	ctx := t.Context()
	for _, k := range []string{"put-off", "leased"} {
		if _, err := s.Enqueue(ctx, OutboxEntry{Key: k, Payload: []byte("q")}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(3 * time.Hour) // the clock jumps ahead
	got, err := s.Claim(ctx, 2, time.Minute)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim on the jumped clock: %d entries, %v", len(got), err)
	}
	// One attempt fails and is put off for 10 s; the other claimer dies
	// holding its lease.
	if err := s.Release(ctx, "put-off", clk.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(-3*time.Hour + 5*time.Second) // NTP puts the clock right
	if got, err := s.Claim(ctx, 2, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("claim at once after the correction: %d entries, %v; want none (delays still run)", len(got), err)
	}
	clk.Advance(11 * time.Second)
	got, err = s.Claim(ctx, 2, time.Minute)
	if err != nil || len(got) != 1 || got[0].Key != "put-off" {
		t.Fatalf("claim 11 s after the correction: %+v, %v; want the put-off entry", got, err)
	}
	// The lease ran a minute from the correction: it lapses at +65 s, while
	// the claim just made holds the other entry until +76 s.
	clk.Advance(50 * time.Second)
	got, err = s.Claim(ctx, 2, time.Minute)
	if err != nil || len(got) != 1 || got[0].Key != "leased" {
		t.Fatalf("claim 66 s after the correction: %+v, %v; want the entry whose lease lapsed", got, err)
	}
}

// TestOutboxReadsVersion1Entries: entries written before the delay stamp
// existed are read, their delays measured from their creation.
func TestOutboxReadsVersion1Entries(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	r := outboxRec{seq: 7, e: OutboxEntry{Key: "k", Payload: []byte("p"), Created: at, Expires: at.Add(time.Hour), NotBefore: at.Add(time.Second)}, stamped: at.Add(time.Minute)}
	v2 := r.encode()
	v1 := append([]byte{1}, v2[1:len(v2)-8]...)
	got, err := decodeOutboxRec([]byte("k"), v1)
	if err != nil {
		t.Fatal(err)
	}
	if !got.stamped.Equal(at) || !got.e.NotBefore.Equal(r.e.NotBefore) || string(got.e.Payload) != "p" {
		t.Fatalf("version 1 entry read as %+v", got)
	}
	if got, err := decodeOutboxRec([]byte("k"), v2); err != nil || !got.stamped.Equal(r.stamped) {
		t.Fatalf("version 2 entry: stamped %v, %v", got.stamped, err)
	}
	if _, err := decodeOutboxRec([]byte("k"), append([]byte{9}, v2[1:]...)); !errors.Is(err, errCorrupt) {
		t.Fatalf("unknown version: %v, want errCorrupt", err)
	}
}
