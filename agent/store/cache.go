package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hedge-edge/hedge/agent"
)

const cacheEntryVersion = 1

// cacheEntry is one cached answer as stored.
type cacheEntry struct {
	expires, created uint64
	// vecIntent is the intent under which the entry's vector is indexed in
	// bVec ("" when it has none), so that deleting the entry finds it.
	vecIntent []byte
	answer    []byte // agent.Answer as JSON
}

func (e *cacheEntry) encode() []byte {
	b := make([]byte, 0, 1+16+2+len(e.vecIntent)+binary.MaxVarintLen32+len(e.answer))
	b = append(b, cacheEntryVersion)
	b = binary.BigEndian.AppendUint64(b, e.expires)
	b = binary.BigEndian.AppendUint64(b, e.created)
	b = appendBytes(b, e.vecIntent)
	return appendBytes(b, e.answer)
}

func decodeCacheEntry(v []byte) (cacheEntry, error) {
	d := decoder{b: v}
	if d.u8() != cacheEntryVersion {
		return cacheEntry{}, errCorrupt
	}
	e := cacheEntry{expires: d.u64(), created: d.u64(), vecIntent: d.bytes(), answer: d.bytes()}
	return e, d.err
}

// vecKey is the bVec key of a cache key's vector: the intent, length
// prefixed so that one intent's vectors form a contiguous range.
func vecKey(intent, key []byte) []byte {
	k := make([]byte, 0, 2+len(intent)+len(key))
	k = binary.BigEndian.AppendUint16(k, uint16(len(intent)))
	k = append(k, intent...)
	return append(k, key...)
}

func vecPrefix(intent []byte) []byte { return vecKey(intent, nil) }

// Get returns the live answer stored under key. A miss or an expired entry
// returns ok == false, not an error; an expired entry is deleted.
func (s *Store) Get(ctx context.Context, key string) (agent.Answer, bool, error) {
	if err := s.begin(ctx); err != nil {
		return agent.Answer{}, false, fmt.Errorf("cache get: %w", err)
	}
	now := s.o.Now()
	var (
		raw     []byte
		expired bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bCache).Get([]byte(key))
		if v == nil {
			return nil
		}
		e, err := decodeCacheEntry(v)
		if err != nil {
			return err
		}
		if !live(e.expires, now) {
			expired = true
			return nil
		}
		raw = e.answer
		return nil
	})
	if err != nil {
		return agent.Answer{}, false, fmt.Errorf("cache get: %w", err)
	}
	if expired {
		if err := s.update(func(tx *bolt.Tx) error { return s.dropExpiredCache(tx, []byte(key), s.o.Now()) }); err != nil {
			return agent.Answer{}, false, fmt.Errorf("cache get: delete expired entry: %w", err)
		}
		return agent.Answer{}, false, nil
	}
	if raw == nil {
		return agent.Answer{}, false, nil
	}
	var a agent.Answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return agent.Answer{}, false, fmt.Errorf("cache get: decode answer: %w", err)
	}
	return a, true, nil
}

// dropExpiredCache deletes key's entry if it is (still) expired at now.
func (s *Store) dropExpiredCache(tx *bolt.Tx, key []byte, now time.Time) error {
	v := tx.Bucket(bCache).Get(key)
	if v == nil {
		return nil
	}
	e, err := decodeCacheEntry(v)
	if err != nil {
		return err
	}
	if live(e.expires, now) {
		return nil
	}
	return deleteCacheEntry(tx, key, e)
}

// Put stores a under key for ttl, replacing an older entry and its vector.
// When the cache holds more than CacheMaxEntries, the soonest-expiring
// entries go first (expired ones are purged in the same transaction).
func (s *Store) Put(ctx context.Context, key string, a agent.Answer, ttl time.Duration) error {
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("cache put: %w", err)
	}
	if key == "" || len(key) > bolt.MaxKeySize-32 {
		return fmt.Errorf("cache put: key is %d bytes; it must be 1 to %d", len(key), bolt.MaxKeySize-32)
	}
	if ttl <= 0 {
		return fmt.Errorf("cache put: ttl %s is not positive", ttl)
	}
	raw, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("cache put: encode answer: %w", err)
	}
	now := s.o.Now()
	e := cacheEntry{expires: nanos(now.Add(ttl)), created: nanos(now), answer: raw}
	k := []byte(key)
	err = s.update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bCache)
		if old := c.Get(k); old != nil {
			oe, err := decodeCacheEntry(old)
			if err != nil {
				return err
			}
			if err := deleteCacheEntry(tx, k, oe); err != nil {
				return err
			}
		}
		if err := c.Put(k, e.encode()); err != nil {
			return err
		}
		if err := tx.Bucket(bCacheExp).Put(timeKey(k, e.expires, e.created), nil); err != nil {
			return err
		}
		if err := metaAdd(tx, kCacheN, 1); err != nil {
			return err
		}
		return s.boundCache(tx, now)
	})
	if err != nil {
		return fmt.Errorf("cache put: %w", err)
	}
	return nil
}

// boundCache deletes expired entries and then the soonest-expiring ones
// until the cache is within CacheMaxEntries. The index is ordered by expiry,
// so both come from its head.
func (s *Store) boundCache(tx *bolt.Tx, now time.Time) error {
	idx := tx.Bucket(bCacheExp).Cursor()
	for k, _ := idx.First(); k != nil; k, _ = idx.First() {
		if len(k) < 16 {
			return fmt.Errorf("cache index: %w", errCorrupt)
		}
		if live(binary.BigEndian.Uint64(k), now) && metaInt(tx, kCacheN) <= int64(s.o.CacheMaxEntries) {
			return nil
		}
		key := bytes.Clone(k[16:])
		v := tx.Bucket(bCache).Get(key)
		if v == nil {
			// An index entry without its entry: drop it alone.
			if err := idx.Delete(); err != nil {
				return err
			}
			continue
		}
		e, err := decodeCacheEntry(v)
		if err != nil {
			return err
		}
		if err := deleteCacheEntry(tx, key, e); err != nil {
			return err
		}
	}
	return nil
}

