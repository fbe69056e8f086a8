//go:build linux

package local

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// bindUnix creates a listening Unix socket at path whose file never has a
// mode wider than mode: Linux creates the socket file with the socket
// inode's mode minus the umask, and that mode is set with fchmod before
// bind. (A chmod after a plain bind would leave a window with the umask's
// mode, 0777 under umask 0.) Temporarily changing the umask is not an
// option: it is process-wide and other goroutines create files.
func bindUnix(path string, mode os.FileMode) (*net.UnixListener, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // FileListener holds its own duplicate
	if err := syscall.Fchmod(fd, uint32(mode.Perm())); err != nil {
		return nil, fmt.Errorf("set socket mode: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	// The kernel caps the backlog at net.core.somaxconn.
	if err := syscall.Listen(fd, 4096); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("listen: %w", err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln.(*net.UnixListener), nil
}

// peerCaller names the connected process by its uid (SO_PEERCRED), as
// "uid:1000"; "" when the kernel does not say.
func peerCaller(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return ""
	}
	return "uid:" + strconv.FormatUint(uint64(cred.Uid), 10)
}

// hangupWatchDelay is how long a request runs before its connection is
// watched for a hang-up: most requests (a cache hit, an intent) end well
// before, and never pay for the watch; a generation is watched from its
// first milliseconds.
const hangupWatchDelay = 5 * time.Millisecond

// watchHangup calls hangup, at most once, when the peer closes its end of
// c, from hangupWatchDelay on until stop is called; stop ends the watch and
// waits for it. It reads nothing: lines the client pipelined stay in the
// kernel's buffer for the read loop. Only a full close counts (POLLHUP, or
// an error on the socket): a client that shut down its writing side alone
// (POLLRDHUP) still reads its replies.
func watchHangup(c *net.UnixConn, hangup func()) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		end     func()
	)
	t := time.AfterFunc(hangupWatchDelay, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			end = startWatch(c, hangup)
		}
	})
	return func() {
		if t.Stop() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if end != nil {
			end()
		}
	}
}

// startWatch watches c until the returned end is called. The runtime's
// poller wakes it on every event of the socket (data or hang-up), so it
// costs nothing while the client stays quiet.
func startWatch(c *net.UnixConn, hangup func()) (end func()) {
	raw, err := c.SyscallConn()
	if err != nil {
		return func() {}
	}
	var ended atomic.Bool
	done := make(chan struct{})
	// The read loop's idle deadline would end the watch of a request that
	// runs longer; end sets one in the past to stop it.
	c.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		raw.Read(func(fd uintptr) bool {
			if ended.Load() {
				return true
			}
			if peerClosed(int(fd)) {
				hangup()
				return true
			}
			return false // wait for the socket's next event
		})
	}()
	return func() {
		ended.Store(true)
		c.SetReadDeadline(time.Unix(1, 0))
		<-done
	}
}

// peerClosed reports whether the peer of the socket fd has closed it
// entirely, without reading from it.
func peerClosed(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(p, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0 && p[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
	}
}
