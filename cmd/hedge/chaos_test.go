//go:build chaos

// The chaos suite: `make test-chaos` (scripts/chaos.sh). It needs root (it
// mounts a tmpfs for the state dir and sets the system clock) and a machine
// of its own while it runs (the clock jump is felt by every process), so it
// is kept out of `go test ./...` by its build tag.

package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

// chaosKnobs are the suite's sizes, from the environment so that CI can run a
// shorter pass than `make test-chaos`.
type chaosKnobs struct {
	phase time.Duration // steady load per phase
	rate  int           // requests per second per transport
	kills int           // SIGKILL and restart cycles
	jump  time.Duration // how far the clock jumps
}

func knobs(t *testing.T) chaosKnobs {
	k := chaosKnobs{phase: 8 * time.Second, rate: 10, kills: 3, jump: 3 * time.Hour}
	if v := os.Getenv("CHAOS_PHASE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CHAOS_PHASE: %v", err)
		}
		k.phase = d
	}
	for name, p := range map[string]*int{"CHAOS_RATE": &k.rate, "CHAOS_KILLS": &k.kills} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s: want a positive integer, got %q", name, v)
			}
			*p = n
		}
	}
	return k
}

// TestChaos runs hedge under a steady mixed load over MQTT (a real
// mosquitto) and the socket, and injects one fault per phase: a broker
// restart, a black-holed cloud, SIGKILLs with escalations queued, a full
// state filesystem and clock jumps. After each phase every request must
// have a reply or a clear error, any repeat of a reply (delivery is at least
// once) byte-identical to the first, and hedge's bbolt file must check
// clean; at the end every queued escalation must have been delivered, any
// repeat of its late answer byte-identical to the first, and the outbox
// must be empty.
func TestChaos(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the chaos suite needs root: it mounts a tmpfs for the state dir and sets the clock")
	}
	k := knobs(t)
	bbolt := bboltCLI(t)
	broker := mqtttest.Start(t, mqtttest.Config{Persistence: true})
	cloud := newChaosCloud(t)
	state := mountTmpfs(t, "96m")

	model := tinyModel(t)
	httpPort := mqtttest.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	body := fmt.Sprintf(`version: 1
device: chaos
state_dir: %[1]s
socket: %[1]s/h.sock
http:
  listen: 127.0.0.1:%[6]d
limits:
  request_timeout: 20s
mqtt:
  broker: %[2]s
  reconnect_max: 1s
slm:
  runtime_library: %[3]s
  threads: 1
llm:
  model: %[4]s
  threads: 1
  max_tokens: 8
  queue_size: 64
cloud:
  base_url: %[5]s/v1
  model: gpt-test
  timeout: 2s
  connect_timeout: 1s
  breaker:
    failures: 1
    backoff_min: 100ms
    backoff_max: 1s
  outbox:
    max_attempts: 1000
`, state, broker.URL, ortLibrary(t), model, cloud.URL(), httpPort)
	if lvl := os.Getenv("CHAOS_LOG_LEVEL"); lvl != "" {
		body += "log:\n  level: " + lvl + "\n"
	}
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	led := newLedger()
	h := &chaosHedge{t: t, cfg: cfg, state: state, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort), env: []string{"HEDGE_CLOUD_API_KEY=sk-chaos-0123456789abcdef"}}
	h.start()
	dev := newDevice(t, broker.URL, led)
	dev.waitForHedge(h)
	load := &loadGen{led: led, socket: filepath.Join(state, "h.sock"), dev: dev, rate: k.rate}

	// Each phase runs the load for k.phase with its fault in the middle,
	// then waits until every request of the phase is settled and checks
	// the ledger and the bbolt file.
	only := os.Getenv("CHAOS_ONLY")
	phase := func(name string, fault func()) {
		t.Helper()
		if only != "" && !strings.Contains(","+only+",", ","+name+",") {
			return
		}
		t.Logf("phase %s: %s of load at %d q/s per transport", name, k.phase, k.rate)
		stop := load.run(name)
		time.Sleep(k.phase / 3)
		fault()
		time.Sleep(k.phase / 3)
		stop()
		led.waitSettled(name, 90*time.Second)
		h.stop()
		h.check(bbolt)
		// Escalations owed to devices and not delivered yet are still in
		// the outbox (it may hold more: socket callers' escalations).
		held := h.outboxEntries()
		if owed := led.summary("").lateMissing; held < owed {
			t.Errorf("phase %s: the outbox holds %d entries, but %d queued escalations are not delivered yet", name, held, owed)
		}
		led.noteOutbox(name, held)
		h.start()
		// Late answers may still be owed here; they are checked at the end.
		if s := led.summary(name); s.lost > 0 || s.conflicting > 0 || s.lateConflicting > 0 {
			t.Errorf("phase %s: %d lost, %d with a reply unlike their first, %d with a late answer unlike their first",
				name, s.lost, s.conflicting, s.lateConflicting)
		}
	}

	phase("baseline", func() {})
	phase("broker-restart", func() { broker.Restart() })
	phase("cloud-blackhole", func() {
		cloud.blackhole(true)
		time.Sleep(k.phase / 3)
		cloud.blackhole(false)
	})
	phase("sigkill", func() {
		cloud.refuse(true)
		for i := 0; i < k.kills; i++ {
			time.Sleep(k.phase / time.Duration(3*k.kills))
			h.kill()
			h.check(bbolt)
			h.start()
		}
		cloud.refuse(false)
	})
	phase("disk-full", func() {
		// With the cloud away too, escalations cannot be stored: a reply
		// may only say queued when the outbox really holds it.
		free := fillFilesystem(t, state)
		cloud.refuse(true)
		time.Sleep(k.phase / 3)
		free()
		cloud.refuse(false)
	})
	phase("clock-jump", func() {
		// Escalations queue while the cloud refuses; with the clock hours
		// ahead the link looks up again but every delivery attempt fails, so
		// they are put off on the jumped clock; then the clock goes back
		// (past the true time, then to it) and the cloud answers. They must
		// go out at once, not hours later, and nothing else may stall.
		clock := newClockJumper(t)
		cloud.refuse(true)
		time.Sleep(k.phase / 4)
		clock.jump(k.jump)
		cloud.failChats(true)
		cloud.refuse(false)
		time.Sleep(k.phase / 4)
		clock.jump(-2 * k.jump)
		time.Sleep(k.phase / 4)
		clock.restore()
		cloud.failChats(false)
	})

	// Every escalation queued in any phase reaches its device, and the
	// outbox drains (socket callers' escalations go to the cache).
	led.waitLate(2 * time.Minute)
	h.waitOutboxDrained(2 * time.Minute)
	h.stop()
	h.keepLogs()
	h.check(bbolt)
	if n := h.outboxEntries(); n != 0 {
		t.Errorf("the outbox holds %d entries after the run", n)
	}

	total := led.summary("")
	report := led.report()
	fmt.Print(report)
	if err := os.WriteFile(filepath.Join(chaosDir(), "summary.txt"), []byte(report), 0o644); err != nil {
		t.Error(err)
	}
	if why := total.failed(); why != "" {
		t.Errorf("chaos: %s", why)
	}
	if only == "" && (total.answered == 0 || total.queued == 0) {
		t.Errorf("chaos: the load did not exercise the tiers (answered %d, queued %d)", total.answered, total.queued)
	}
}

