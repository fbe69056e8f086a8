package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The test binary doubles as a second process: with childEnv set it runs
// one of the child roles below instead of the tests.
const (
	childEnv    = "HEDGE_STORE_TEST_CHILD"
	childDirEnv = "HEDGE_STORE_TEST_DIR"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		if err := runChild(role, os.Getenv(childDirEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild plays a second hedge process. "hold" opens the store and keeps
// it until stdin closes; "enqueue" enqueues k0, k1, … and prints each key
// once Enqueue has returned, until it is killed; "replies" does the same
// with batches of reply records (PutReplies).
func runChild(role, dir string) error {
	s, err := Open(dir, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	switch role {
	case "hold":
		fmt.Println("ready")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		return nil
	case "enqueue":
		ctx := context.Background()
		for i := 0; i < 1_000_000; i++ {
			key := fmt.Sprintf("k%d", i)
			if _, err := s.Enqueue(ctx, OutboxEntry{Key: key, ReplyTo: "hedge/t/reply/" + key, Payload: []byte("payload of " + key)}); err != nil {
				return err
			}
			fmt.Println(key)
		}
		return nil
	case "replies":
		// Batches b0, b1, … of 16 replies each, each line once its
		// PutReplies returned; then it waits to be killed.
		ctx := context.Background()
		for b := range 500 {
			if _, err := s.PutReplies(ctx, replyBatch(b)); err != nil {
				return err
			}
			fmt.Printf("b%d\n", b)
		}
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

// startChild starts the test binary in role on dir and returns it with its
// stdout lines.
func startChild(t *testing.T, role, dir string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewScanner(out)
}

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTest opens a store in a fresh temp dir with the test's clock; it is
// closed (and checked for consistency) when the test ends.
func openTest(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !s.closed.Load() {
			checkInvariants(t, s)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// checkInvariants verifies that every count in meta matches the buckets and
// that every index entry points at its entry and back.
func checkInvariants(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		keys := func(name []byte) int { return tx.Bucket(name).Stats().KeyN }
		if n, m := keys(bCache), metaInt(tx, kCacheN); int64(n) != m {
			return fmt.Errorf("cache holds %d entries, meta says %d", n, m)
		}
		if n, m := keys(bCacheExp), keys(bCache); n != m {
			return fmt.Errorf("cache index holds %d keys, cache %d", n, m)
		}
		vecs := 0
		if err := tx.Bucket(bCache).ForEach(func(k, v []byte) error {
			e, err := decodeCacheEntry(v)
			if err != nil {
				return err
			}
			if tx.Bucket(bCacheExp).Get(timeKey(k, e.expires, e.created)) == nil {
				return fmt.Errorf("cache entry %q has no index key", k)
			}
			if len(e.vecIntent) > 0 {
				vecs++
				if tx.Bucket(bVec).Get(vecKey(e.vecIntent, k)) == nil {
					return fmt.Errorf("cache entry %q lost its vector", k)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if n := keys(bVec); n != vecs {
			return fmt.Errorf("vec holds %d vectors, cache entries name %d", n, vecs)
		}
		for _, w := range []window{replyWindow, doneWindow} {
			if n, m := keys(w.data), metaInt(tx, w.count); int64(n) != m {
				return fmt.Errorf("%s holds %d entries, meta says %d", w.data, n, m)
			}
			if n, m := keys(w.index), keys(w.data); n != m {
				return fmt.Errorf("%s index holds %d keys, data %d", w.data, n, m)
			}
		}
		var size int64
		if err := tx.Bucket(bOutbox).ForEach(func(k, v []byte) error {
			size += int64(len(k) + len(v))
			r, err := decodeOutboxRec(k, v)
			if err != nil {
				return err
			}
			if !bytes.Equal(tx.Bucket(bOutboxSeq).Get(seqKey(r.seq)), k) {
				return fmt.Errorf("outbox entry %q is not in the queue", k)
			}
			if !bytes.Equal(tx.Bucket(bOutboxExp).Get(timeKey(nil, nanos(r.e.Expires), r.seq)), k) {
				return fmt.Errorf("outbox entry %q is not in the expiry index", k)
			}
			return nil
		}); err != nil {
			return err
		}
		n := keys(bOutbox)
		if m := metaInt(tx, kOutboxN); int64(n) != m {
			return fmt.Errorf("outbox holds %d entries, meta says %d", n, m)
		}
		if m := metaInt(tx, kOutboxBytes); size != m {
			return fmt.Errorf("outbox holds %d bytes, meta says %d", size, m)
		}
		if a, b := keys(bOutboxSeq), keys(bOutboxExp); a != n || b != n {
			return fmt.Errorf("outbox holds %d entries, queue %d, expiry index %d", n, a, b)
		}
		return nil
	})
	if err != nil {
		t.Errorf("store invariants: %v", err)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "hedge")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if want := filepath.Join(dir, FileName); s.Path() != want {
		t.Errorf("Path() = %q, want %q", s.Path(), want)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
}

// TestOpenRefusesDirWritableByOthers: a state dir others may write to,
// sticky or not, is refused before any file is created in it; one only
// the group may write to is the owner's choice.
func TestOpenRefusesDirWritableByOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o1777, 0o702} {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{})
		if err == nil {
			s.Close()
			t.Fatalf("mode %v: Open succeeded", mode)
		}
		if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), "chmod o-w "+dir) {
			t.Errorf("mode %v: %v, want ErrUnsafeDir saying what to do", mode, err)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("mode %v: %s was created: %v", mode, FileName, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "group")
	if err := os.Mkdir(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("a 0770 state dir: %v", err)
	}
	s.Close()
}

func TestOpenEmptyDir(t *testing.T) {
	if _, err := Open("", Options{}); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

// assertLocked checks a second opener's failure: fast, ErrLocked, and a
// message that says what is wrong and where.
func assertLocked(t *testing.T, dir string) {
	t.Helper()
	start := time.Now()
	s, err := Open(dir, Options{LockTimeout: time.Second})
	elapsed := time.Since(start)
	if err == nil {
		s.Close()
		t.Fatal("second Open succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{"in use by another hedge process", filepath.Join(dir, FileName)} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if elapsed > 2*time.Second {
		t.Errorf("second Open failed after %s, want within 2s", elapsed)
	}
}

func TestOpenLockedInProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertLocked(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestOpenLockedAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd, out := startChild(t, "hold", dir)
	if !out.Scan() || out.Text() != "ready" {
		t.Fatalf("child did not open the store: %q %v", out.Text(), out.Err())
	}
	assertLocked(t, dir)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the holder died: %v", err)
	}
	s.Close()
}

// setSchema rewrites the stored schema version behind the store's back.
func setSchema(t *testing.T, path string, v uint32) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put(kSchema, binary.BigEndian.AppendUint32(nil, v))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesOtherSchema(t *testing.T) {
	for _, tc := range []struct {
		version uint32
		want    string
	}{
		{2, "created by a newer hedge (schema 2); this hedge reads 1"},
		{99, "created by a newer hedge (schema 99); this hedge reads 1"},
		{0, "unknown schema 0; this hedge reads 1"},
	} {
		t.Run(fmt.Sprint(tc.version), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Enqueue(context.Background(), OutboxEntry{Key: "keep"}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			setSchema(t, s.Path(), tc.version)
			before, err := os.ReadFile(s.Path())
			if err != nil {
				t.Fatal(err)
			}
			_, err = Open(dir, Options{})
			if !errors.Is(err, ErrSchema) {
				t.Fatalf("Open: %v, want ErrSchema", err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), s.Path()) {
				t.Errorf("error %q does not say %q and the path", err, tc.want)
			}
			after, err := os.ReadFile(s.Path())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("refused Open modified the file")
			}
			// The refusal released the lock: a fixed schema opens again.
			setSchema(t, s.Path(), SchemaVersion)
			s2, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if n, _, _ := s2.OutboxStats(context.Background()); n != 1 {
				t.Errorf("outbox holds %d entries after reopening, want 1", n)
			}
		})
	}
}

func TestOpenRefusesForeignFiles(t *testing.T) {
	t.Run("other bbolt file", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("theirs")); return err }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := Open(dir, Options{}); !errors.Is(err, ErrSchema) {
			t.Fatalf("Open: %v, want ErrSchema", err)
		}
	})
	t.Run("not bbolt", func(t *testing.T) {
		dir := t.TempDir()
		junk := bytes.Repeat([]byte("not a database "), 1000)
		if err := os.WriteFile(filepath.Join(dir, FileName), junk, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), FileName) {
			t.Fatalf("Open: %v, want an error naming the file", err)
		}
	})
}

func TestClosedStore(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	_, _, errGet := s.Get(ctx, "k")
	errPut := s.Put(ctx, "k", testAnswer("a"), time.Minute)
	_, errEnq := s.Enqueue(ctx, OutboxEntry{Key: "k"})
	_, errClaim := s.Claim(ctx, 1, time.Minute)
	_, errAdd := s.Add(ctx, "c", 1, time.Time{})
	errReply := s.PutReply(ctx, "id", nil)
	for i, err := range []error{errGet, errPut, errEnq, errClaim, errAdd, errReply} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("call %d after Close: %v, want ErrClosed", i, err)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	s := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, "k", testAnswer("a"), time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Put: %v, want context.Canceled", err)
	}
	if _, err := s.Enqueue(ctx, OutboxEntry{Key: "k"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Enqueue: %v, want context.Canceled", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	o := Options{Now: clk.Now}
	ctx := context.Background()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "q", testAnswer("forty-two"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVector(ctx, "q", "meaning", []float32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReply(ctx, "req-1", []byte(`{"id":"req-1"}`)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.Enqueue(ctx, OutboxEntry{Key: k, ReplyTo: "r/" + k, Payload: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := s.Claim(ctx, 1, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("Claim: %v %v", claimed, err)
	}
	if err := s.MarkAnswered(ctx, "a", []byte("cloud says hi")); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "budget", 7, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer checkInvariants(t, s)
	if a, ok, err := s.Get(ctx, "q"); err != nil || !ok || a.Answer != "forty-two" {
		t.Errorf("Get after reopen: %+v %v %v", a, ok, err)
	}
	if a, ok, err := s.Near(ctx, "meaning", []float32{2, 4, 6}, 0.99); err != nil || !ok || a.Answer != "forty-two" {
		t.Errorf("Near after reopen: %+v %v %v", a, ok, err)
	}
	if r, ok, err := s.GetReply(ctx, "req-1"); err != nil || !ok || string(r) != `{"id":"req-1"}` {
		t.Errorf("GetReply after reopen: %q %v %v", r, ok, err)
	}
	if _, err := s.Enqueue(ctx, OutboxEntry{Key: "c"}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("re-enqueue of acked key after reopen: %v, want ErrDuplicate", err)
	}
	if n, err := s.Counter(ctx, "budget"); err != nil || n != 7 {
		t.Errorf("Counter after reopen: %d %v", n, err)
	}
	// a is answered and leased, b is pending: once a's lease lapses both
	// are claimable, a with its stored answer.
	clk.Advance(2 * time.Minute)
	got, err := s.Claim(ctx, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "a" || got[1].Key != "b" {
		t.Fatalf("Claim after reopen: %+v", got)
	}
	if got[0].State != OutboxAnswered || string(got[0].Answer) != "cloud says hi" || got[0].Attempts != 2 {
		t.Errorf("entry a after reopen: %+v", got[0])
	}
	if got[1].ReplyTo != "r/b" || string(got[1].Payload) != "b" || got[1].State != OutboxClaimed {
		t.Errorf("entry b after reopen: %+v", got[1])
	}
}

// TestEnqueueSurvivesSIGKILL kills a process right after Enqueue returned
// and expects every entry it reported in the file.
func TestEnqueueSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cmd, out := startChild(t, "enqueue", dir)
	var keys []string
	for len(keys) < 25 && out.Scan() {
		keys = append(keys, out.Text())
	}
	if len(keys) < 25 {
		t.Fatalf("child reported only %d keys: %v", len(keys), out.Err())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// Lines the child printed after the 25th before it died count too.
	for out.Scan() {
		keys = append(keys, out.Text())
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after SIGKILL: %v", err)
	}
	defer s.Close()
	checkInvariants(t, s)
	ctx := context.Background()
	for _, k := range keys {
		if _, err := s.Enqueue(ctx, OutboxEntry{Key: k}); !errors.Is(err, ErrDuplicate) {
			t.Errorf("key %s reported enqueued is not in the outbox after SIGKILL (Enqueue: %v)", k, err)
		}
	}
	n, _, err := s.OutboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < len(keys) {
		t.Errorf("outbox holds %d entries, child reported %d", n, len(keys))
	}
	claimed, err := s.Claim(ctx, 1, time.Minute)
	if err != nil || len(claimed) != 1 || claimed[0].Key != "k0" || string(claimed[0].Payload) != "payload of k0" {
		t.Errorf("oldest entry after SIGKILL: %+v %v", claimed, err)
	}
}
