package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestReplyDedupe(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if _, ok, err := s.GetReply(ctx, "r1"); ok || err != nil {
		t.Fatalf("GetReply(absent) = %v, %v", ok, err)
	}
	if err := s.PutReply(ctx, "r1", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReply(ctx, "r1", []byte("second")); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second PutReply = %v, want ErrDuplicate", err)
	}
	if v, ok, err := s.GetReply(ctx, "r1"); err != nil || !ok || string(v) != "first" {
		t.Errorf("GetReply = %q, %v, %v; want the first reply", v, ok, err)
	}
	if err := s.PutReply(ctx, "", []byte("x")); err == nil {
		t.Error("PutReply with empty id succeeded")
	}
}

func TestReplyWindowAge(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, ReplyWindow: 10 * time.Minute})
	ctx := context.Background()
	if err := s.PutReply(ctx, "old", []byte("o")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Minute)
	if err := s.PutReply(ctx, "mid", []byte("m")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5*time.Minute - time.Nanosecond)
	if _, ok, _ := s.GetReply(ctx, "old"); !ok {
		t.Fatal("reply forgotten inside the window")
	}
	clk.Advance(time.Nanosecond)
	if _, ok, _ := s.GetReply(ctx, "old"); ok {
		t.Fatal("reply kept past the window")
	}
	// Once out of the window the id may get a new reply.
	if err := s.PutReply(ctx, "old", []byte("again")); err != nil {
		t.Fatalf("PutReply after the window: %v", err)
	}
	if v, _, _ := s.GetReply(ctx, "old"); string(v) != "again" {
		t.Errorf("GetReply = %q, want again", v)
	}
	clk.Advance(6 * time.Minute)
	if err := s.PutReply(ctx, "new", nil); err != nil {
		t.Fatal(err)
	}
	// mid is now 11 minutes old: purged by that write.
	if n := replyCount(t, s); n != 2 {
		t.Errorf("window holds %d replies, want 2 (old again, new)", n)
	}
}

func replyCount(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.view(func(tx *bolt.Tx) error { n = metaInt(tx, kReplyN); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReplyWindowCount(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, ReplyMaxEntries: 10})
	ctx := context.Background()
	for i := range 25 {
		clk.Advance(time.Millisecond)
		if err := s.PutReply(ctx, fmt.Sprint(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if n := replyCount(t, s); n > 10 {
			t.Fatalf("after %d replies the window holds %d, bound 10", i+1, n)
		}
	}
	for i := range 25 {
		_, ok, _ := s.GetReply(ctx, fmt.Sprint(i))
		if want := i >= 15; ok != want {
			t.Errorf("reply %d present = %v, want %v", i, ok, want)
		}
	}
}

func TestPutReplies(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if err := s.PutReply(ctx, "r0", []byte("stored before")); err != nil {
		t.Fatal(err)
	}
	n, err := s.PutReplies(ctx, map[string][]byte{"r0": []byte("second"), "r1": []byte("one"), "r2": []byte("two")})
	if err != nil || n != 2 {
		t.Fatalf("PutReplies = %d, %v; want 2 stored (r0 has a reply)", n, err)
	}
	for id, want := range map[string]string{"r0": "stored before", "r1": "one", "r2": "two"} {
		if v, ok, err := s.GetReply(ctx, id); err != nil || !ok || string(v) != want {
			t.Errorf("GetReply(%s) = %q, %v, %v; want %q", id, v, ok, err, want)
		}
	}
	if n, err := s.PutReplies(ctx, map[string][]byte{"r3": []byte("x"), "": []byte("y")}); err == nil || n != 0 {
		t.Errorf("PutReplies with an empty id = %d, %v; want an error", n, err)
	}
	if _, ok, _ := s.GetReply(ctx, "r3"); ok {
		t.Error("a call that failed on one id stored another")
	}
	if n, err := s.PutReplies(ctx, nil); n != 0 || err != nil {
		t.Errorf("PutReplies(nil) = %d, %v", n, err)
	}
	if n := replyCount(t, s); n != 3 {
		t.Errorf("window holds %d replies, want 3", n)
	}
}

// replyBatch is batch b of the "replies" child: 16 ids, each with a
// reply naming it.
func replyBatch(b int) map[string][]byte {
	rs := make(map[string][]byte, 16)
	for i := range 16 {
		id := fmt.Sprintf("b%d-%d", b, i)
		rs[id] = []byte("reply of " + id)
	}
	return rs
}

// TestPutRepliesSurviveSIGKILL kills a process that writes batches of
// reply records: every batch whose PutReplies returned is in the file
// after the crash, and a batch is there whole or not at all, never in
// part.
func TestPutRepliesSurviveSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cmd, out := startChild(t, "replies", dir)
	reported := 0
	for reported < 20 && out.Scan() {
		reported++
	}
	if reported < 20 {
		t.Fatalf("child reported only %d batches: %v", reported, out.Err())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-way through a later batch
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for out.Scan() {
		reported++
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after SIGKILL: %v", err)
	}
	defer s.Close()
	checkInvariants(t, s)
	ctx := context.Background()
	for b := range 500 {
		present := 0
		for id, want := range replyBatch(b) {
			v, ok, err := s.GetReply(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				present++
				if string(v) != string(want) {
					t.Errorf("%s: %q after SIGKILL, want %q", id, v, want)
				}
			}
		}
		switch {
		case b < reported && present != 16:
			t.Errorf("batch %d was reported written, but %d of its 16 replies survived", b, present)
		case present != 0 && present != 16:
			t.Errorf("batch %d survived in part: %d of 16 replies", b, present)
		case b > reported && present != 0:
			t.Errorf("batch %d, never begun, has replies", b)
		}
	}
}
