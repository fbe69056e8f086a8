package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The benchmarks use a real file in a temp dir; every write is a bbolt
// commit with fsync, so Put and Enqueue measure the disk's sync latency.

func BenchmarkCacheGet(b *testing.B) {
	s := openTest(b, Options{})
	ctx := context.Background()
	const n = 1000
	for i := range n {
		if err := s.Put(ctx, fmt.Sprintf("key-%d", i), testAnswer("a cached answer of modest length"), time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok, err := s.Get(ctx, fmt.Sprintf("key-%d", i%n)); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkCachePut(b *testing.B) {
	s := openTest(b, Options{CacheMaxEntries: 1000})
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if err := s.Put(ctx, fmt.Sprintf("key-%d", i), testAnswer("a cached answer of modest length"), time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNear(b *testing.B) {
	s := openTest(b, Options{})
	ctx := context.Background()
	const n, dim = 1000, 64
	vec := make([]float32, dim)
	for i := range n {
		key := fmt.Sprintf("key-%d", i)
		if err := s.Put(ctx, key, testAnswer("a"), time.Hour); err != nil {
			b.Fatal(err)
		}
		for j := range vec {
			vec[j] = float32((i*31+j*17)%97) - 48
		}
		if err := s.PutVector(ctx, key, "intent", vec); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, _, err := s.Near(ctx, "intent", vec, 0.9); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnqueue(b *testing.B) {
	s := openTest(b, Options{OutboxMaxCount: 1000})
	ctx := context.Background()
	payload := make([]byte, 512)
	for i := 0; b.Loop(); i++ {
		if _, err := s.Enqueue(ctx, OutboxEntry{Key: fmt.Sprintf("key-%d", i), ReplyTo: "hedge/dev/reply/x", Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutReplyParallel records replies from 16 goroutines at once, as
// the MQTT transport's recorders do. "batched" is PutReply, whose commits
// share fsyncs (DB.Batch); "one-by-one" commits the same write alone
// (DB.Update), as PutReply did before, so the two can be compared in one run.
func BenchmarkPutReplyParallel(b *testing.B) {
	reply := []byte(`{"id":"x","answer":"a reply of modest length","tier":"cache"}`)
	for _, mode := range []struct {
		name string
		put  func(ctx context.Context, s *Store, id string) error
	}{
		{"batched", func(ctx context.Context, s *Store, id string) error { return s.PutReply(ctx, id, reply) }},
		{"one-by-one", func(ctx context.Context, s *Store, id string) error {
			now := s.o.Now()
			return s.update(func(tx *bolt.Tx) error {
				return replyWindow.put(tx, []byte(id), reply, now, s.o.ReplyWindow, s.o.ReplyMaxEntries, false)
			})
		}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			s := openTest(b, Options{ReplyMaxEntries: 100000, ReplyWindow: time.Hour})
			ctx := context.Background()
			var next atomic.Int64
			b.SetParallelism(8) // 8 × GOMAXPROCS goroutines (16 on two cores)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := mode.put(ctx, s, fmt.Sprintf("id-%d", next.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
