package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// modelServer serves blob at /models/tiny.gguf with Range support, like a
// real model host. cutAfter > 0 makes the next full response die after
// that many bytes (an interrupted transfer).
type modelServer struct {
	blob     []byte
	mu       sync.Mutex
	cutAfter int
	ranges   []string // Range header of each request
	served   int64    // body bytes written
}

func (m *modelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.ranges = append(m.ranges, r.Header.Get("Range"))
	cut := m.cutAfter
	m.cutAfter = 0
	m.mu.Unlock()
	if r.URL.Path != "/models/tiny.gguf" {
		http.NotFound(w, r)
		return
	}
	cw := &countingWriter{ResponseWriter: w, m: m}
	if cut > 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(m.blob)))
		w.WriteHeader(http.StatusOK)
		cw.Write(m.blob[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection drops mid-body
	}
	http.ServeContent(cw, r, "tiny.gguf", time.Time{}, bytes.NewReader(m.blob))
}

// servedBytes and lastRange read the counters under the lock (the
// handler runs on the server's goroutines).
func (m *modelServer) servedBytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.served
}

func (m *modelServer) lastRange() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ranges[len(m.ranges)-1]
}

type countingWriter struct {
	http.ResponseWriter
	m *modelServer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.m.mu.Lock()
	c.m.served += int64(n)
	c.m.mu.Unlock()
	return n, err
}

func newServer(t *testing.T, size int) (*modelServer, *httptest.Server, string) {
	t.Helper()
	blob := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range blob {
		blob[i] = byte(r.Uint32())
	}
	ms := &modelServer{blob: blob}
	srv := httptest.NewServer(ms)
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(blob)
	return ms, srv, hex.EncodeToString(sum[:])
}

