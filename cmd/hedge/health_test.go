package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/platform"
)

// hungTier is a generator that never returns until released, whatever
// its context says: a tier wedged in C code, say.
type hungTier struct{ release chan struct{} }

func (h hungTier) Generate(context.Context, agent.Query, func(string)) (agent.Answer, error) {
	<-h.release
	return agent.Answer{Answer: "late"}, nil
}

// TestWatchdogStopsWhenATierHangs drives the real watchdog loop against a
// real notify socket with pipelineHealth over a real store and agent: a
// query stuck in a tier past the stall bound stops the pings within two
// intervals, and they resume once the tier returns.
func TestWatchdogStopsWhenATierHangs(t *testing.T) {
	const interval = 100 * time.Millisecond
	sock := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", strconv.Itoa(int(2*interval/time.Microsecond)))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tier := hungTier{release: make(chan struct{})}
	a := agent.New(agent.Options{LLM: tier, RequestTimeout: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = platform.Watchdog(ctx, pipelineHealth(ctx, st, a, 3*interval), nil) }()
	ping(t, c, 10*time.Second) // healthy: pings

	answered := make(chan agent.Answer, 1)
	go func() { answered <- a.Handle(context.Background(), agent.Query{Text: "tell me a story"}, nil) }()
	for _, stalled := a.Stalled(3 * interval); !stalled; _, stalled = a.Stalled(3 * interval) {
		time.Sleep(interval / 10)
	}
	since := time.Now()
	for {
		_ = c.SetReadDeadline(since.Add(8 * interval))
		if _, err := c.Read(make([]byte, 64)); err != nil {
			break // no ping for the rest of the window
		}
		if late := time.Since(since); late > 2*interval {
			t.Fatalf("a ping %s after the query stalled", late.Round(time.Millisecond))
		}
	}
	close(tier.release)
	<-answered
	ping(t, c, 10*time.Second) // the tier returned: pings again
}

// ping waits for one WATCHDOG=1 datagram.
func ping(t *testing.T, c *net.UnixConn, d time.Duration) {
	t.Helper()
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(d))
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no watchdog ping within %s: %v", d, err)
		}
		if string(buf[:n]) == "WATCHDOG=1" {
			return
		}
	}
}
