package store

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
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

// BenchmarkPutReplies writes reply records n to a commit (PutReplies), as
// the MQTT transport's recorder does, into a full window (10,000 ids, the
// default, so each write also forgets the oldest) with replies of the MQTT
// SLM path's size. An op is one reply; cpu-µs/reply is the process's user
// and system time per reply, which the disk's sync latency does not count
// in.
func BenchmarkPutReplies(b *testing.B) {
	reply := []byte(`{"id":"bench-1a2b3c-12345","answer":"It is 20:26.","intent":"time","confidence":0.9731,` +
		`"top":[{"intent":"time","confidence":0.9731},{"intent":"date","confidence":0.0112},{"intent":"weather","confidence":0.0041}],` +
		`"tier":"slm","model":"compact-980c31d45f11","latency_ms":0.081,"reason":"intent time accepted at 0.97 ≥ 0.63"}`)
	for _, n := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("per-commit=%d", n), func(b *testing.B) {
			s := openTest(b, Options{})
			ctx := context.Background()
			seq := 0
			batch := func(n int) map[string][]byte {
				rs := make(map[string][]byte, n)
				for range n {
					seq++
					rs[fmt.Sprintf("mqtt:%032x", seq*2654435761)] = reply
				}
				return rs
			}
			for range DefaultReplyMaxEntries / 64 {
				if _, err := s.PutReplies(ctx, batch(64)); err != nil {
					b.Fatal(err)
				}
			}
			cpu0 := cpuTime(b)
			b.ResetTimer()
			done := 0
			for done < b.N {
				if _, err := s.PutReplies(ctx, batch(n)); err != nil {
					b.Fatal(err)
				}
				done += n
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(done), "cpu-µs/reply")
		})
	}
}

// cpuTime is the process's user and system time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
