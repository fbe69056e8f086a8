package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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
	// Replies are recorded by many MQTT workers at once: batched, they
	// share fsyncs instead of queueing for one each.
	err := s.batch(func(tx *bolt.Tx) error {
		return replyWindow.put(tx, []byte(id), reply, now, s.o.ReplyWindow, s.o.ReplyMaxEntries, false)
	})
	if err != nil {
		return fmt.Errorf("put reply %q: %w", id, err)
	}
	return nil
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
