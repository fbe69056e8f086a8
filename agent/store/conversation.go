package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A conversation record is stored as expires (Unix nanoseconds) then the
// caller's bytes (agent/conversation's JSON); conv_exp orders them by
// expiry. The store knows nothing of turns: it keeps, expires and deletes.

// ErrConversationKey is returned for a key outside 1 to 1024 bytes.
var ErrConversationKey = errors.New("conversation key must be 1 to 1024 bytes")

func convKey(key string) ([]byte, error) {
	if key == "" || len(key) > 1024 {
		return nil, ErrConversationKey
	}
	return []byte(key), nil
}

// Conversation returns the record stored under key; an absent or expired
// one returns ok == false, not an error.
func (s *Store) Conversation(ctx context.Context, key string) (rec []byte, ok bool, err error) {
	k, err := convKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, false, fmt.Errorf("read conversation: %w", err)
	}
	now := s.o.Now()
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bConv).Get(k)
		if v == nil {
			return nil
		}
		if len(v) < 8 {
			return errCorrupt
		}
		if live(binary.BigEndian.Uint64(v), now) {
			rec, ok = append([]byte(nil), v[8:]...), true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("read conversation: %w", err)
	}
	return rec, ok, nil
}

// UpdateConversation replaces the record under key with what fn makes of
// the live one (nil when there is none), in one transaction, so that two
// turns of one conversation never lose each other; the record lives ttl
// from now. fn returning nil deletes the record. Expired records are
// purged by every update.
func (s *Store) UpdateConversation(ctx context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	k, err := convKey(key)
	if err != nil {
		return err
	}
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("update conversation: %w", err)
	}
	now := s.o.Now()
	err = s.update(func(tx *bolt.Tx) error {
		if err := purgeConversations(tx, now); err != nil {
			return err
		}
		old, err := dropConversation(tx, k)
		if err != nil {
			return err
		}
		rec, err := fn(old)
		if err != nil || rec == nil {
			return err
		}
		exp := nanos(now.Add(ttl))
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(rec)), exp)
		if err := tx.Bucket(bConv).Put(k, append(v, rec...)); err != nil {
			return err
		}
		return tx.Bucket(bConvExp).Put(timeKey(k, exp), nil)
	})
	if err != nil {
		return fmt.Errorf("update conversation: %w", err)
	}
	return nil
}

// DeleteConversation deletes the record under key and reports whether a
// live one was there.
func (s *Store) DeleteConversation(ctx context.Context, key string) (bool, error) {
	k, err := convKey(key)
	if err != nil {
		return false, err
	}
	if err := s.begin(ctx); err != nil {
		return false, fmt.Errorf("delete conversation: %w", err)
	}
	now := s.o.Now()
	var had bool
	err = s.update(func(tx *bolt.Tx) error {
		if err := purgeConversations(tx, now); err != nil {
			return err
		}
		old, err := dropConversation(tx, k)
		had = old != nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("delete conversation: %w", err)
	}
	return had, nil
}

// dropConversation deletes key's record and index entry and returns the
// record (nil when there was none; purgeConversations ran first, so a
// record still here is live).
func dropConversation(tx *bolt.Tx, k []byte) ([]byte, error) {
	b := tx.Bucket(bConv)
	v := b.Get(k)
	if v == nil {
		return nil, nil
	}
	if len(v) < 8 {
		return nil, errCorrupt
	}
	rec := append([]byte(nil), v[8:]...)
	if err := tx.Bucket(bConvExp).Delete(timeKey(k, binary.BigEndian.Uint64(v))); err != nil {
		return nil, err
	}
	return rec, b.Delete(k)
}

// purgeConversations deletes the records whose expiry has passed.
func purgeConversations(tx *bolt.Tx, now time.Time) error {
	return purgeExpired(tx, bConv, bConvExp, now)
}
