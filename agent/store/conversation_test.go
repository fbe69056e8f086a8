package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestConversationKeepsExpiresDeletes(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	appendTurn := func(turn string) {
		t.Helper()
		err := s.UpdateConversation(ctx, "c1", time.Hour, func(old []byte) ([]byte, error) { return append(old, turn...), nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	appendTurn("a")
	appendTurn("b")
	if rec, ok, err := s.Conversation(ctx, "c1"); err != nil || !ok || string(rec) != "ab" {
		t.Fatalf("Conversation = %q %v %v, want ab", rec, ok, err)
	}
	// A restart keeps it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rec, ok, _ := s.Conversation(ctx, "c1"); !ok || string(rec) != "ab" {
		t.Fatalf("after a restart: %q %v", rec, ok)
	}
	// Each update renews the idle TTL; past it the conversation is gone.
	clk.Advance(50 * time.Minute)
	appendTurn("c")
	clk.Advance(50 * time.Minute)
	if rec, ok, _ := s.Conversation(ctx, "c1"); !ok || string(rec) != "abc" {
		t.Fatalf("within the idle TTL: %q %v", rec, ok)
	}
	clk.Advance(11 * time.Minute)
	if _, ok, _ := s.Conversation(ctx, "c1"); ok {
		t.Fatal("an idle conversation outlived its TTL")
	}
	appendTurn("new")
	if rec, _, _ := s.Conversation(ctx, "c1"); string(rec) != "new" {
		t.Fatalf("after expiry a conversation starts anew, got %q", rec)
	}
	if had, err := s.DeleteConversation(ctx, "c1"); err != nil || !had {
		t.Fatalf("delete = %v %v", had, err)
	}
	if had, _ := s.DeleteConversation(ctx, "c1"); had {
		t.Fatal("deleted twice")
	}
	if _, _, err := s.Conversation(ctx, ""); !errors.Is(err, ErrConversationKey) {
		t.Fatalf("empty key: %v", err)
	}
}

// TestOpenAddsConversationBuckets: a schema-1 file written before the
// conversation buckets existed opens, and gets them.
func TestOpenAddsConversationBuckets(t *testing.T) {
	dir := t.TempDir()
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range addedBuckets {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s3, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open a file without the conversation buckets: %v", err)
	}
	defer s3.Close()
	if err := s3.UpdateConversation(context.Background(), "k", time.Hour, func([]byte) ([]byte, error) { return []byte("x"), nil }); err != nil {
		t.Fatal(err)
	}
}
