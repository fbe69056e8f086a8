package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hedge-edge/hedge/agent"
)

func testAnswer(text string) agent.Answer {
	return agent.Answer{ID: "q1", Answer: text, Intent: "greeting", Confidence: 0.93, Tier: agent.TierSLM, Model: "compact-v1", LatencyMS: 1.5,
		Top: []agent.Scored{{Intent: "greeting", Confidence: 0.93}, {Intent: "goodbye", Confidence: 0.04}}}
}

func TestCacheRoundTrip(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if _, ok, err := s.Get(ctx, "absent"); ok || err != nil {
		t.Fatalf("Get(absent) = %v, %v; want a miss", ok, err)
	}
	want := testAnswer("hello there")
	if err := s.Put(ctx, "k", want, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, "k")
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	if got.Answer != want.Answer || got.Intent != want.Intent || got.Tier != want.Tier || got.Model != want.Model ||
		got.Confidence != want.Confidence || len(got.Top) != 2 || got.Top[1] != want.Top[1] {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	// Put replaces.
	if err := s.Put(ctx, "k", testAnswer("second"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Get(ctx, "k"); got.Answer != "second" {
		t.Errorf("after replacing, Get = %q", got.Answer)
	}
}

func TestCachePutRejectsBadInput(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		key string
		ttl time.Duration
	}{{"", time.Minute}, {"k", 0}, {"k", -time.Second}, {string(make([]byte, 40000)), time.Minute}} {
		if err := s.Put(ctx, tc.key, testAnswer("x"), tc.ttl); err == nil {
			t.Errorf("Put(key of %d bytes, ttl %s) succeeded", len(tc.key), tc.ttl)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	ctx := context.Background()
	if err := s.Put(ctx, "short", testAnswer("s"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "long", testAnswer("l"), time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Second)
	if _, ok, _ := s.Get(ctx, "short"); !ok {
		t.Fatal("entry missing before its TTL")
	}
	clk.Advance(time.Second)
	if _, ok, err := s.Get(ctx, "short"); ok || err != nil {
		t.Fatalf("Get at expiry = %v, %v; want a miss", ok, err)
	}
	if _, ok, _ := s.Get(ctx, "long"); !ok {
		t.Fatal("long-lived entry missing")
	}
	// The expired entry was deleted by the Get.
	if n := cacheKeys(t, s); n != 1 {
		t.Errorf("cache holds %d entries after lazy delete, want 1", n)
	}
	clk.Advance(time.Hour)
	if err := s.Put(ctx, "new", testAnswer("n"), time.Minute); err != nil {
		t.Fatal(err)
	}
	// The Put purged the expired long entry.
	if n := cacheKeys(t, s); n != 1 {
		t.Errorf("cache holds %d entries after Put purged, want 1", n)
	}
}

func cacheKeys(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bCache).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCacheSizeBound(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, CacheMaxEntries: 5})
	ctx := context.Background()
	// Entry i expires after 10+i minutes, except "soon", which expires first
	// though written last but one, and "late", written first but long-lived.
	put := func(k string, ttl time.Duration) {
		t.Helper()
		if err := s.Put(ctx, k, testAnswer(k), ttl); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	put("late", 5*time.Hour)
	for i := range 5 {
		put(fmt.Sprint(i), time.Duration(10+i)*time.Minute)
	}
	put("soon", time.Minute)
	put("x", time.Hour)
	// 8 written, bound 5: evicted are the three soonest to expire: soon, 0, 1.
	if n := cacheKeys(t, s); n != 5 {
		t.Fatalf("cache holds %d entries, bound 5", n)
	}
	for k, want := range map[string]bool{"late": true, "soon": false, "0": false, "1": false, "2": true, "3": true, "4": true, "x": true} {
		if _, ok, _ := s.Get(ctx, k); ok != want {
			t.Errorf("entry %s present = %v, want %v", k, ok, want)
		}
	}
}

func TestCacheSizeBoundEqualExpiryOldestFirst(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, CacheMaxEntries: 3})
	ctx := context.Background()
	// Equal TTL, clock fixed: equal expiry and creation; 100 writes.
	for i := range 100 {
		if err := s.Put(ctx, fmt.Sprintf("k%03d", i), testAnswer("a"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if n := cacheKeys(t, s); n > 3 {
			t.Fatalf("after %d puts the cache holds %d entries, bound 3", i+1, n)
		}
	}
	// With a moving clock the oldest go first.
	for i := range 5 {
		clk.Advance(time.Second)
		if err := s.Put(ctx, fmt.Sprintf("m%d", i), testAnswer("a"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for k, want := range map[string]bool{"m0": false, "m1": false, "m2": true, "m3": true, "m4": true} {
		if _, ok, _ := s.Get(ctx, k); ok != want {
			t.Errorf("entry %s present = %v, want %v", k, ok, want)
		}
	}
}

func TestNear(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	ctx := context.Background()
	put := func(key, intent string, vec []float32, ttl time.Duration) {
		t.Helper()
		if err := s.Put(ctx, key, testAnswer("answer "+key), ttl); err != nil {
			t.Fatal(err)
		}
		if err := s.PutVector(ctx, key, intent, vec); err != nil {
			t.Fatal(err)
		}
	}
	put("weather1", "weather", []float32{1, 0, 0}, time.Hour)
	put("weather2", "weather", []float32{0.6, 0.8, 0}, time.Hour)
	put("time1", "time", []float32{1, 0, 0}, time.Hour)
	put("weather3", "weather", []float32{0, 0, 5}, time.Minute)

	near := func(intent string, vec []float32, minCos float64) string {
		t.Helper()
		a, ok, err := s.Near(ctx, intent, vec, minCos)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ""
		}
		return a.Answer
	}
	// Scale does not matter; the best match wins; other intents never match.
	if got := near("weather", []float32{10, 1, 0}, 0.9); got != "answer weather1" {
		t.Errorf("near (10,1,0) = %q", got)
	}
	if got := near("weather", []float32{0.5, 0.9, 0}, 0.9); got != "answer weather2" {
		t.Errorf("near (0.5,0.9,0) = %q", got)
	}
	if got := near("time", []float32{0.6, 0.8, 0}, 0.9); got != "" {
		t.Errorf("time (0.6,0.8,0) with minCos 0.9 = %q, want a miss (cos 0.6)", got)
	}
	if got := near("time", []float32{0.6, 0.8, 0}, 0.5); got != "answer time1" {
		t.Errorf("time (0.6,0.8,0) with minCos 0.5 = %q", got)
	}
	if got := near("music", []float32{1, 0, 0}, 0); got != "" {
		t.Errorf("unknown intent matched %q", got)
	}
	if got := near("weather", []float32{1, 0}, 0); got != "" {
		t.Errorf("a vector of another dimension matched %q", got)
	}
	if got := near("weather", []float32{0, 0, 1}, 0.99); got != "answer weather3" {
		t.Errorf("near (0,0,1) = %q", got)
	}
	// Expired entries never match.
	clk.Advance(2 * time.Minute)
	if got := near("weather", []float32{0, 0, 1}, 0.99); got != "" {
		t.Errorf("expired entry matched: %q", got)
	}
	// Replacing an answer drops its vector; a new vector under another
	// intent moves it.
	if err := s.Put(ctx, "weather1", testAnswer("fresh"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := near("weather", []float32{1, 0, 0}, 0.99); got != "" {
		t.Errorf("replaced entry kept its vector: %q", got)
	}
	if err := s.PutVector(ctx, "weather2", "climate", []float32{0, 1, 0}); err != nil {
		t.Fatal(err)
	}
	if got := near("weather", []float32{0.6, 0.8, 0}, 0.99); got != "" {
		t.Errorf("vector still under its old intent: %q", got)
	}
	if got := near("climate", []float32{0, 1, 0}, 0.99); got != "answer weather2" {
		t.Errorf("vector not under its new intent: %q", got)
	}
}

func TestPutVectorErrors(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	ctx := context.Background()
	if err := s.PutVector(ctx, "absent", "i", []float32{1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("PutVector(absent) = %v, want ErrNotFound", err)
	}
	if err := s.Put(ctx, "k", testAnswer("a"), time.Minute); err != nil {
		t.Fatal(err)
	}
	nan := float32(math.NaN())
	for _, v := range [][]float32{nil, {}, {0, 0}, {1, nan}, {float32(math.Inf(1))}} {
		if err := s.PutVector(ctx, "k", "i", v); err == nil {
			t.Errorf("PutVector(%v) succeeded", v)
		}
		if _, _, err := s.Near(ctx, "i", v, 0); err == nil {
			t.Errorf("Near(%v) succeeded", v)
		}
	}
	if err := s.PutVector(ctx, "k", "", []float32{1}); err == nil {
		t.Error("PutVector with empty intent succeeded")
	}
	clk.Advance(time.Minute)
	if err := s.PutVector(ctx, "k", "i", []float32{1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("PutVector(expired) = %v, want ErrNotFound", err)
	}
}

func TestCacheEvictionDropsVectors(t *testing.T) {
	s := openTest(t, Options{CacheMaxEntries: 2})
	ctx := context.Background()
	for i := range 10 {
		k := fmt.Sprint(i)
		if err := s.Put(ctx, k, testAnswer(k), time.Duration(i+1)*time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.PutVector(ctx, k, "i", []float32{float32(i), 1}); err != nil {
			t.Fatal(err)
		}
	}
	// checkInvariants (at cleanup) verifies the vec bucket holds exactly the
	// vectors of the two remaining entries.
	if a, ok, _ := s.Near(ctx, "i", []float32{0, 1}, 0.99); ok {
		t.Errorf("evicted entry's vector matched: %q", a.Answer)
	}
}

func bucketKeys(t *testing.T, s *Store, name []byte) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(name).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
