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