// deleteCacheEntry removes an entry, its index key and its vector.
func deleteCacheEntry(tx *bolt.Tx, key []byte, e cacheEntry) error {
	if err := tx.Bucket(bCache).Delete(key); err != nil {
		return err
	}
	if err := tx.Bucket(bCacheExp).Delete(timeKey(key, e.expires, e.created)); err != nil {
		return err
	}
	if len(e.vecIntent) > 0 {
		if err := tx.Bucket(bVec).Delete(vecKey(e.vecIntent, key)); err != nil {
			return err
		}
	}
	return metaAdd(tx, kCacheN, -1)
}

// normalize returns vec scaled to unit length, or an error for an empty,
// zero or non-finite vector.
func normalize(vec []float32) ([]float32, error) {
	if len(vec) == 0 {
		return nil, errors.New("vector is empty")
	}
	var sum float64
	for i, x := range vec {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("vector component %d is %v", i, x)
		}
		sum += f * f
	}
	if sum == 0 {
		return nil, errors.New("vector is zero")
	}
	inv := 1 / math.Sqrt(sum)
	out := make([]float32, len(vec))
	for i, x := range vec {
		out[i] = float32(float64(x) * inv)
	}
	return out, nil
}

// PutVector associates vec, normalized, with the live cache entry under
// key, indexed under intent for Near. It replaces the entry's previous
// vector. A key with no live entry returns ErrNotFound (volatile answers are
// never cached, so their vectors have nothing to point to).
func (s *Store) PutVector(ctx context.Context, key, intent string, vec []float32) error {
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("cache put vector: %w", err)
	}
	if intent == "" || len(intent) > 1024 {
		return fmt.Errorf("cache put vector: intent is %d bytes; it must be 1 to 1024", len(intent))
	}
	unit, err := normalize(vec)
	if err != nil {
		return fmt.Errorf("cache put vector: %w", err)
	}
	now := s.o.Now()
	k := []byte(key)
	err = s.update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bCache)
		v := c.Get(k)
		if v == nil {
			return fmt.Errorf("%w: no cache entry under %q", ErrNotFound, key)
		}
		e, err := decodeCacheEntry(v)
		if err != nil {
			return err
		}
		if !live(e.expires, now) {
			// Not deleted here: the error rolls the transaction back; the
			// next Put or Get purges it.
			return fmt.Errorf("%w: the cache entry under %q has expired", ErrNotFound, key)
		}
		vb := tx.Bucket(bVec)
		if len(e.vecIntent) > 0 {
			if err := vb.Delete(vecKey(e.vecIntent, k)); err != nil {
				return err
			}
		}
		val := make([]byte, 8, 8+4*len(unit))
		binary.BigEndian.PutUint64(val, e.expires)
		for _, x := range unit {
			val = binary.LittleEndian.AppendUint32(val, math.Float32bits(x))
		}
		if err := vb.Put(vecKey([]byte(intent), k), val); err != nil {
			return err
		}
		e.vecIntent = []byte(intent)
		return c.Put(k, e.encode())
	})
	if err != nil {
		return fmt.Errorf("cache put vector: %w", err)
	}
	return nil
}

// Near returns the live cached answer of intent whose vector is most
// similar to vec, if its cosine similarity is at least minCos. Vectors of
// another dimension are ignored. A miss returns ok == false, not an error.
func (s *Store) Near(ctx context.Context, intent string, vec []float32, minCos float64) (agent.Answer, bool, error) {
	if err := s.begin(ctx); err != nil {
		return agent.Answer{}, false, fmt.Errorf("cache near: %w", err)
	}
	if intent == "" || len(intent) > 1024 {
		return agent.Answer{}, false, nil
	}
	unit, err := normalize(vec)
	if err != nil {
		return agent.Answer{}, false, fmt.Errorf("cache near: %w", err)
	}
	now := nanos(s.o.Now())
	var raw []byte
	err = s.view(func(tx *bolt.Tx) error {
		prefix := vecPrefix([]byte(intent))
		want := 8 + 4*len(unit)
		var best []byte
		bestCos := minCos
		c := tx.Bucket(bVec).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) != want {
				continue
			}
			if exp := binary.BigEndian.Uint64(v); exp != 0 && exp <= now {
				continue
			}
			var dot float64
			for i, x := range unit {
				dot += float64(x) * float64(math.Float32frombits(binary.LittleEndian.Uint32(v[8+4*i:])))
			}
			if dot >= bestCos {
				bestCos = dot
				best = k[len(prefix):]
			}
		}
		if best == nil {
			return nil
		}
		v := tx.Bucket(bCache).Get(best)
		if v == nil {
			return nil
		}
		e, err := decodeCacheEntry(v)
		if err != nil {
			return err
		}
		if e.expires != 0 && e.expires <= now {
			return nil
		}
		raw = e.answer
		return nil
	})
	if err != nil {
		return agent.Answer{}, false, fmt.Errorf("cache near: %w", err)
	}
	if raw == nil {
		return agent.Answer{}, false, nil
	}
	var a agent.Answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return agent.Answer{}, false, fmt.Errorf("cache near: decode answer: %w", err)
	}
	return a, true, nil
}
