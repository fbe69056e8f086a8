package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OutboxState is where an outbox entry is in its life.
type OutboxState string

// The states of an outbox entry.
const (
	// Pending: waiting for the cloud.
	OutboxPending OutboxState = "pending"
	// Claimed: a drainer holds it until LeaseUntil and is asking the cloud.
	OutboxClaimed OutboxState = "claimed"
	// Answered: the cloud answered (Answer is set) but the answer is not
	// delivered yet; a claim of it re-delivers without a new cloud call.
	OutboxAnswered OutboxState = "answered"
)

// OutboxEntry is one durable cloud escalation.
type OutboxEntry struct {
	// Key is the idempotency key: one entry per key, ever (within the
	// reply window after its ack).
	Key     string
	ReplyTo string
	Payload []byte
	// Created defaults to now; Expires is capped at Created+OutboxMaxAge (a
	// zero Expires means exactly that cap). Expired entries are purged.
	Created, Expires time.Time
	Attempts         int
	State            OutboxState
	// NotBefore delays the next claim (retry backoff).
	NotBefore time.Time
	// LeaseUntil is when a claim lapses and the entry may be claimed again.
	LeaseUntil time.Time
	// Answer is the cloud's answer once State is answered.
	Answer []byte
}

// outboxEntryVersion 2 added the time the entry's delays were set (see
// outboxRec.stamped); version 1 entries are still read.
const outboxEntryVersion = 2

// Stored state codes.
const (
	stPending byte = iota
	stClaimed
	stAnswered
)

// outboxRec is an entry as stored, with its place in the queue.
type outboxRec struct {
	seq uint64
	e   OutboxEntry
	// stamped is when NotBefore and LeaseUntil were last set: both are
	// delays from that moment (see unskew).
	stamped time.Time
}

// unskew undoes a clock that went back since r's delays were set. A delay
// cannot start in the future: without this, an entry put off for a second
// while the clock was hours ahead (a device booting on a wrong clock until
// NTP corrects it) would wait those hours once the clock is right.
// It reports whether it changed r.
func (r *outboxRec) unskew(now time.Time) bool {
	if !now.Before(r.stamped) {
		return false
	}
	shift := r.stamped.Sub(now)
	if !r.e.NotBefore.IsZero() {
		r.e.NotBefore = r.e.NotBefore.Add(-shift)
	}
	if !r.e.LeaseUntil.IsZero() {
		r.e.LeaseUntil = r.e.LeaseUntil.Add(-shift)
	}
	r.stamped = now
	return true
}

func stateCode(s OutboxState) byte {
	switch s {
	case OutboxClaimed:
		return stClaimed
	case OutboxAnswered:
		return stAnswered
	}
	return stPending
}

func (r *outboxRec) encode() []byte {
	e := &r.e
	b := make([]byte, 0, 2+8*7+4+3*binary.MaxVarintLen32+len(e.ReplyTo)+len(e.Payload)+len(e.Answer))
	b = append(b, outboxEntryVersion, stateCode(e.State))
	b = binary.BigEndian.AppendUint64(b, r.seq)
	for _, t := range []time.Time{e.Created, e.Expires, e.NotBefore, e.LeaseUntil} {
		b = binary.BigEndian.AppendUint64(b, nanos(t))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(min(max(e.Attempts, 0), 1<<31-1)))
	b = appendBytes(b, []byte(e.ReplyTo))
	b = appendBytes(b, e.Payload)
	b = appendBytes(b, e.Answer)
	return binary.BigEndian.AppendUint64(b, nanos(r.stamped))
}

