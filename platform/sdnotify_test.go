package platform

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// listenNotify opens a unixgram socket standing in for systemd's notify
// socket, at a path in a temp dir or, for name "@…", in the abstract
// namespace.
func listenNotify(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	if name == "" {
		name = filepath.Join(t.TempDir(), "notify.sock")
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, name
}

// recv reads one datagram, failing after a generous deadline.
func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notify message: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	sent, err := Notify("READY=1")
	if sent || err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
}

func TestNotifyReady(t *testing.T) {
	for _, name := range []string{"", fmt.Sprintf("@hedge-test-%d-%d", os.Getpid(), time.Now().UnixNano())} {
		c, addr := listenNotify(t, name)
		t.Setenv("NOTIFY_SOCKET", addr)
		sent, err := Notify("READY=1")
		if !sent || err != nil {
			t.Fatalf("Notify(%s) = %v, %v", addr, sent, err)
		}
		if got := recv(t, c); got != "READY=1" {
			t.Errorf("socket %s received %q, want READY=1", addr, got)
		}
		if _, err := Notify("STATUS=serving\nMAINPID=" + strconv.Itoa(os.Getpid())); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != "STATUS=serving\nMAINPID="+strconv.Itoa(os.Getpid()) {
			t.Errorf("multi-line state arrived as %q", got)
		}
	}
}

func TestNotifyBadSocket(t *testing.T) {
	for _, s := range []string{"relative.sock", filepath.Join(t.TempDir(), "nobody-listens.sock")} {
		t.Setenv("NOTIFY_SOCKET", s)
		if sent, err := Notify("READY=1"); sent || err == nil {
			t.Errorf("Notify to %q = %v, %v; want an error", s, sent, err)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := 4242
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		ok, bad   bool
	}{
		{"", "", 0, false, false},
		{"30000000", "", 15 * time.Second, true, false},
		{"30000000", "4242", 15 * time.Second, true, false},
		{"30000000", "1", 0, false, false}, // meant for another process
		{"0", "", 0, false, true},
		{"soon", "", 0, false, true},
		{"30000000", "x", 0, false, true},
	} {
		got, ok, err := watchdogInterval(tc.usec, tc.pid, self)
		if got != tc.want || ok != tc.ok || (err != nil) != tc.bad {
			t.Errorf("watchdogInterval(%q, %q) = %v, %v, %v; want %v, %v, error %v", tc.usec, tc.pid, got, ok, err, tc.want, tc.ok, tc.bad)
		}
	}
}

func TestWatchdogNotForUs(t *testing.T) {
	c, addr := listenNotify(t, "")
	t.Setenv("NOTIFY_SOCKET", addr)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	// Returns at once: the watchdog belongs to another process.
	if err := Watchdog(context.Background(), func() bool { return true }, nil); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Fatalf("got a ping (%d bytes) meant for nobody", n)
	}

	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("WATCHDOG_USEC", "bogus")
	if err := Watchdog(context.Background(), func() bool { return true }, nil); err == nil {
		t.Fatal("Watchdog accepted WATCHDOG_USEC=bogus")
	}
}

// TestWatchdogPingsOnlyWhileHealthy drives the real loop against a real
// socket: pings while healthy, none while unhealthy, pings again after
// recovery, and a clean return when ctx ends. It waits on the loop's own
// health checks, not on wall-clock guesses.
func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	c, addr := listenNotify(t, "")
	t.Setenv("NOTIFY_SOCKET", addr)
	t.Setenv("WATCHDOG_USEC", "20000") // a ping every 10ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))

	var healthy atomic.Bool
	var checks atomic.Int64
	healthy.Store(true)
	probe := func() bool { checks.Add(1); return healthy.Load() }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, probe, nil) }()

	for i := 0; i < 3; i++ {
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Fatalf("ping %d = %q, want WATCHDOG=1", i, got)
		}
	}

	healthy.Store(false)
	// The check in progress when health flipped may still have been true
	// and its ping goes out before the next check begins; once two more
	// checks have run, every later check saw unhealthy.
	waitChecks(t, &checks, checks.Load()+2)
	drain(c)
	waitChecks(t, &checks, checks.Load()+5)
	if n := drain(c); n != 0 {
		t.Fatalf("%d pings sent while unhealthy", n)
	}

	healthy.Store(true)
	if got := recv(t, c); got != "WATCHDOG=1" {
		t.Fatalf("after recovery got %q, want WATCHDOG=1", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watchdog returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watchdog did not return after cancel")
	}
}

// waitChecks waits until the health probe has run at least n times.
func waitChecks(t *testing.T, checks *atomic.Int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for checks.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("watchdog loop stalled at %d health checks, want %d", checks.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// drain reads every datagram already queued and returns how many there
// were. Datagrams are queued when sent, so a short deadline loses none.
func drain(c *net.UnixConn) int {
	n := 0
	buf := make([]byte, 64)
	for {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			return n // the deadline passed: the queue is empty
		}
		n++
	}
}
