//go:build linux

package cloudbridge

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/cloudbridge/anonymize"
)

// The crash test re-executes this test binary as a drainer process. These
// variables carry its parameters; TestMain turns the binary into the child
// when the first is set.
const (
	envChild      = "HEDGE_CLOUDBRIDGE_CRASH_CHILD"
	envStateDir   = "HEDGE_CLOUDBRIDGE_STATE"
	envBaseURL    = "HEDGE_CLOUDBRIDGE_URL"
	envDeliveries = "HEDGE_CLOUDBRIDGE_DELIVERIES"
	envHangOn     = "HEDGE_CLOUDBRIDGE_HANG_ON"
	envMarker     = "HEDGE_CLOUDBRIDGE_MARKER"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// crashChild drains the outbox in the state dir into the deliveries file.
// Its courier hangs (after writing the marker file) on the answer that
// contains HANG_ON, so that the parent can kill it between storing an
// answer and delivering it.
func crashChild() int {
	st, err := store.Open(os.Getenv(envStateDir), store.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	anon, _ := anonymize.New(anonymize.Options{})
	hangOn, marker := os.Getenv(envHangOn), os.Getenv(envMarker)
	courier := &recordingCourier{file: os.Getenv(envDeliveries), block: func(a agent.Answer) {
		if strings.Contains(a.Answer, hangOn) {
			_ = os.WriteFile(marker, []byte("hanging"), 0o600)
			select {} // until SIGKILL
		}
	}}
	b, err := New(Options{
		BaseURL: os.Getenv(envBaseURL), Model: "fake-model", APIKey: testKey,
		Timeout: time.Minute, Concurrency: 2, Lease: 2 * time.Second, Poll: 20 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond, Anonymizer: anon, State: st, Courier: courier,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	_ = b.Run(context.Background()) // runs until killed
	return 0
}

// TestCrashMidDrain kills a drainer with SIGKILL while one answer is stored
// but not delivered and another request is in flight, restarts the drain
// on the same state dir, and checks that every escalation is delivered
// exactly once and that the stored answer was not asked for again.
func TestCrashMidDrain(t *testing.T) {
	dir := t.TempDir()
	deliveries := filepath.Join(t.TempDir(), "deliveries.jsonl")
	marker := filepath.Join(t.TempDir(), "marker")
	ctx := context.Background()

	// Queue six escalations while the link is down.
	const n = 6
	st := openStore(t, dir)
	b, _ := testBridge(t, closedPort(t), st, func(o *Options) { o.Anonymizer, _ = anonymize.New(anonymize.Options{}) })
	for i := range n {
		q := agent.Query{ID: fmt.Sprint("e", i), Text: fmt.Sprintf("question %d", i), ReplyTo: fmt.Sprint("reply/e", i)}
		if err := b.Defer(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// The cloud answers at once, except "question 3", which hangs while
	// the child runs.
	f := newFakeCloud(t)
	var mu sync.Mutex
	asked := map[string]int{}
	hang := make(chan struct{})
	f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
		mu.Lock()
		asked[req.user()]++
		mu.Unlock()
		if req.user() == "question 3" {
			select {
			case <-hang:
			case <-r.Context().Done():
				return true
			}
		}
		return false
	})
	countAsked := func(q string) int {
		mu.Lock()
		defer mu.Unlock()
		return asked[q]
	}

	// Batches of two: e0 and e1 are delivered and acked; in the second
	// batch e2's answer is stored and its delivery hangs, e3's request
	// hangs at the server. Then SIGKILL.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envStateDir+"="+dir, envBaseURL+"="+f.URL(),
		envDeliveries+"="+deliveries, envHangOn+"=question 2", envMarker+"="+marker)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// However the test ends, the child does not outlive it.
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitFor(t, "the child to store e2's answer and hang on e3", 30*time.Second, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("child exited early: %v\n%s", err, stderr.String())
		default:
		}
		_, err := os.Stat(marker)
		return err == nil && countAsked("question 3") == 1 && len(readDeliveries(t, deliveries)) == 2
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child ended with %v, want killed", err)
	}
	if got := readDeliveries(t, deliveries); len(got) != 2 {
		t.Fatalf("before the restart: %d deliveries, want 2", len(got))
	}
	close(hang)

	// Restart: a new drainer on the same state dir and deliveries file.
	st = openStore(t, dir)
	defer st.Close()
	if c, _, _ := st.OutboxStats(ctx); c != 4 {
		t.Errorf("%d entries survived the crash, want 4", c)
	}
	courier := &recordingCourier{file: deliveries}
	b, _ = testBridge(t, f.URL(), st, func(o *Options) {
		o.Courier = courier
		o.Anonymizer, _ = anonymize.New(anonymize.Options{})
	})
	runBridge(t, b)
	waitFor(t, "the restarted drain", 30*time.Second, func() bool {
		c, _, _ := st.OutboxStats(ctx)
		return c == 0 && len(readDeliveries(t, deliveries)) >= n
	})
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show up

	got := readDeliveries(t, deliveries)
	per := map[string]int{}
	for _, d := range got {
		per[d.Answer.ID]++
		if !d.Answer.Late || d.ReplyTo != "reply/"+d.Answer.ID || !strings.HasPrefix(d.Answer.Answer, "You asked: question ") {
			t.Errorf("delivery %+v", d)
		}
	}
	for i := range n {
		id := fmt.Sprint("e", i)
		if per[id] != 1 {
			t.Errorf("%s delivered %d times, want exactly once", id, per[id])
		}
	}
	if len(got) != n {
		t.Errorf("%d deliveries, want %d", len(got), n)
	}
	// e2's answer was stored before the crash: re-delivered, not re-asked.
	if c := countAsked("question 2"); c != 1 {
		t.Errorf("question 2 was asked %d times, want 1 (its answer was stored)", c)
	}
	for _, q := range []string{"question 0", "question 1", "question 4", "question 5"} {
		if c := countAsked(q); c != 1 {
			t.Errorf("%s asked %d times, want 1", q, c)
		}
	}
}

func readDeliveries(t testing.TB, path string) []delivery {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []delivery
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d delivery
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("deliveries file: %v", err)
		}
		out = append(out, d)
	}
	return out
}