// chaosHedge starts, stops and kills one hedge over the same state dir.
type chaosHedge struct {
	t       *testing.T
	cfg     string
	state   string
	env     []string
	metrics string
	p       *proc
	runs    int
}

func (h *chaosHedge) start() {
	h.t.Helper()
	h.keepLogs()
	h.p = launch(h.t, h.cfg, h.env...)
	h.p.state, h.p.socket = h.state, filepath.Join(h.state, "h.sock")
	h.p.waitListening(h.t)
}

// keepLogs writes the logs of the hedge that just ended to bin/chaos/, for
// reading after the run (they hold no query text at info level).
func (h *chaosHedge) keepLogs() {
	if h.p == nil {
		return
	}
	h.runs++
	os.WriteFile(filepath.Join(chaosDir(), fmt.Sprintf("hedge-%02d.log", h.runs)), []byte(h.p.logs.String()), 0o644)
}

// chaosDir is where the suite leaves its summary and hedge's logs.
func chaosDir() string {
	dir := filepath.Join("..", "..", "bin", "chaos")
	os.MkdirAll(dir, 0o755)
	return dir
}

// stop sends SIGTERM and waits for a clean exit.
func (h *chaosHedge) stop() {
	h.t.Helper()
	h.p.cmd.Process.Signal(syscall.SIGTERM)
	h.p.waitExit(h.t, 30*time.Second)
}

