// Package store keeps hedge's state in one bbolt file, hedge.db in the state
// dir: the answer cache (exact and near-duplicate), the reply dedupe window
// of the MQTT transport, the durable outbox of cloud escalations and
// counters that survive restarts (daily budgets, metrics).
//
// It knows nothing of models or transports; its values are opaque bytes
// except cached answers, which are agent.Answer.
//
// Every write is one bbolt read-write transaction, committed with fsync
// (NoSync is never set), so a write that returned survives a crash or a
// SIGKILL. Expired data is never returned and is purged lazily by the next
// write that touches its area; size bounds are enforced inside the write
// that would break them, so they hold at every commit.
//
// Encoding (schema 1). Times are Unix nanoseconds as 8-byte big-endian
// integers (0 for "never"), so index keys sort by time. Values are small
// fixed headers followed by length-prefixed byte strings (encoding/binary);
// a cached answer's body is its JSON, the wire shape of agent.Answer, so a
// field added to Answer needs no new schema. Buckets:
//
//	meta         schema version, entry counts and byte totals
//	cache        key → version, expires, created, vector intent, answer JSON
//	cache_exp    expires|created|key → ∅   (eviction and purge order)
//	vec          len(intent)|intent|key → expires, float32 components
//	reply        id → created, reply bytes
//	reply_t      created|id → ∅
//	outbox       key → version, state, seq, times, attempts, reply_to, payload, answer
//	outbox_seq   seq → key                  (oldest first: claim and drop order)
//	outbox_exp   expires|seq → key          (purge order)
//	done         key → acked at             (acked outbox keys, for duplicates)
//	done_t       acked|key → ∅
//	counter      key → value, expires
//	counter_exp  expires|key → ∅
//	conv         key → expires, record      (conversations; added to schema 1
//	conv_exp     expires|key → ∅             files that lack them at open)
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/hedge-edge/hedge/agent"
)

// FileName is the name of the database file in the state dir.
const FileName = "hedge.db"

// SchemaVersion is the layout of hedge.db this package reads and writes.
// A file with another version is refused with ErrSchema rather than misread.
const SchemaVersion = 1

// Defaults for the zero values of Options.
const (
	DefaultLockTimeout     = time.Second
	DefaultCacheMaxEntries = 10000
	DefaultReplyWindow     = 15 * time.Minute
	DefaultReplyMaxEntries = 10000
	DefaultOutboxMaxCount  = 1000
	DefaultOutboxMaxBytes  = 8 << 20
	DefaultOutboxMaxAge    = 24 * time.Hour
)

// The sentinel errors of the store. Test for them with errors.Is; the
// returned errors wrap them with the details.
var (
	// ErrLocked is returned by Open when another process (or another Open in
	// this one) holds hedge.db: two hedges must never share a state dir.
	ErrLocked = errors.New("state dir is in use by another hedge process")
	// ErrSchema is returned by Open when hedge.db was written with a schema
	// this hedge does not know (a newer hedge); the file is left untouched.
	ErrSchema = errors.New("unsupported store schema")
	// ErrDuplicate is returned by Enqueue for a key that is already in the
	// outbox or was acked within the reply window, and by PutReply for an id
	// that already has a reply; nothing is written.
	ErrDuplicate = errors.New("duplicate key")
	// ErrNotFound is returned by Ack, Release and MarkAnswered for a key that
	// is not in the outbox (never enqueued, acked, dropped or expired), and
	// by PutVector for a key with no live cache entry.
	ErrNotFound = errors.New("key not found")
	// ErrTooLarge is returned by Enqueue for an entry that alone is larger
	// than Options.OutboxMaxBytes: dropping every other entry would not make
	// room for it.
	ErrTooLarge = errors.New("entry larger than the outbox byte bound")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store is closed")
	// ErrUnsafeDir is returned by Open for a state dir that others than its
	// owner and group may write to (sticky or not): anyone could put a
	// hedge.db of their own there first, or replace what hedge keeps
	// beside it. Nothing is opened.
	ErrUnsafeDir = errors.New("state dir is writable by others")
)

