//go:build !linux

package local

import (
	"net"
	"os"
)

// bindUnix binds and then sets the mode: outside Linux there is no portable
// way to create the file with the right mode, so the socket's directory
// (0750) is what keeps others out during the moment between the two.
func bindUnix(path string, mode os.FileMode) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, err
	}
	return ln, nil
}

// peerCaller is "" where SO_PEERCRED is not available.
func peerCaller(c *net.UnixConn) string { return "" }

// watchHangup does nothing here: without POLLHUP's Linux meaning a hang-up
// is seen only when a streamed chunk fails to write.
func watchHangup(c *net.UnixConn, hangup func()) (stop func()) { return func() {} }
