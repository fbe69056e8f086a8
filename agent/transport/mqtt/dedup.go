package mqtt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ReplyStore remembers the reply sent for a request id for a bounded
// window, so that a redelivered or duplicated request is answered with the
// same bytes instead of being computed again. agent/store's Store
// implements it. Implementations are safe for concurrent use.
type ReplyStore interface {
	// PutReplies stores replies (id → reply) in one commit. An id that
	// already has a reply keeps its first one; stored counts those
	// written.
	PutReplies(ctx context.Context, replies map[string][]byte) (stored int, err error)
	// GetReply returns the reply stored under id within the window; a miss
	// returns ok == false, not an error.
	GetReply(ctx context.Context, id string) (reply []byte, ok bool, err error)
}

// dedupKey is the store id of a request: its id and the topic its reply
// goes to, so two devices that both number their requests from 1 never get
// each other's replies. Hashed to keep the key short whatever reply_to is.
func dedupKey(replyTo, id string) string {
	// Length-prefixed, so no (reply_to, id) pair can spell another's.
	h := sha256.Sum256([]byte(strconv.Itoa(len(replyTo)) + ":" + replyTo + id))
	return "mqtt:" + hex.EncodeToString(h[:16])
}

// flight is a request being computed; duplicates that arrive meanwhile
// wait on it instead of being computed again.
type flight struct {
	// dups are the duplicate messages, acknowledged once the first
	// reply is out.
	dups []paho.Message
}

// replies tracks in-flight and recent replies by dedup key, and records
// replies in the durable store off the reply path: a bbolt commit is an
// fsync (milliseconds), and a reply must not wait for one. One recorder
// gathers the records and commits them together (see recordEvery).
type replies struct {
	store ReplyStore
	log   *slog.Logger

	mu      sync.Mutex
	flights map[string]*flight
	// recent holds the last maxRecent stored replies, so duplicates within
	// a run are answered even when the durable write is still pending.
	recent    map[string][]byte
	order     []string // ring of recent keys, oldest at next
	next      int
	maxRecent int

	rec     chan record
	recWG   sync.WaitGroup
	dropped atomic.Int64
	abandon atomic.Bool
	lastLog logLimiter
}

type record struct {
	key   string
	reply []byte
}

// The recorder commits at most once per recordEvery, with every record
// queued since the last commit, at most recordMax of them. A commit costs
// about the same whatever it holds (two fdatasyncs and, on a two-core
// machine, some 0.3 ms of CPU: BenchmarkPutReplies in agent/store), a
// record in it only a few µs more, so under load hedge commits a hundred
// times a second instead of once per reply. A record that comes after a
// quiet spell is committed at once.
//
// What a crash (SIGKILL, power cut) can lose is what is not committed
// yet: the records of the replies sent in the last recordEvery, and those
// of the commit in progress (TestCrashLosesOnlyUncommittedRecords). A
// copy of such a request that comes after the restart is computed again
// instead of answered with the stored bytes.
const (
	recordEvery = 10 * time.Millisecond
	recordMax   = 1024
)

func newReplies(store ReplyStore, maxRecent, queue int, log *slog.Logger) *replies {
	if maxRecent < 1 {
		maxRecent = 10000
	}
	r := &replies{
		store:     store,
		log:       log,
		flights:   make(map[string]*flight),
		recent:    make(map[string][]byte, maxRecent),
		order:     make([]string, maxRecent),
		maxRecent: maxRecent,
		rec:       make(chan record, queue),
	}
	return r
}

// start runs the recorder; close stops it.
func (r *replies) start() {
	r.recWG.Add(1)
	go r.recorder()
}

// claim is the outcome of begin.
type claim int

const (
	claimCompute claim = iota // the caller computes and calls finish
	claimRecent               // a reply is in memory: send it
	claimStored               // the durable store had a reply: send it, call finishStored
	claimJoined               // a flight is on; the message was attached to it
)

