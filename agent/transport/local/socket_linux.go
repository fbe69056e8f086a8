//go:build linux

package local

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
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