func decodeOutboxRec(key, v []byte) (outboxRec, error) {
	d := decoder{b: v}
	version := d.u8()
	if version != 1 && version != outboxEntryVersion {
		return outboxRec{}, fmt.Errorf("outbox entry %q: %w", key, errCorrupt)
	}
	var r outboxRec
	switch d.u8() {
	case stPending:
		r.e.State = OutboxPending
	case stClaimed:
		r.e.State = OutboxClaimed
	case stAnswered:
		r.e.State = OutboxAnswered
	default:
		return outboxRec{}, fmt.Errorf("outbox entry %q: %w: unknown state", key, errCorrupt)
	}
	r.seq = d.u64()
	r.e.Key = string(key)
	r.e.Created = fromNanos(d.u64())
	r.e.Expires = fromNanos(d.u64())
	r.e.NotBefore = fromNanos(d.u64())
	r.e.LeaseUntil = fromNanos(d.u64())
	r.e.Attempts = int(d.u32())
	r.e.ReplyTo = string(d.bytes())
	r.e.Payload = d.bytes()
	r.e.Answer = d.bytes()
	r.stamped = r.e.Created
	if version >= 2 {
		r.stamped = fromNanos(d.u64())
	}
	if r.e.State != OutboxAnswered {
		r.e.Answer = nil
	}
	if d.err != nil {
		return outboxRec{}, fmt.Errorf("outbox entry %q: %w", key, d.err)
	}
	return r, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// outboxTx is the outbox inside one read-write transaction.
type outboxTx struct {
	tx            *bolt.Tx
	data, seq, ex *bolt.Bucket
}

func newOutboxTx(tx *bolt.Tx) outboxTx {
	return outboxTx{tx: tx, data: tx.Bucket(bOutbox), seq: tx.Bucket(bOutboxSeq), ex: tx.Bucket(bOutboxExp)}
}

func (o outboxTx) load(key []byte) (outboxRec, bool, error) {
	v := o.data.Get(key)
	if v == nil {
		return outboxRec{}, false, nil
	}
	r, err := decodeOutboxRec(key, v)
	return r, err == nil, err
}

// write stores r, replacing old (nil for a new entry), and keeps the
// indexes, count and byte total in step.
func (o outboxTx) write(r outboxRec, old *outboxRec) error {
	key := []byte(r.e.Key)
	v := r.encode()
	delta := int64(len(key) + len(v))
	if old == nil {
		if err := o.seq.Put(seqKey(r.seq), key); err != nil {
			return err
		}
		if err := o.ex.Put(timeKey(nil, nanos(r.e.Expires), r.seq), key); err != nil {
			return err
		}
		if err := metaAdd(o.tx, kOutboxN, 1); err != nil {
			return err
		}
	} else {
		delta -= int64(len(key)) + int64(len(o.data.Get(key)))
	}
	if err := o.data.Put(key, v); err != nil {
		return err
	}
	return metaAdd(o.tx, kOutboxBytes, delta)
}

func (o outboxTx) remove(r outboxRec) error {
	key := []byte(r.e.Key)
	size := int64(len(key) + len(o.data.Get(key)))
	if err := o.data.Delete(key); err != nil {
		return err
	}
	if err := o.seq.Delete(seqKey(r.seq)); err != nil {
		return err
	}
	if err := o.ex.Delete(timeKey(nil, nanos(r.e.Expires), r.seq)); err != nil {
		return err
	}
	if err := metaAdd(o.tx, kOutboxN, -1); err != nil {
		return err
	}
	return metaAdd(o.tx, kOutboxBytes, -size)
}

// removeByIndex removes the entry an index value names; an index entry
// whose entry is gone (or belongs to a newer entry of the same key) is
// dropped alone.
func (o outboxTx) removeByIndex(c *bolt.Cursor, key []byte, seq uint64) error {
	r, ok, err := o.load(key)
	if err != nil {
		return err
	}
	if !ok || r.seq != seq {
		return c.Delete()
	}
	return o.remove(r)
}

// purgeExpired deletes entries whose Expires has passed.
func (o outboxTx) purgeExpired(now time.Time) (int, error) {
	n := 0
	c := o.ex.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		if len(k) != 16 {
			return n, fmt.Errorf("outbox expiry index: %w", errCorrupt)
		}
		if live(binary.BigEndian.Uint64(k), now) {
			return n, nil
		}
		if err := o.removeByIndex(c, bytes.Clone(v), binary.BigEndian.Uint64(k[8:])); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// dropOldest deletes the oldest entries, whatever their state, until the
// outbox is within its bounds; keep is never dropped.
func (o outboxTx) dropOldest(maxN int, maxBytes int64, keep []byte) (int, error) {
	n := 0
	c := o.seq.Cursor()
	k, v := c.First()
	for k != nil && (metaInt(o.tx, kOutboxN) > int64(maxN) || metaInt(o.tx, kOutboxBytes) > maxBytes) {
		if len(k) != 8 {
			return n, fmt.Errorf("outbox queue index: %w", errCorrupt)
		}
		if bytes.Equal(v, keep) {
			k, v = c.Next()
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		if err := o.removeByIndex(c, bytes.Clone(v), seq); err != nil {
			return n, err
		}
		n++
		// Deleting under a cursor moves it; seek back to where it was.
		k, v = c.Seek(seqKey(seq))
	}
	return n, nil
}

// Enqueue durably stores e as a pending escalation; when it returns nil
// the entry survives a crash. A Key already in the outbox, or acked within
// ReplyWindow, is ErrDuplicate and nothing is written. When the new entry
// puts the outbox over OutboxMaxCount or OutboxMaxBytes, the oldest entries
// are dropped (whatever their state: the newest questions are the ones a
// user still waits for) and dropped says how many. Expired entries are
// purged first and are not counted as dropped.
//
// Enqueue takes Key, ReplyTo, Payload, Created, Expires and NotBefore from
// e; the entry starts pending with no attempts and no lease.
func (s *Store) Enqueue(ctx context.Context, e OutboxEntry) (dropped int, err error) {
	if err := s.begin(ctx); err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	if e.Key == "" || len(e.Key) > 1024 {
		return 0, fmt.Errorf("enqueue: key is %d bytes; it must be 1 to 1024", len(e.Key))
	}
	now := s.o.Now()
	if e.Created.IsZero() {
		e.Created = now
	}
	if limit := e.Created.Add(s.o.OutboxMaxAge); e.Expires.IsZero() || e.Expires.After(limit) {
		e.Expires = limit
	}
	if !e.Expires.After(now) {
		return 0, fmt.Errorf("enqueue %q: it expired at %s", e.Key, e.Expires.UTC().Format(time.RFC3339))
	}
	e.State, e.Attempts, e.LeaseUntil, e.Answer = OutboxPending, 0, time.Time{}, nil
	key := []byte(e.Key)
	var purged int
	err = s.update(func(tx *bolt.Tx) error {
		dropped, purged = 0, 0
		o := newOutboxTx(tx)
		var err error
		if purged, err = o.purgeExpired(now); err != nil {
			return err
		}
		if o.data.Get(key) != nil {
			return fmt.Errorf("%w: %q is already in the outbox", ErrDuplicate, e.Key)
		}
		if _, ok := doneWindow.get(tx, key, now, s.o.ReplyWindow); ok {
			return fmt.Errorf("%w: %q was delivered already", ErrDuplicate, e.Key)
		}
		seq, err := o.seq.NextSequence()
		if err != nil {
			return err
		}
		r := outboxRec{seq: seq, e: e, stamped: now}
		if size := int64(len(key) + len(r.encode())); size > s.o.OutboxMaxBytes {
			return fmt.Errorf("%w: %q takes %d bytes, the bound is %d", ErrTooLarge, e.Key, size, s.o.OutboxMaxBytes)
		}
		if err := o.write(r, nil); err != nil {
			return err
		}
		dropped, err = o.dropOldest(s.o.OutboxMaxCount, s.o.OutboxMaxBytes, key)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	if dropped > 0 {
		s.log.Warn("outbox full: dropped the oldest escalations", "dropped", dropped,
			"max_count", s.o.OutboxMaxCount, "max_bytes", s.o.OutboxMaxBytes)
	}
	if purged > 0 {
		s.log.Info("outbox: purged expired escalations", "purged", purged)
	}
	return dropped, nil
}

// Claim leases up to n entries, oldest first, whose NotBefore has passed
// and whose lease (if any) has lapsed, until now+lease; each claim counts an
// attempt. Pending entries become claimed; answered entries stay answered
// (with their Answer), so a drainer that crashed before delivering
// re-delivers the stored answer without asking the cloud again. Expired
// entries are purged first.
func (s *Store) Claim(ctx context.Context, n int, lease time.Duration) ([]OutboxEntry, error) {
	if err := s.begin(ctx); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if n <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim: lease %s is not positive", lease)
	}
	now := s.o.Now()
	var out []OutboxEntry
	err := s.update(func(tx *bolt.Tx) error {
		out = out[:0]
		o := newOutboxTx(tx)
		if _, err := o.purgeExpired(now); err != nil {
			return err
		}
		c := o.seq.Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			r, ok, err := o.load(v)
			if err != nil {
				return err
			}
			if !ok || r.seq != binary.BigEndian.Uint64(k) {
				continue
			}
			old := r
			if r.unskew(now) {
				// Kept, or the delay would slide with every claim.
				if err := o.write(r, &old); err != nil {
					return err
				}
				old = r
			}
			if r.e.NotBefore.After(now) || r.e.LeaseUntil.After(now) {
				continue
			}
			r.e.LeaseUntil, r.stamped = now.Add(lease), now
			r.e.Attempts++
			if r.e.State != OutboxAnswered {
				r.e.State = OutboxClaimed
			}
			if err := o.write(r, &old); err != nil {
				return err
			}
			out = append(out, r.e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return out, nil
}

// modify loads key's entry, lets fn change it and stores it; an absent key
// is ErrNotFound.
func (s *Store) modify(key string, fn func(o outboxTx, r *outboxRec) error) error {
	return s.update(func(tx *bolt.Tx) error {
		o := newOutboxTx(tx)
		r, ok, err := o.load([]byte(key))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %q is not in the outbox", ErrNotFound, key)
		}
		return fn(o, &r)
	})
}

// MarkAnswered stores the cloud's answer of key's entry. The entry stays
// leased by its claimer, who delivers it and calls Ack. When the answer puts
// the outbox over OutboxMaxBytes, other entries are dropped, oldest first.
func (s *Store) MarkAnswered(ctx context.Context, key string, answer []byte) error {
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("mark answered: %w", err)
	}
	if answer == nil {
		answer = []byte{}
	}
	dropped := 0
	err := s.modify(key, func(o outboxTx, r *outboxRec) error {
		old := *r
		r.e.State, r.e.Answer = OutboxAnswered, answer
		if size := int64(len(key) + len(r.encode())); size > s.o.OutboxMaxBytes {
			return fmt.Errorf("%w: %q with its answer takes %d bytes, the bound is %d", ErrTooLarge, key, size, s.o.OutboxMaxBytes)
		}
		if err := o.write(*r, &old); err != nil {
			return err
		}
		var err error
		dropped, err = o.dropOldest(s.o.OutboxMaxCount, s.o.OutboxMaxBytes, []byte(key))
		return err
	})
	if err != nil {
		return fmt.Errorf("mark answered: %w", err)
	}
	if dropped > 0 {
		s.log.Warn("outbox full: dropped the oldest escalations", "dropped", dropped, "max_bytes", s.o.OutboxMaxBytes)
	}
	return nil
}

// Ack deletes key's entry after its answer was delivered and remembers the
// key for ReplyWindow, so that enqueueing it again is ErrDuplicate.
func (s *Store) Ack(ctx context.Context, key string) error {
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	now := s.o.Now()
	err := s.modify(key, func(o outboxTx, r *outboxRec) error {
		if err := o.remove(*r); err != nil {
			return err
		}
		return doneWindow.put(o.tx, []byte(key), nil, now, s.o.ReplyWindow, s.o.ReplyMaxEntries, true)
	})
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// Drop deletes key's entry without marking it delivered, for an
// escalation the caller gives up on (too many attempts, a permanent cloud
// error); enqueueing the key again is allowed. An absent key is ErrNotFound.
func (s *Store) Drop(ctx context.Context, key string) error {
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	err := s.modify(key, func(o outboxTx, r *outboxRec) error { return o.remove(*r) })
	if err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	return nil
}

// Release ends the lease of key's entry after a failed attempt: it goes
// back to pending (answered if it has an answer) and may be claimed again
// from notBefore on.
func (s *Store) Release(ctx context.Context, key string, notBefore time.Time) error {
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	now := s.o.Now()
	err := s.modify(key, func(o outboxTx, r *outboxRec) error {
		old := *r
		if r.e.State != OutboxAnswered {
			r.e.State = OutboxPending
		}
		r.e.LeaseUntil, r.e.NotBefore, r.stamped = time.Time{}, notBefore, now
		return o.write(*r, &old)
	})
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// OutboxStats returns the number of live entries in the outbox and the
// bytes they take (keys and encoded values). It purges expired entries
// when there are any.
func (s *Store) OutboxStats(ctx context.Context) (count int, size int64, err error) {
	if err := s.begin(ctx); err != nil {
		return 0, 0, fmt.Errorf("outbox stats: %w", err)
	}
	now := s.o.Now()
	stale := false
	read := func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bOutboxExp).Cursor().First()
		stale = len(k) >= 8 && !live(binary.BigEndian.Uint64(k), now)
		count, size = int(metaInt(tx, kOutboxN)), metaInt(tx, kOutboxBytes)
		return nil
	}
	if err := s.view(read); err != nil {
		return 0, 0, fmt.Errorf("outbox stats: %w", err)
	}
	if stale {
		err = s.update(func(tx *bolt.Tx) error {
			if _, err := newOutboxTx(tx).purgeExpired(now); err != nil {
				return err
			}
			return read(tx)
		})
		if err != nil {
			return 0, 0, fmt.Errorf("outbox stats: %w", err)
		}
	}
	return count, size, nil
}