// Options tunes a Store. Zero values take the Default… constants; Now
// defaults to time.Now and Log to a discarding logger.
type Options struct {
	// LockTimeout bounds how long Open waits for another holder of the file.
	LockTimeout time.Duration
	// CacheMaxEntries bounds the answer cache; the soonest-expiring entries
	// are evicted first (the oldest first among equals).
	CacheMaxEntries int
	// ReplyWindow is how long a reply (and an acked outbox key) is kept for
	// dedupe; ReplyMaxEntries bounds their number, oldest dropped first.
	ReplyWindow     time.Duration
	ReplyMaxEntries int
	// OutboxMaxCount and OutboxMaxBytes bound the outbox: when an Enqueue
	// (or an answer) would exceed either, the oldest entries are dropped,
	// whatever their state. OutboxMaxAge caps every entry's Expires.
	OutboxMaxCount int
	OutboxMaxBytes int64
	OutboxMaxAge   time.Duration
	// Now is the clock; tests inject one.
	Now func() time.Time
	// Log is used as given; the caller tags it (component=store).
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.CacheMaxEntries <= 0 {
		o.CacheMaxEntries = DefaultCacheMaxEntries
	}
	if o.ReplyWindow <= 0 {
		o.ReplyWindow = DefaultReplyWindow
	}
	if o.ReplyMaxEntries <= 0 {
		o.ReplyMaxEntries = DefaultReplyMaxEntries
	}
	if o.OutboxMaxCount <= 0 {
		o.OutboxMaxCount = DefaultOutboxMaxCount
	}
	if o.OutboxMaxBytes <= 0 {
		o.OutboxMaxBytes = DefaultOutboxMaxBytes
	}
	if o.OutboxMaxAge <= 0 {
		o.OutboxMaxAge = DefaultOutboxMaxAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Store is hedge's state in bbolt. It is safe for concurrent use: bbolt
// serializes writers and lets readers run alongside.
type Store struct {
	db     *bolt.DB
	path   string
	o      Options
	log    *slog.Logger
	closed atomic.Bool
}

// Bucket names and meta keys.
var (
	bMeta       = []byte("meta")
	bCache      = []byte("cache")
	bCacheExp   = []byte("cache_exp")
	bVec        = []byte("vec")
	bReply      = []byte("reply")
	bReplyT     = []byte("reply_t")
	bOutbox     = []byte("outbox")
	bOutboxSeq  = []byte("outbox_seq")
	bOutboxExp  = []byte("outbox_exp")
	bDone       = []byte("done")
	bDoneT      = []byte("done_t")
	bCounter    = []byte("counter")
	bCounterExp = []byte("counter_exp")
	bConv       = []byte("conv")
	bConvExp    = []byte("conv_exp")

	allBuckets = [][]byte{bMeta, bCache, bCacheExp, bVec, bReply, bReplyT, bOutbox, bOutboxSeq, bOutboxExp, bDone, bDoneT, bCounter, bCounterExp}
	// addedBuckets came after a schema's first release: a file without
	// them is of the same schema and gets them at open.
	addedBuckets = [][]byte{bConv, bConvExp}

	kSchema      = []byte("schema")
	kCacheN      = []byte("n.cache")
	kReplyN      = []byte("n.reply")
	kDoneN       = []byte("n.done")
	kOutboxN     = []byte("n.outbox")
	kOutboxBytes = []byte("bytes.outbox")
)

// Open opens (creating if needed, 0600, parent dir 0700) the bbolt file
// hedge.db in dir. A second opener fails within opts.LockTimeout with
// ErrLocked; a file of another schema version fails with ErrSchema; a dir
// others may write to fails with ErrUnsafeDir.
func Open(dir string, opts Options) (*Store, error) {
	opts.defaults()
	if dir == "" {
		return nil, errors.New("open store: state dir is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: create state dir: %w", err)
	}
	di, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if perm := di.Mode().Perm(); perm&0o002 != 0 {
		return nil, fmt.Errorf("open store: %s: %w (mode %04o): anyone could replace hedge's database there; run chmod o-w %s",
			dir, ErrUnsafeDir, perm, dir)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (could not lock %s within %s; stop the other hedge or set another state_dir)",
			dir, ErrLocked, path, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	if err := initSchema(db, path); err != nil {
		_ = db.Close()
		return nil, err
	}
	s := &Store{db: db, path: path, o: opts, log: opts.Log}
	return s, nil
}

// initSchema checks the stored schema version without writing, then
// creates what a fresh file lacks.
func initSchema(db *bolt.DB, path string) error {
	fresh := false
	err := db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if m == nil {
			others := false
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { others = true; return nil })
			if others {
				return fmt.Errorf("open store: %s: %w: the file holds no hedge schema version", path, ErrSchema)
			}
			fresh = true
			return nil
		}
		v := m.Get(kSchema)
		if len(v) != 4 {
			return fmt.Errorf("open store: %s: %w: the schema version is missing or malformed", path, ErrSchema)
		}
		if n := binary.BigEndian.Uint32(v); n != SchemaVersion {
			if n > SchemaVersion {
				return fmt.Errorf("open store: %s: %w: created by a newer hedge (schema %d); this hedge reads %d", path, ErrSchema, n, SchemaVersion)
			}
			return fmt.Errorf("open store: %s: %w: unknown schema %d; this hedge reads %d", path, ErrSchema, n, SchemaVersion)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("open store: %s: %w: bucket %s is missing", path, ErrSchema, name)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !fresh {
		return addBuckets(db, path)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range append(allBuckets, addedBuckets...) {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put(kSchema, binary.BigEndian.AppendUint32(nil, SchemaVersion))
	})
	if err != nil {
		return fmt.Errorf("open store: initialize %s: %w", path, err)
	}
	return nil
}

// addBuckets creates the addedBuckets a file lacks; it writes nothing when
// it has them all.
func addBuckets(db *bolt.DB, path string) error {
	missing := false
	_ = db.View(func(tx *bolt.Tx) error {
		for _, name := range addedBuckets {
			missing = missing || tx.Bucket(name) == nil
		}
		return nil
	})
	if !missing {
		return nil
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range addedBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open store: add buckets to %s: %w", path, err)
	}
	return nil
}

// Close closes the database file and releases its lock. Calls after the
// first return nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Now is the store's clock (Options.Now). Whatever else judges the time of
// the store's records (the cloud bridge's budgets and outbox delays) reads
// it here, so that one clock decides what has expired.
func (s *Store) Now() time.Time { return s.o.Now() }

// begin checks what every method checks first: an open store and a live ctx.
func (s *Store) begin(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// update runs fn in a read-write transaction and maps a close race to
// ErrClosed.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	return closedErr(s.db.Update(fn))
}

// batchDelay is how long a batched write waits for others to join its
// commit. bbolt's default (10 ms) makes a handful of writers slower than
// committing one by one; a fraction of an fsync lets them share it.
const batchDelay = 250 * time.Microsecond

// batch is update for writes that many goroutines make at once: bbolt
// coalesces concurrent calls into one transaction and one fsync. fn may run
// more than once (bbolt retries it alone when a batch fails), so it must
// depend on nothing but tx.
func (s *Store) batch(fn func(tx *bolt.Tx) error) error {
	return closedErr(s.db.Batch(fn))
}

func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return closedErr(s.db.View(fn))
}

func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Interface guard: the store is the agent's answer cache.
var _ agent.Cache = (*Store)(nil)
