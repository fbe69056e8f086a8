package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentHammer runs 16 goroutines against one store: cache reads,
// writes and vector look-ups, reply dedupe, counters and the full outbox
// cycle. Every enqueued entry must be claimed by exactly one goroutine and
// acked once, cache reads must see only what was written under their key,
// and the counts must match the buckets at the end. Run it with -race.
func TestConcurrentHammer(t *testing.T) {
	const (
		workers = 16
		rounds  = 40
	)
	s := openTest(t, Options{CacheMaxEntries: 50, ReplyMaxEntries: 100})
	ctx := context.Background()
	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		wg      sync.WaitGroup
		errs    = make(chan error, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for r := range rounds {
					key := fmt.Sprintf("c%d", (w*7+r)%60)
					if err := s.Put(ctx, key, testAnswer("answer for "+key), time.Hour); err != nil {
						return err
					}
					if err := s.PutVector(ctx, key, "i", []float32{float32(w), float32(r), 1}); err != nil && !errors.Is(err, ErrNotFound) {
						return err // ErrNotFound: evicted by another writer meanwhile
					}
					if a, ok, err := s.Get(ctx, fmt.Sprintf("c%d", (w+r)%60)); err != nil {
						return err
					} else if ok && a.Answer != "answer for "+fmt.Sprintf("c%d", (w+r)%60) {
						return fmt.Errorf("cache returned %q under another key", a.Answer)
					}
					if _, _, err := s.Near(ctx, "i", []float32{1, 1, 1}, 0.5); err != nil {
						return err
					}
					id := fmt.Sprintf("w%d-r%d", w, r)
					if err := s.PutReply(ctx, id, []byte(id)); err != nil {
						return err
					}
					if _, err := s.Add(ctx, "total", 1, time.Time{}); err != nil {
						return err
					}
					if _, err := s.Enqueue(ctx, OutboxEntry{Key: id, Payload: []byte(id)}); err != nil {
						return err
					}
					es, err := s.Claim(ctx, 2, time.Hour)
					if err != nil {
						return err
					}
					for _, e := range es {
						mu.Lock()
						claimed[e.Key]++
						mu.Unlock()
						if r%3 == 0 {
							if err := s.MarkAnswered(ctx, e.Key, []byte("a")); err != nil {
								return err
							}
						}
						if err := s.Ack(ctx, e.Key); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Drain what is left (each worker claims up to 2 per round, so all of
	// it was probably claimed already).
	for {
		es, err := s.Claim(ctx, 100, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			claimed[e.Key]++
			if err := s.Ack(ctx, e.Key); err != nil {
				t.Fatal(err)
			}
		}
	}
	for w := range workers {
		for r := range rounds {
			if id := fmt.Sprintf("w%d-r%d", w, r); claimed[id] != 1 {
				t.Errorf("entry %s claimed %d times, want once", id, claimed[id])
			}
		}
	}
	if n, _ := s.Counter(ctx, "total"); n != workers*rounds {
		t.Errorf("counter = %d, want %d", n, workers*rounds)
	}
	if n := cacheKeys(t, s); n > 50 {
		t.Errorf("cache holds %d entries, bound 50", n)
	}
	if n := replyCount(t, s); n != 100 {
		t.Errorf("reply window holds %d, want its bound 100", n)
	}
	// openTest's cleanup checks the counts against the buckets.
}