func TestPullInstallsAndLists(t *testing.T) {
	ms, srv, sum := newServer(t, 300_000)
	s := Open(filepath.Join(t.TempDir(), "models"))
	var calls int
	var last int64
	e, err := s.Pull(context.Background(), PullOptions{URL: srv.URL + "/models/tiny.gguf", SHA256: sum, Progress: func(done, total int64) {
		calls++
		last = done
		if total != int64(len(ms.blob)) {
			t.Errorf("progress total = %d", total)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "tiny" || e.File != "tiny.gguf" || e.Size != 300_000 || e.SHA256 != sum {
		t.Fatalf("entry = %+v", e)
	}
	if calls < 2 || last != 300_000 {
		t.Errorf("progress: %d calls, last %d", calls, last)
	}
	got, err := os.ReadFile(s.Path(e))
	if err != nil || !bytes.Equal(got, ms.blob) {
		t.Fatalf("installed file differs (%v)", err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name != "tiny" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if p, name, err := s.Resolve("tiny"); err != nil || p != s.Path(e) || name != "tiny" {
		t.Fatalf("resolve = %q %q %v", p, name, err)
	}
	res, err := s.Verify(context.Background())
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("verify = %+v, %v", res, err)
	}
	// Pulling it again downloads nothing.
	before := ms.servedBytes()
	if _, err := s.Pull(context.Background(), PullOptions{URL: srv.URL + "/models/tiny.gguf", SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	if ms.servedBytes() != before {
		t.Error("a second pull of an installed model downloaded again")
	}
	// A damaged file is found by verify.
	os.WriteFile(s.Path(e), append(got[:len(got)-1], got[len(got)-1]^1), 0o640)
	res, _ = s.Verify(context.Background(), "tiny")
	if len(res) != 1 || !errors.Is(res[0].Err, ErrChecksum) {
		t.Fatalf("verify of a damaged file = %+v", res)
	}
	if err := s.Remove("tiny"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path(e)); !os.IsNotExist(err) {
		t.Errorf("file still there after rm: %v", err)
	}
	if err := s.Remove("tiny"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second rm: %v", err)
	}
}

func TestPullResumesInterruptedTransfer(t *testing.T) {
	ms, srv, sum := newServer(t, 1_000_000)
	s := Open(t.TempDir())
	ms.cutAfter = 400_000
	_, err := s.Pull(context.Background(), PullOptions{URL: srv.URL + "/models/tiny.gguf", SHA256: sum, Name: "m"})
	if err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted pull: err = %v", err)
	}
	part := filepath.Join(s.Dir(), sum+".part")
	st, err := os.Stat(part)
	if err != nil || st.Size() == 0 || st.Size() > 400_000 {
		t.Fatalf("partial file after the cut: %v, %v", st, err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("an interrupted pull installed %+v", list)
	}
	have := st.Size()
	servedBefore := ms.servedBytes()
	e, err := s.Pull(context.Background(), PullOptions{URL: srv.URL + "/models/tiny.gguf", SHA256: sum, Name: "m"})
	if err != nil {
		t.Fatalf("resumed pull: %v", err)
	}
	if got := ms.lastRange(); got != "bytes="+strconv.FormatInt(have, 10)+"-" {
		t.Errorf("resume sent Range %q, want bytes=%d-", got, have)
	}
	if resent := ms.servedBytes() - servedBefore; resent != int64(len(ms.blob))-have {
		t.Errorf("resume downloaded %d bytes, want the missing %d", resent, int64(len(ms.blob))-have)
	}
	got, _ := os.ReadFile(s.Path(e))
	if !bytes.Equal(got, ms.blob) {
		t.Fatal("resumed file differs from the original")
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Error("partial file left after install")
	}
}

func TestPullChecksumMismatchInstallsNothing(t *testing.T) {
	_, srv, _ := newServer(t, 100_000)
	s := Open(t.TempDir())
	wrong := strings.Repeat("ab", 32)
	_, err := s.Pull(context.Background(), PullOptions{URL: srv.URL + "/models/tiny.gguf", SHA256: wrong})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), "nothing was installed") {
		t.Errorf("error does not say nothing was installed: %v", err)
	}
	entries, _ := os.ReadDir(s.Dir())
	for _, e := range entries {
		if e.Name() != ".lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("manifest lists %+v", list)
	}
}

func TestPullBadArguments(t *testing.T) {
	s := Open(t.TempDir())
	cases := []PullOptions{
		{URL: "http://127.0.0.1:1/x.gguf", SHA256: "123"},
		{URL: "ftp://example/x.gguf", SHA256: strings.Repeat("0", 64)},
		{URL: "http://127.0.0.1:1/x.gguf", SHA256: strings.Repeat("0", 64), Name: "../evil"},
	}
	for _, c := range cases {
		if _, err := s.Pull(context.Background(), c); err == nil {
			t.Errorf("Pull(%+v) succeeded", c)
		}
	}
	_, srv, sum := newServer(t, 10)
	if _, err := s.Pull(context.Background(), PullOptions{URL: srv.URL + "/nope.gguf", SHA256: sum}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: err = %v", err)
	}
}

func TestPullWriteFailures(t *testing.T) {
	_, srv, sum := newServer(t, 50_000)
	url := srv.URL + "/models/tiny.gguf"

	// The models folder path is taken by a file.
	dir := t.TempDir()
	blocker := filepath.Join(dir, "models")
	os.WriteFile(blocker, []byte("x"), 0o644)
	if _, err := Open(blocker).Pull(context.Background(), PullOptions{URL: url, SHA256: sum}); err == nil {
		t.Fatal("pull into a path that is a file succeeded")
	}

	// The target file name is taken by a non-empty directory: the verified
	// download cannot be installed; the manifest stays as it was, and once
	// the way is clear the next pull installs without downloading again.
	s := Open(t.TempDir())
	os.MkdirAll(filepath.Join(s.Dir(), "tiny.gguf", "x"), 0o755)
	_, err := s.Pull(context.Background(), PullOptions{URL: url, SHA256: sum})
	if err == nil || !strings.Contains(err.Error(), "install tiny.gguf") {
		t.Fatalf("install over a directory: err = %v", err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("manifest lists %+v after a failed install", list)
	}
	os.RemoveAll(filepath.Join(s.Dir(), "tiny.gguf"))
	if _, err := s.Pull(context.Background(), PullOptions{URL: url, SHA256: sum}); err != nil {
		t.Fatalf("pull after clearing the way: %v", err)
	}

	// The partial-download file is taken by a directory.
	s2 := Open(t.TempDir())
	os.MkdirAll(filepath.Join(s2.Dir(), sum+".part"), 0o755)
	_, err = s2.Pull(context.Background(), PullOptions{URL: url, SHA256: sum})
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("pull onto a directory: err = %v", err)
	}
	if list, _ := s2.List(); len(list) != 0 {
		t.Fatalf("manifest lists %+v after a failed write", list)
	}
}

func TestResolve(t *testing.T) {
	s := Open(t.TempDir())
	if _, _, err := s.Resolve("nosuch"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown name: %v", err)
	}
	f := filepath.Join(t.TempDir(), "My-Model.Q4_K_M.gguf")
	os.WriteFile(f, []byte("x"), 0o644)
	p, name, err := s.Resolve(f)
	if err != nil || p != f || name != "My-Model.Q4_K_M" {
		t.Fatalf("resolve path = %q %q %v", p, name, err)
	}
	if _, _, err := s.Resolve(filepath.Join(t.TempDir(), "gone.gguf")); err == nil {
		t.Fatal("missing path resolved")
	}
}

// TestPullDiskWriteFails runs a pull in a child process whose file size is
// capped (RLIMIT_FSIZE, like a full SD card for this one process; Go
// ignores SIGXFSZ, so the write returns EFBIG): the pull must fail with the
// write error, install nothing, and keep what it wrote for a later resume.
func TestPullDiskWriteFails(t *testing.T) {
	if dir := os.Getenv("HEDGE_TEST_FSIZE_CHILD"); dir != "" {
		_, srv, sum := newServer(t, 300_000)
		lim := unix.Rlimit{Cur: 100_000, Max: 100_000}
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatal(err)
		}
		s := Open(dir)
		_, err := s.Pull(context.Background(), PullOptions{URL: srv.URL + "/models/tiny.gguf", SHA256: sum})
		if err == nil || !strings.Contains(err.Error(), "file too large") {
			t.Fatalf("pull past the file size limit: err = %v", err)
		}
		if list, _ := s.List(); len(list) != 0 {
			t.Fatalf("manifest lists %+v after a failed write", list)
		}
		if _, err := os.Stat(filepath.Join(dir, "tiny.gguf")); !os.IsNotExist(err) {
			t.Fatalf("model installed after a failed write: %v", err)
		}
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPullDiskWriteFails$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HEDGE_TEST_FSIZE_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
