package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/local"
)

// These tests run the real hedge binary as a separate process, as a user
// or systemd would.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// TestMain removes the binary hedgeBinary built: tens of megabytes a run
// that would otherwise pile up in the temp directory.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// hedgeBinary builds cmd/hedge once per test run, with the cgo flags the
// test process was started with (make test sources scripts/cgo-env.sh).
func hedgeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hedge-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "hedge")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a running hedge.
type proc struct {
	cmd    *exec.Cmd
	socket string
	state  string
	logs   *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig writes a config for a hedge under test: its own state dir and
// socket, no HTTP or MQTT listeners on fixed ports, plus extra YAML.
func testConfig(t *testing.T, state, socket, extra string) string {
	t.Helper()
	body := fmt.Sprintf("version: 1\ndevice: e2e\nstate_dir: %s\nsocket: %s\nhttp:\n  enabled: false\nmqtt:\n  enabled: false\nslm:\n  runtime_library: %s\n  threads: 1\n%s",
		state, socket, ortLibrary(t), extra)
	path := filepath.Join(state, "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// launch starts `hedge run --config cfg` with env added to the test's
// environment (and no systemd NOTIFY_SOCKET). At cleanup the process is
// killed and reaped, and its logs shown when the test failed. Whoever takes
// the exit status from p.done puts it back for the cleanup.
func launch(t *testing.T, cfg string, env ...string) *proc {
	t.Helper()
	p := &proc{logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(hedgeBinary(t), "run", "--config", cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.Env = append(append(os.Environ(), "NOTIFY_SOCKET="), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		p.done <- <-p.done
		if t.Failed() {
			t.Logf("hedge logs:\n%s", p.logs.String())
		}
	})
	return p
}

// tempState makes a state dir for a hedge under test, removed at cleanup.
// It is under /tmp, not t.TempDir(): a socket path in it must stay within
// the 107 bytes a Unix socket path may have.
func tempState(t *testing.T, prefix string) string {
	t.Helper()
	state, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	return state
}

// tinyModel is the path of the tiny real GGUF model the LLM tests load,
// kept beside the repository.
func tinyModel(t *testing.T) string {
	t.Helper()
	model, err := filepath.Abs("../../../shared/models/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return model
}

// alive fails the test when hedge has exited.
func (p *proc) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("hedge exited: %v", err)
	default:
	}
}

// waitExit waits for hedge to exit, after a SIGTERM, and fails the test
// unless it exits 0 within d.
func (p *proc) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("hedge exited with %v after SIGTERM", err)
		}
	case <-time.After(d):
		t.Fatalf("hedge did not exit within %s of SIGTERM", d)
	}
}

// startHedge starts `hedge run` and waits until its socket answers.
func startHedge(t *testing.T, extra string) *proc {
	t.Helper()
	state := tempState(t, "he2e")
	socket := filepath.Join(state, "h.sock")
	p := launch(t, testConfig(t, state, socket, extra))
	p.state, p.socket = state, socket
	p.waitListening(t)
	return p
}

// waitListening waits until hedge answers on p.socket, and fails the test
// when it exits first or does not listen in time.
func (p *proc) waitListening(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a first start trains the intent model
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", p.socket); err == nil {
			c.Close()
			return
		}
		p.alive(t)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("hedge did not listen on %s\n%s", p.socket, p.logs.String())
}

func (p *proc) ask(t *testing.T, q agent.Query) agent.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := local.Ask(ctx, p.socket, q, nil)
	if err != nil {
		t.Fatalf("ask %q: %v", q.Text, err)
	}
	return a
}

func TestE2EAskOverSocket(t *testing.T) {
	p := startHedge(t, "")
	hello := p.ask(t, agent.Query{ID: "h1", Text: "hello"})
	if hello.Error != nil || hello.Tier != agent.TierSLM || hello.Intent != "greeting" || hello.Answer == "" || hello.ID != "h1" {
		t.Fatalf("hello = %+v, want an slm answer", hello)
	}
	again := p.ask(t, agent.Query{ID: "h2", Text: "Hello!"})
	if again.Tier != agent.TierCache || again.Answer != hello.Answer {
		t.Fatalf("second hello = %+v, want the cached answer", again)
	}
	other := p.ask(t, agent.Query{ID: "o1", Text: "explain quantum entanglement to me"})
	if other.Tier == agent.TierSLM {
		t.Fatalf("unrelated question answered by the slm: %+v", other)
	}
	if other.Error == nil || other.Error.Code != agent.CodeNoTier || !strings.Contains(other.Error.Message, "llm.model") {
		t.Fatalf("unrelated question = %+v, want a no_tier error naming what is missing", other)
	}
	// The CLI: --json prints the reply, an error reply exits non-zero.
	out, err := exec.Command(hedgeBinary(t), "ask", "--socket", p.socket, "--json", "explain quantum entanglement").Output()
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("hedge ask on an error reply: err %v, want a non-zero exit", err)
	}
	var reply agent.Answer
	if jerr := json.Unmarshal(out, &reply); jerr != nil || reply.Error == nil {
		t.Fatalf("hedge ask --json printed %q (%v)", out, jerr)
	}
	// Query text never reaches the logs at info level.
	if strings.Contains(p.logs.String(), "quantum") {
		t.Fatalf("query text in the logs:\n%s", p.logs.String())
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

func TestE2ESecondRunOnSameStateDirFailsFast(t *testing.T) {
	p := startHedge(t, "")
	other := filepath.Join(p.state, "other.sock")
	cfg := testConfig(t, p.state, other, "")
	start := time.Now()
	out, err := exec.Command(hedgeBinary(t), "run", "--config", cfg).CombinedOutput()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("second hedge on the same state dir started:\n%s", out)
	}
	// The store's lock wait is 1s; the bound leaves room for starting a
	// process on a loaded machine. What it proves is that the second hedge
	// gives up rather than waits for the first to exit (it never does).
	if took > 5*time.Second {
		t.Fatalf("second hedge took %s to fail, want < 5s", took)
	}
	if !strings.Contains(string(out), "in use by another hedge") {
		t.Fatalf("second hedge's message does not say why:\n%s", out)
	}
	// The first one still answers.
	if a := p.ask(t, agent.Query{Text: "hello"}); a.Error != nil {
		t.Fatalf("first hedge broken after the second failed: %+v", a)
	}
}

