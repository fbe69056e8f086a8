// Package mqtttest runs a real mosquitto broker for tests: its own
// instance on a free loopback port with its own config file in a temp dir,
// never the system one. Debian's mosquitto is installed through
// scripts/apt-ensure.sh when it is missing.
package mqtttest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Config is the broker's setup.
type Config struct {
	// Persistence keeps sessions and queued messages across Restart.
	Persistence bool
	// Users maps user names to passwords; when set, anonymous clients are
	// refused.
	Users map[string]string
	// ACL is the content of an acl_file (mosquitto's syntax); "" means
	// none (every user may do anything).
	ACL string
	// TLS, when set, makes the listener speak TLS only.
	TLS *Certs
	// RequireCert asks TLS clients for a certificate signed by the CA.
	RequireCert bool
	// MaxInflight is mosquitto's max_inflight_messages (0: its default 20).
	MaxInflight int
	// Extra lines are appended to the config.
	Extra string
}

// Mosquitto is a running broker.
type Mosquitto struct {
	t    testing.TB
	Dir  string
	Port int
	// Addr is 127.0.0.1:port; URL is tcp:// or ssl:// Addr.
	Addr string
	URL  string
	conf string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *lockedBuffer
}

// lockedBuffer collects the broker's output; the exec goroutine writes
// while a test may read.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Ensure installs Debian's mosquitto and mosquitto-clients when missing.
func Ensure(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err == nil {
		if _, err := exec.LookPath("mosquitto_passwd"); err == nil {
			return
		}
	}
	script := filepath.Join(repoRoot(), "scripts", "apt-ensure.sh")
	out, err := exec.Command("bash", script, "mosquitto", "mosquitto-clients").CombinedOutput()
	if err != nil {
		t.Fatalf("install mosquitto: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("mosquitto"); err != nil {
		// Debian puts the broker in /usr/sbin, which a test's PATH may lack.
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Fatalf("mosquitto not found after install: %v", err)
		}
	}
}

func mosquittoBin() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	return "/usr/sbin/mosquitto"
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	// agent/transport/mqtt/mqtttest/mosquitto.go → repo root
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "..", ".."))
}

// Start writes the config into a temp dir, starts mosquitto on a free
// loopback port and waits until it accepts connections. The broker is
// stopped when the test ends.
func Start(t testing.TB, c Config) *Mosquitto {
	t.Helper()
	Ensure(t)
	dir := t.TempDir()
	port := FreePort(t)
	m := &Mosquitto{t: t, Dir: dir, Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	m.URL = "tcp://" + m.Addr
	if c.TLS != nil {
		m.URL = "ssl://" + m.Addr
	}
	m.conf = filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(m.config(c)), 0o600); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(m.Stop)
	return m
}

func (m *Mosquitto) config(c Config) string {
	var b strings.Builder
	u, err := user.Current()
	name := "root"
	if err == nil {
		name = u.Username
	}
	// As root mosquitto drops to the user "mosquitto", which could not read
	// the temp dir; stay the test's user.
	fmt.Fprintf(&b, "user %s\n", name)
	fmt.Fprintf(&b, "listener %d 127.0.0.1\n", m.Port)
	b.WriteString("set_tcp_nodelay true\n")
	b.WriteString("max_queued_messages 100000\n")
	if c.MaxInflight > 0 {
		fmt.Fprintf(&b, "max_inflight_messages %d\n", c.MaxInflight)
	}
	if c.TLS != nil {
		fmt.Fprintf(&b, "cafile %s\ncertfile %s\nkeyfile %s\n", c.TLS.CA, c.TLS.ServerCert, c.TLS.ServerKey)
		fmt.Fprintf(&b, "require_certificate %t\n", c.RequireCert)
	}
	if len(c.Users) > 0 {
		pw := filepath.Join(m.Dir, "passwd")
		if err := os.WriteFile(pw, nil, 0o600); err != nil {
			m.t.Fatal(err)
		}
		for u, p := range c.Users {
			out, err := exec.Command("mosquitto_passwd", "-b", pw, u, p).CombinedOutput()
			if err != nil {
				m.t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
			}
		}
		b.WriteString("allow_anonymous false\n")
		fmt.Fprintf(&b, "password_file %s\n", pw)
	} else {
		b.WriteString("allow_anonymous true\n")
	}
	if c.ACL != "" {
		acl := filepath.Join(m.Dir, "acl")
		if err := os.WriteFile(acl, []byte(c.ACL), 0o600); err != nil {
			m.t.Fatal(err)
		}
		fmt.Fprintf(&b, "acl_file %s\n", acl)
	}
	if c.Persistence {
		b.WriteString("persistence true\n")
		fmt.Fprintf(&b, "persistence_location %s/\n", m.Dir)
		b.WriteString("autosave_interval 1\n")
	} else {
		b.WriteString("persistence false\n")
	}
	b.WriteString("log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n")
	b.WriteString(c.Extra)
	b.WriteString("\n")
	return b.String()
}

func (m *Mosquitto) start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = &lockedBuffer{}
	cmd := exec.Command(mosquittoBin(), "-c", m.conf)
	cmd.Stdout = m.log
	cmd.Stderr = m.log
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			m.cmd, m.exited = cmd, exited
			return
		}
		select {
		case <-exited:
			m.t.Fatalf("mosquitto exited at start\n%s", m.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			m.t.Fatalf("mosquitto not accepting on %s after 10s\n%s", m.Addr, m.log.String())
		}
	}
}

// Stop ends the broker gracefully (SIGTERM: a persistent broker writes its
// database) and waits for it to exit. Stopping twice is fine.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Kill ends the broker at once (SIGKILL), as a crash would.
func (m *Mosquitto) Kill() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart stops the broker and starts it again on the same port with the
// same config.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	m.start()
}

// Log returns what the broker printed since its last start.
func (m *Mosquitto) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.log == nil {
		return ""
	}
	return m.log.String()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