// begin looks key up: a recent or durable reply is returned to be sent
// again; a request in flight gets msg attached; otherwise a flight starts
// and the caller must call finish.
func (r *replies) begin(ctx context.Context, key string, msg paho.Message) (claim, []byte) {
	r.mu.Lock()
	if b, ok := r.recent[key]; ok {
		r.mu.Unlock()
		return claimRecent, b
	}
	if f, ok := r.flights[key]; ok {
		f.dups = append(f.dups, msg)
		r.mu.Unlock()
		return claimJoined, nil
	}
	f := &flight{}
	r.flights[key] = f
	r.mu.Unlock()

	// The durable store knows replies of earlier runs. The flight is
	// registered first, so a duplicate arriving during this read waits.
	b, ok, err := r.store.GetReply(ctx, key)
	if err != nil {
		r.warn("reply store read failed; computing the reply", err)
	}
	if ok {
		r.mu.Lock()
		r.remember(key, b)
		r.mu.Unlock()
		return claimStored, b
	}
	return claimCompute, nil
}

// finish ends key's flight. reply, when not nil, is remembered and stored
// durably; the returned messages are the duplicates that joined the flight.
func (r *replies) finish(key string, reply []byte) []paho.Message {
	r.mu.Lock()
	f := r.flights[key]
	delete(r.flights, key)
	if reply != nil {
		r.remember(key, reply)
	}
	r.mu.Unlock()
	if reply != nil {
		select {
		case r.rec <- record{key, reply}:
		default:
			// The store is slower than the request rate: the in-memory
			// window still answers duplicates during this run.
			r.dropped.Add(1)
			r.warn("reply store is behind; a reply is kept in memory only", nil)
		}
	}
	if f == nil {
		return nil
	}
	return f.dups
}

// finishStored ends a flight that begin resolved from the durable store.
func (r *replies) finishStored(key string) []paho.Message {
	r.mu.Lock()
	f := r.flights[key]
	delete(r.flights, key)
	r.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.dups
}

// recentReply returns key's reply if it is in memory.
func (r *replies) recentReply(key string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.recent[key]
	return b, ok
}

// remember keeps key's reply in the recent window; r.mu must be held.
func (r *replies) remember(key string, b []byte) {
	if _, ok := r.recent[key]; ok {
		return
	}
	if old := r.order[r.next]; old != "" {
		delete(r.recent, old)
	}
	r.order[r.next] = key
	r.next = (r.next + 1) % r.maxRecent
	r.recent[key] = b
}

func (r *replies) recorder() {
	defer r.recWG.Done()
	var last time.Time // when the last commit began
	for {
		rc, open := <-r.rec
		if !open {
			return
		}
		batch := map[string][]byte{rc.key: rc.reply}
		add := func(rc record) {
			if _, ok := batch[rc.key]; !ok {
				batch[rc.key] = rc.reply
			}
		}
		if wait := recordEvery - time.Since(last); wait > 0 {
			// The records that come meanwhile wait in the channel:
			// receiving them as they come would wake the recorder for
			// each one.
			time.Sleep(wait)
		}
	queued:
		for open && len(batch) < recordMax {
			select {
			case rc, open = <-r.rec:
				if open {
					add(rc)
				}
			default:
				break queued
			}
		}
		last = time.Now()
		r.write(batch)
		if !open {
			return
		}
	}
}

// write commits one batch of records.
func (r *replies) write(batch map[string][]byte) {
	if r.abandon.Load() {
		r.dropped.Add(int64(len(batch)))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.store.PutReplies(ctx, batch); err != nil {
		r.warn("reply store write failed", err)
	}
}

// close stops the recorder once the pending records are committed, or
// after grace, dropping the rest.
func (r *replies) close(grace time.Duration) {
	close(r.rec)
	done := make(chan struct{})
	go func() {
		r.recWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		r.abandon.Store(true)
		<-done
		r.log.Info("reply store writes dropped at shutdown", "dropped", r.dropped.Load())
	}
}

// warn logs at most one warning a minute: a loop must not flood the log.
func (r *replies) warn(msg string, err error) {
	if !r.lastLog.allow() {
		return
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn(msg, "err", err, "dropped", r.dropped.Load())
		return
	}
	r.log.Warn(msg, "dropped", r.dropped.Load())
}