func TestE2ESocketInUseIsRefused(t *testing.T) {
	p := startHedge(t, "")
	state := t.TempDir()
	cfg := testConfig(t, state, p.socket, "")
	out, err := exec.Command(hedgeBinary(t), "run", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("a second hedge on a live socket: err %v\n%s", err, out)
	}
	if _, err := os.Stat(p.socket); err != nil {
		t.Fatalf("the live socket file was removed: %v", err)
	}
}

// TestE2ESIGTERMDrains sends SIGTERM while 50 clients wait for answers from
// a slow tier: every client gets its answer or a shutting_down error, none
// is left without a reply, and hedge exits 0.
func TestE2ESIGTERMDrains(t *testing.T) {
	model := tinyModel(t)
	// Long answers from the real tiny model keep the requests in flight; a
	// short grace makes hedge cancel the ones still running.
	p := startHedge(t, fmt.Sprintf("llm:\n  model: %s\n  max_tokens: 100000\n  context_size: 4096\n  queue_size: 64\nlimits:\n  shutdown_grace: 20ms\n  max_tokens: 100000\ncache:\n  enabled: false\n", model))
	const n = 50
	type result struct {
		a   agent.Answer
		err error
	}
	results := make(chan result, n)
	var started sync.WaitGroup
	for i := 0; i < n; i++ {
		started.Add(1)
		go func() {
			c, err := net.Dial("unix", p.socket)
			if err != nil {
				started.Done()
				results <- result{err: err}
				return
			}
			defer c.Close()
			fmt.Fprintf(c, `{"id":"r%d","text":"Lily and her dog went to the park","prefer":"local","max_tokens":4000}`+"\n", i)
			started.Done()
			line, err := bufio.NewReader(c).ReadBytes('\n')
			var a agent.Answer
			if err == nil {
				err = json.Unmarshal(line, &a)
			}
			results <- result{a, err}
		}()
	}
	started.Wait()
	// SIGTERM at once: some requests are being handled, others may still
	// be unread in the socket; each must get a reply all the same.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("a client got no reply: %v", r.err)
		case r.a.Error == nil:
			counts["answered"]++
		case r.a.Error.Code == agent.CodeShuttingDown || r.a.Error.Code == agent.CodeBusy:
			counts[string(r.a.Error.Code)]++
		default:
			t.Errorf("unexpected reply %+v", r.a)
		}
	}
	t.Logf("replies after SIGTERM: %v", counts)
	if counts[string(agent.CodeShuttingDown)] == 0 {
		t.Errorf("no request was in flight at SIGTERM: %v", counts)
	}
	p.waitExit(t, 20*time.Second)
}

func TestE2EConfigCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\ndevcie: x\nlimits:\n  request_timeout: soon\n"), 0o600)
	out, err := exec.Command(hedgeBinary(t), "config", "check", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("config check passed a bad file:\n%s", out)
	}
	for _, want := range []string{`line 2: unknown key "devcie"`, `line 4: limits.request_timeout: "soon"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("version: 1\n"), 0o600)
	out, err = exec.Command(hedgeBinary(t), "config", "check", good).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("config check of a good file: %v %q", err, out)
	}
}

// The printed defaults are a valid config file: a starting point that
// `hedge config check` accepts as it is.
func TestConfigDefaultsRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if code := configDefaults(&b); code != 0 {
		t.Fatalf("configDefaults exited %d", code)
	}
	path := filepath.Join(t.TempDir(), "defaults.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := configCheck(path, &out); code != 0 {
		t.Fatalf("config check of the defaults: %s", out.String())
	}
	if !strings.Contains(b.String(), "max_query_bytes: 16384") {
		t.Fatalf("defaults lack limits.max_query_bytes:\n%s", b.String())
	}
}