func (h *chaosHedge) kill() {
	h.t.Helper()
	h.p.cmd.Process.Kill()
	h.p.done <- <-h.p.done
}

// check runs `bbolt check` on the state file of a stopped hedge.
func (h *chaosHedge) check(bbolt string) {
	h.t.Helper()
	out, err := exec.Command(bbolt, "check", filepath.Join(h.state, store.FileName)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		h.t.Fatalf("bbolt check: %v\n%s", err, out)
	}
}

// outboxEntries opens the store of a stopped hedge and counts the
// escalations in its outbox.
func (h *chaosHedge) outboxEntries() int {
	h.t.Helper()
	st, err := store.Open(h.state, store.Options{})
	if err != nil {
		h.t.Fatalf("open the store of the stopped hedge: %v", err)
	}
	defer st.Close()
	n, _, err := st.OutboxStats(h.t.Context())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// waitOutboxDrained polls hedge's metrics until the outbox is empty.
func (h *chaosHedge) waitOutboxDrained(timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		depth, err := gauge(h.metrics, "hedge_outbox_depth")
		if err == nil && depth == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Errorf("the outbox did not drain within %s: depth %v, %v", timeout, depth, err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// gauge reads one unlabelled gauge from a Prometheus text page.
func gauge(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	mf, ok := mfs[name]
	if !ok || len(mf.GetMetric()) != 1 {
		return 0, fmt.Errorf("%s: no single %s", url, name)
	}
	return mf.GetMetric()[0].GetGauge().GetValue(), nil
}

// bboltCLI finds bbolt's command (go.etcd.io/bbolt/cmd/bbolt), installing
// the version go.mod requires when it is missing.
func bboltCLI(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("bbolt"); err == nil {
		return p
	}
	gobin, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(strings.TrimSpace(string(gobin)), "bin", "bbolt")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "go.etcd.io/bbolt").Output()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("go", "install", "go.etcd.io/bbolt/cmd/bbolt@"+strings.TrimSpace(string(out))).CombinedOutput(); err != nil {
		t.Fatalf("install bbolt's command: %v\n%s", err, b)
	}
	return p
}

// mountTmpfs mounts a tmpfs of the given size as the state dir, so the
// suite can fill it.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := tempState(t, "hchaos")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0750", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v\n%s", err, out)
	}
	// Cleanups run last first: unmounted before tempState removes the dir.
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fillFilesystem writes a file until the filesystem under dir is full and
// returns the function that frees it again.
func fillFilesystem(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for _, size := range []int{1 << 20, 4096, 1} {
		for {
			if _, err := f.Write(chunk[:size]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill the state filesystem: %v", err)
				}
				break
			}
		}
	}
	f.Close()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		t.Logf("state filesystem full: %d bytes free", st.Bavail*uint64(st.Bsize))
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Error(err)
		}
	}
}

// clockJumper sets the system clock and puts it back where it would have
// been, measured on the monotonic clock. A failing test restores it too.
type clockJumper struct {
	t      *testing.T
	wall   time.Time // wall clock at the start, with its monotonic reading
	offset time.Duration
	once   sync.Once
}

func newClockJumper(t *testing.T) *clockJumper {
	c := &clockJumper{t: t, wall: time.Now()}
	t.Cleanup(c.restore)
	return c
}

func (c *clockJumper) set(at time.Time) error {
	ts := unix.NsecToTimespec(at.UnixNano())
	return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
}

func (c *clockJumper) jump(d time.Duration) {
	c.t.Helper()
	c.offset += d
	// time.Since uses the monotonic reading: the true time elapsed.
	if err := c.set(c.wall.Add(time.Since(c.wall) + c.offset)); err != nil {
		c.t.Fatalf("set the clock: %v", err)
	}
	c.t.Logf("clock jumped %s (now %s off)", d, c.offset)
}

func (c *clockJumper) restore() {
	c.once.Do(func() {
		if err := c.set(c.wall.Add(time.Since(c.wall))); err != nil {
			c.t.Errorf("restore the clock: %v", err)
		}
	})
}
