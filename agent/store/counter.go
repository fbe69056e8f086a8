package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A counter is stored as value (int64) then expires (Unix nanoseconds, 0 for
// never), both 8 bytes big-endian; counter_exp orders the expiring ones.

func decodeCounter(v []byte) (val int64, exp uint64, err error) {
	if len(v) != 16 {
		return 0, 0, errCorrupt
	}
	return int64(binary.BigEndian.Uint64(v)), binary.BigEndian.Uint64(v[8:]), nil
}

// Add adds delta to the counter key and returns its new value. expires is
// when the counter lapses (the zero time: never); each Add sets it, so a
// daily budget passes the end of its day. An expired counter counts from 0
// again. Expired counters are purged by every Add.
func (s *Store) Add(ctx context.Context, key string, delta int64, expires time.Time) (int64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, fmt.Errorf("add to counter: %w", err)
	}
	if key == "" || len(key) > 1024 {
		return 0, fmt.Errorf("add to counter: key is %d bytes; it must be 1 to 1024", len(key))
	}
	now := s.o.Now()
	k := []byte(key)
	var val int64
	err := s.update(func(tx *bolt.Tx) error {
		if err := purgeCounters(tx, now); err != nil {
			return err
		}
		b, idx := tx.Bucket(bCounter), tx.Bucket(bCounterExp)
		val = delta
		if v := b.Get(k); v != nil {
			old, exp, err := decodeCounter(v)
			if err != nil {
				return fmt.Errorf("counter %q: %w", key, err)
			}
			if live(exp, now) {
				val = old + delta
			}
			if exp != 0 {
				if err := idx.Delete(timeKey(k, exp)); err != nil {
					return err
				}
			}
		}
		exp := nanos(expires)
		v := binary.BigEndian.AppendUint64(nil, uint64(val))
		if err := b.Put(k, binary.BigEndian.AppendUint64(v, exp)); err != nil {
			return err
		}
		if exp != 0 {
			return idx.Put(timeKey(k, exp), nil)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("add to counter %q: %w", key, err)
	}
	return val, nil
}

// purgeCounters deletes the counters whose expiry has passed.
func purgeCounters(tx *bolt.Tx, now time.Time) error {
	return purgeExpired(tx, bCounter, bCounterExp, now)
}

// purgeExpired deletes the records of bucket data whose expiry, as index
// (expires|key → ∅) orders them, has passed.
func purgeExpired(tx *bolt.Tx, data, index []byte, now time.Time) error {
	b := tx.Bucket(data)
	c := tx.Bucket(index).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.First() {
		if len(k) < 8 {
			return fmt.Errorf("%s index: %w", data, errCorrupt)
		}
		if live(binary.BigEndian.Uint64(k), now) {
			return nil
		}
		if err := b.Delete(k[8:]); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Counter returns the value of the counter key; an absent or expired
// counter is 0 (an expired one is purged).
func (s *Store) Counter(ctx context.Context, key string) (int64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, fmt.Errorf("read counter: %w", err)
	}
	now := s.o.Now()
	var (
		val   int64
		stale bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bCounter).Get([]byte(key))
		if v == nil {
			return nil
		}
		n, exp, err := decodeCounter(v)
		if err != nil {
			return err
		}
		if !live(exp, now) {
			stale = true
			return nil
		}
		val = n
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read counter %q: %w", key, err)
	}
	if stale {
		if err := s.update(func(tx *bolt.Tx) error { return purgeCounters(tx, s.o.Now()) }); err != nil {
			return 0, fmt.Errorf("read counter %q: purge expired: %w", key, err)
		}
	}
	return val, nil
}
