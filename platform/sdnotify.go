package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// Notify sends state (e.g. "READY=1", "STOPPING=1", "STATUS=…") to the
// service manager over $NOTIFY_SOCKET, speaking the sd_notify datagram
// protocol directly so hedge needs no libsystemd. It reports whether the
// message was sent: without $NOTIFY_SOCKET (not started by systemd) it does
// nothing and returns false, nil.
func Notify(state string) (bool, error) {
	return notify(os.Getenv("NOTIFY_SOCKET"), state)
}

func notify(socket, state string) (bool, error) {
	if socket == "" {
		return false, nil
	}
	// A leading '@' names a Linux abstract socket; the net package maps it
	// to the leading NUL byte the kernel expects.
	if socket[0] != '/' && socket[0] != '@' {
		return false, fmt.Errorf("sd_notify: NOTIFY_SOCKET %q is neither a path nor an abstract name", socket)
	}
	addr := &net.UnixAddr{Name: socket, Net: "unixgram"}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return false, fmt.Errorf("sd_notify: dial %s: %w", socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify: send %q: %w", state, err)
	}
	return true, nil
}

// WatchdogInterval returns how often the service manager expects WATCHDOG=1
// from this process: half of $WATCHDOG_USEC, as sd_watchdog_enabled(3)
// recommends. ok is false when the watchdog is off or meant for another
// process ($WATCHDOG_PID names a different pid).
func WatchdogInterval() (every time.Duration, ok bool, err error) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogInterval(usec, pid string, self int) (time.Duration, bool, error) {
	if usec == "" {
		return 0, false, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p <= 0 {
			return 0, false, fmt.Errorf("watchdog: WATCHDOG_PID=%q: not a process id", pid)
		}
		if p != self {
			return 0, false, nil
		}
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0, false, fmt.Errorf("watchdog: WATCHDOG_USEC=%q: not a positive number of microseconds", usec)
	}
	return time.Duration(u) * time.Microsecond / 2, true, nil
}

// Watchdog pings the service manager with WATCHDOG=1 at half the interval
// systemd asked for (WatchdogSec=), but only while healthy() reports true:
// a wedged or unhealthy hedge stops pinging and systemd restarts it. It
// returns nil at once when no watchdog is set up for this process, and nil
// when ctx ends; any other error means the watchdog is misconfigured.
// systemd arms the watchdog once start-up completes (READY=1), so a slow
// model load before READY is not cut short. healthy should answer quickly;
// one that hangs withholds the pings, as a hang should.
func Watchdog(ctx context.Context, healthy func() bool, log *slog.Logger) error {
	every, ok, err := WatchdogInterval()
	if err != nil || !ok {
		return err
	}
	return watchdog(ctx, os.Getenv("NOTIFY_SOCKET"), every, healthy, log)
}

func watchdog(ctx context.Context, socket string, every time.Duration, healthy func() bool, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "watchdog")
	log.Debug("watchdog on", "interval", every)
	t := time.NewTicker(every)
	defer t.Stop()
	wasHealthy, failing := true, false
	for {
		// Ping first, then wait: the first ping goes out right away.
		h := healthy()
		switch {
		case h:
			if !wasHealthy {
				log.Info("healthy again; watchdog pings resume")
			}
			_, err := notify(socket, "WATCHDOG=1")
			// Log the first failure of a run only: the loop would repeat it
			// every tick.
			if err != nil && !failing {
				log.Warn("watchdog ping failed", "err", err)
			}
			failing = err != nil
		case wasHealthy:
			log.Warn("unhealthy; watchdog pings withheld so systemd restarts hedge unless it recovers")
		}
		wasHealthy = h
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
