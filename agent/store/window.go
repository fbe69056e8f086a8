package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// window is a set of ids remembered for ReplyWindow, at most
// ReplyMaxEntries of them, oldest forgotten first. Replies and acked outbox
// keys are both windows.
type window struct {
	data, index, count []byte
}

var (
	replyWindow = window{data: bReply, index: bReplyT, count: kReplyN}
	doneWindow  = window{data: bDone, index: bDoneT, count: kDoneN}
)

// get returns id's value if it was stored within the window before now.
func (w window) get(tx *bolt.Tx, id []byte, now time.Time, span time.Duration) ([]byte, bool) {
	v := tx.Bucket(w.data).Get(id)
	if len(v) < 8 {
		return nil, false
	}
	if !live(nanos(fromNanos(binary.BigEndian.Uint64(v)).Add(span)), now) {
		return nil, false
	}
	return bytes.Clone(v[8:]), true
}

// put stores id. An id already in the window is ErrDuplicate unless
// replace is set; an expired one is replaced.
func (w window) put(tx *bolt.Tx, id, val []byte, now time.Time, span time.Duration, maxN int, replace bool) error {
	data := tx.Bucket(w.data)
	if old := data.Get(id); old != nil {
		if len(old) < 8 {
			return errCorrupt
		}
		created := binary.BigEndian.Uint64(old)
		if !replace && live(nanos(fromNanos(created).Add(span)), now) {
			return ErrDuplicate
		}
		if err := w.remove(tx, id, created); err != nil {
			return err
		}
	}
	created := nanos(now)
	v := make([]byte, 8, 8+len(val))
	binary.BigEndian.PutUint64(v, created)
	if err := data.Put(id, append(v, val...)); err != nil {
		return err
	}
	if err := tx.Bucket(w.index).Put(timeKey(id, created), nil); err != nil {
		return err
	}
	if err := metaAdd(tx, w.count, 1); err != nil {
		return err
	}
	return w.prune(tx, now, span, maxN)
}

func (w window) remove(tx *bolt.Tx, id []byte, created uint64) error {
	if err := tx.Bucket(w.data).Delete(id); err != nil {
		return err
	}
	if err := tx.Bucket(w.index).Delete(timeKey(id, created)); err != nil {
		return err
	}
	return metaAdd(tx, w.count, -1)
}

// prune forgets ids older than span and then the oldest until at most maxN
// remain.
func (w window) prune(tx *bolt.Tx, now time.Time, span time.Duration, maxN int) error {
	idx := tx.Bucket(w.index).Cursor()
	for k, _ := idx.First(); k != nil; k, _ = idx.First() {
		if len(k) < 8 {
			return errCorrupt
		}
		created := binary.BigEndian.Uint64(k)
		if live(nanos(fromNanos(created).Add(span)), now) && metaInt(tx, w.count) <= int64(maxN) {
			return nil
		}
		id := bytes.Clone(k[8:])
		if tx.Bucket(w.data).Get(id) == nil {
			if err := idx.Delete(); err != nil {
				return err
			}
			continue
		}
		if err := w.remove(tx, id, created); err != nil {
			return err
		}
	}
	return nil
}

// PutReply remembers the reply sent for request id, so that a redelivered
// request gets the same reply instead of a second answer. Replies are kept
// for ReplyWindow, at most ReplyMaxEntries of them (oldest forgotten
// first). An id that already has a reply in the window is ErrDuplicate and
// the first reply stays: send the one GetReply returns.
func (s *Store) PutReply(ctx context.Context, id string, reply []byte) error {
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("put reply: %w", err)
	}
	if id == "" || len(id) > 1024 {
		return fmt.Errorf("put reply: id is %d bytes; it must be 1 to 1024", len(id))
	}
	now := s.o.Now()
	// Concurrent calls share commits (DB.Batch); a caller with many
	// replies at hand writes them in one with PutReplies.
	err := s.batch(func(tx *bolt.Tx) error {
		return replyWindow.put(tx, []byte(id), reply, now, s.o.ReplyWindow, s.o.ReplyMaxEntries, false)
	})
	if err != nil {
		return fmt.Errorf("put reply %q: %w", id, err)
	}
	return nil
}

// PutReplies stores replies (id → reply) in one transaction: one commit,
// and its fsyncs, for them all, where PutReply takes one each. The MQTT
// transport's recorder gathers the replies of concurrent requests and
// writes them together. Each is stored as by PutReply, except that an id
// that already has a reply in the window is skipped (its first reply
// stays) instead of failing the others; stored counts the replies
// written. An id that is empty or over 1024 bytes fails the call before
// anything is written.
func (s *Store) PutReplies(ctx context.Context, replies map[string][]byte) (stored int, err error) {
	if err := s.begin(ctx); err != nil {
		return 0, fmt.Errorf("put replies: %w", err)
	}
	ids := make([]string, 0, len(replies))
	for id := range replies {
		if id == "" || len(id) > 1024 {
			return 0, fmt.Errorf("put replies: id is %d bytes; it must be 1 to 1024", len(id))
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	// In key order, bbolt fills each leaf page once.
	slices.Sort(ids)
	now := s.o.Now()
	err = s.update(func(tx *bolt.Tx) error {
		stored = 0
		for _, id := range ids {
			err := replyWindow.put(tx, []byte(id), replies[id], now, s.o.ReplyWindow, s.o.ReplyMaxEntries, false)
			if errors.Is(err, ErrDuplicate) {
				continue
			}
			if err != nil {
				return err
			}
			stored++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("put replies: %w", err)
	}
	return stored, nil
}

// GetReply returns the reply stored for id within the window. A miss
// returns ok == false, not an error.
func (s *Store) GetReply(ctx context.Context, id string) ([]byte, bool, error) {
	if err := s.begin(ctx); err != nil {
		return nil, false, fmt.Errorf("get reply: %w", err)
	}
	now := s.o.Now()
	var (
		v  []byte
		ok bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		v, ok = replyWindow.get(tx, []byte(id), now, s.o.ReplyWindow)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("get reply: %w", err)
	}
	return v, ok, nil
}
