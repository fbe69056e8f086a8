package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/platform"
)

// The edge targets (issue 18): what a Raspberry Pi 4 with 1 GB affords.
// MB is 10⁶ bytes.
const (
	edgeIdleRSSTarget   = 45e6
	edgeColdStartTarget = 300.0 // ms, median
	edgeTrainRSSTarget  = 200e6
)

// edgeResult is one `hedge-bench edge` run; scripts/bench-edge.sh writes it
// as edge.json and the report's edge section reads it.
type edgeResult struct {
	Hedge      string `json:"hedge"`
	HedgeBytes int64  `json:"hedge_bytes"`
	BenchBytes int64  `json:"hedge_bench_bytes"`
	// BeforeBytes is the size of cmd/hedge as built at BeforeRef, the
	// last commit whose hedge still linked the benchmark tooling (0 when
	// the run had no such build).
	BeforeBytes int64  `json:"before_bytes,omitempty"`
	BeforeRef   string `json:"before_ref,omitempty"`
	// Env is the environment variables hedge ran with that change its
	// memory (GOGC, GOMEMLIMIT, GODEBUG), as given.
	Env map[string]string `json:"env,omitempty"`

	// TrainPeakRSS is `hedge train`'s peak resident set (the kernel's
	// ru_maxrss of the child, VmHWM), on the starter intents.
	TrainPeakRSS int64   `json:"train_peak_rss_bytes"`
	TrainSeconds float64 `json:"train_seconds"`

	// ColdStartMS is each timed start: exec to the READY=1 datagram on
	// NOTIFY_SOCKET, the intent model already on disk.
	ColdStartMS       []float64 `json:"cold_start_ms"`
	ColdStartMedianMS float64   `json:"cold_start_median_ms"`

	// ReadyRSS is VmRSS right after READY=1; IdleRSS after Requests
	// requests (half over MQTT, half over HTTP) and SettleSeconds of idle;
	// IdleHWM is VmHWM then.
	ReadyRSS int64 `json:"ready_rss_bytes"`
	IdleRSS  int64 `json:"idle_rss_bytes"`
	IdleHWM  int64 `json:"idle_hwm_bytes"`
	// IdleAnon and IdleFile split IdleRSS: anonymous memory (heaps,
	// arenas, stacks) and file pages (the binary's and the libraries'
	// code and read-only data, clean: the kernel can drop them under
	// pressure and read them again).
	IdleAnon      int64   `json:"idle_rss_anon_bytes"`
	IdleFile      int64   `json:"idle_rss_file_bytes"`
	Requests      int     `json:"requests"`
	SettleSeconds float64 `json:"settle_seconds"`
}

func benchEdge(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hedgeBin := fs.String("hedge", besideSelf("hedge"), "hedge binary to measure")
	broker := fs.String("broker", "", "MQTT broker hedge connects to, a real one (scripts/bench-edge.sh starts mosquitto) (required)")
	lib := fs.String("runtime-library", os.Getenv("HEDGE_SLM_RUNTIME_LIBRARY"), "ONNX Runtime shared library for hedge's intent model")
	starts := fs.Int("starts", 7, "timed cold starts (the median is reported)")
	requests := fs.Int("requests", 100, "requests before the idle RSS is read, half over MQTT, half over HTTP")
	settle := fs.Duration("settle", 2*time.Second, "idle time after the last request before the RSS is read")
	jsonOut := fs.String("json", "", "write the result as JSON to this file")
	before := fs.String("before", "", "hedge binary built at --before-ref, for the size before the tooling moved out")
	beforeRef := fs.String("before-ref", "", "the commit --before was built from")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *broker == "" || fs.NArg() > 0 || *starts < 1 || *requests < 2 {
		fmt.Fprintln(stderr, "usage: hedge-bench edge --broker tcp://127.0.0.1:PORT [--hedge bin/hedge] [--starts N ≥ 1] [--requests N ≥ 2] [--json FILE]")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "hedge-bench edge: %v\n", err)
		return 1
	}
	r, err := runEdge(ctx, edgeConfig{hedge: *hedgeBin, broker: *broker, lib: *lib, starts: *starts, requests: *requests, settle: *settle}, stderr)
	if err != nil {
		return fail(err)
	}
	if *before != "" {
		st, err := os.Stat(*before)
		if err != nil {
			return fail(fmt.Errorf("--before: %w", err))
		}
		r.BeforeBytes, r.BeforeRef = st.Size(), *beforeRef
	}
	fmt.Fprint(stdout, edgeTable(r))
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fail(err)
		}
	}
	return 0
}

type edgeConfig struct {
	hedge, broker, lib string
	starts, requests   int
	settle             time.Duration
}

func runEdge(ctx context.Context, ec edgeConfig, stderr io.Writer) (edgeResult, error) {
	r := edgeResult{Hedge: ec.hedge, Requests: ec.requests, SettleSeconds: ec.settle.Seconds(), Env: map[string]string{}}
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			r.Env[k] = v
		}
	}
	// hedge runs in its temporary directory: a relative path would not
	// resolve there.
	abs, err := filepath.Abs(ec.hedge)
	if err != nil {
		return r, err
	}
	ec.hedge, r.Hedge = abs, ec.hedge
	st, err := os.Stat(ec.hedge)
	if err != nil {
		return r, fmt.Errorf("--hedge: %w", err)
	}
	r.HedgeBytes = st.Size()
	if self, err := os.Executable(); err == nil {
		if st, err := os.Stat(self); err == nil {
			r.BenchBytes = st.Size()
		}
	}
	// A short path: a socket path is limited to 108 bytes.
	dir, err := os.MkdirTemp("/tmp", "hedge")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)

	// Training's peak: hedge train on the starter intents, as hedge run's
	// first start does.
	fmt.Fprintln(stderr, "bench edge: hedge train (starter intents)")
	train := exec.CommandContext(ctx, ec.hedge, "train", "--intents", "starter", "--out", filepath.Join(dir, "trained"))
	train.Env = edgeEnv(ec.lib, "")
	var trainOut bytes.Buffer
	train.Stdout, train.Stderr = &trainOut, &trainOut
	t0 := time.Now()
	if err := train.Run(); err != nil {
		return r, fmt.Errorf("hedge train: %v\n%s", err, trainOut.String())
	}
	r.TrainSeconds = time.Since(t0).Seconds()
	if ru, ok := train.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.TrainPeakRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}

	httpPort, err := freePort()
	if err != nil {
		return r, err
	}
	cfg := fmt.Sprintf(`version: 1
device: edge
state_dir: %[1]s/state
socket: %[1]s/h.sock
log:
  level: warn
http:
  enabled: true
  listen: 127.0.0.1:%[2]d
mqtt:
  broker: %[3]s
slm:
  runtime_library: %[4]q
`, dir, httpPort, ec.broker, ec.lib)
	cfgPath := filepath.Join(dir, "hedge.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return r, err
	}
	// The first start trains the intent model into the state directory;
	// it is not timed. Every later start finds it on disk.
	fmt.Fprintln(stderr, "bench edge: a first hedge run (trains the intent model; not timed)")
	h, _, err := startEdgeHedge(ctx, ec, cfgPath, dir, 5*time.Minute)
	if err != nil {
		return r, err
	}
	h.stop()
	for i := range ec.starts {
		h, ms, err := startEdgeHedge(ctx, ec, cfgPath, dir, time.Minute)
		if err != nil {
			return r, fmt.Errorf("start %d: %w", i+1, err)
		}
		r.ColdStartMS = append(r.ColdStartMS, ms)
		if i < ec.starts-1 {
			h.stop()
			continue
		}
		// The last start stays up for the idle figure.
		err = func() error {
			defer h.stop()
			if r.ReadyRSS, err = platform.ProcStatusBytes(h.cmd.Process.Pid, "VmRSS"); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "bench edge: %d requests over MQTT and HTTP\n", ec.requests)
			if err := edgeRequests(ctx, ec, httpPort); err != nil {
				return err
			}
			select {
			case <-time.After(ec.settle):
			case <-ctx.Done():
				return ctx.Err()
			}
			if r.IdleRSS, err = platform.ProcStatusBytes(h.cmd.Process.Pid, "VmRSS"); err != nil {
				return err
			}
			if r.IdleAnon, err = platform.ProcStatusBytes(h.cmd.Process.Pid, "RssAnon"); err != nil {
				return err
			}
			if r.IdleFile, err = platform.ProcStatusBytes(h.cmd.Process.Pid, "RssFile"); err != nil {
				return err
			}
			r.IdleHWM, err = platform.ProcStatusBytes(h.cmd.Process.Pid, "VmHWM")
			return err
		}()
		if err != nil {
			return r, err
		}
	}
	r.ColdStartMedianMS = median(r.ColdStartMS)
	return r, nil
}

// edgeEnv is hedge's environment: no HEDGE_ variable but the runtime
// library, so that only the config file speaks, and no inherited
// NOTIFY_SOCKET.
func edgeEnv(lib, notify string) []string {
	env := slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, "HEDGE_") || strings.HasPrefix(e, "NOTIFY_SOCKET=")
	})
	if lib != "" {
		env = append(env, "HEDGE_SLM_RUNTIME_LIBRARY="+lib)
	}
	if notify != "" {
		env = append(env, "NOTIFY_SOCKET="+notify)
	}
	return env
}

// edgeHedge is a `hedge run` under measurement.
type edgeHedge struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan error
}

// startEdgeHedge starts `hedge run --config cfg` with NOTIFY_SOCKET on a
// datagram socket of its own and returns once hedge sends READY=1, with
// the milliseconds from exec to that datagram.
func startEdgeHedge(ctx context.Context, ec edgeConfig, cfg, dir string, timeout time.Duration) (*edgeHedge, float64, error) {
	sock := filepath.Join(dir, "notify.sock")
	os.Remove(sock)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return nil, 0, fmt.Errorf("notify socket: %w", err)
	}
	defer conn.Close()
	h := &edgeHedge{logs: &bytes.Buffer{}, done: make(chan error, 1)}
	h.cmd = exec.Command(ec.hedge, "run", "--config", cfg)
	h.cmd.Dir = dir
	h.cmd.Env = edgeEnv(ec.lib, sock)
	h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
	t0 := time.Now()
	if err := h.cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", ec.hedge, err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	ready := make(chan float64, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
				ready <- float64(time.Since(t0).Nanoseconds()) / 1e6
				return
			}
		}
	}()
	select {
	case ms := <-ready:
		return h, ms, nil
	case err := <-h.done:
		return nil, 0, fmt.Errorf("hedge exited before READY=1 (%v); its log:\n%s", err, h.logs.String())
	case <-time.After(timeout):
		h.cmd.Process.Kill()
		<-h.done
		return nil, 0, fmt.Errorf("no READY=1 from hedge within %s; its log:\n%s", timeout, h.logs.String())
	case <-ctx.Done():
		h.cmd.Process.Kill()
		<-h.done
		return nil, 0, ctx.Err()
	}
}

// stop ends hedge with SIGTERM (SIGKILL after 15 s) and reaps it.
func (h *edgeHedge) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

// edgeTexts are what the idle figure's requests ask: cache hits and
// volatile intents, classified every time.
var edgeTexts = []string{"hello", "what time is it", "thank you", "what's the date today"}

// edgeRequests asks n requests one at a time, alternating MQTT and HTTP,
// and fails on any error reply.
func edgeRequests(ctx context.Context, ec edgeConfig, httpPort int) error {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(ec.broker).SetClientID(fmt.Sprintf("hedge-bench-edge-%d", os.Getpid())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect to %s: %v", ec.broker, tok.Error())
	}
	defer c.Disconnect(100)
	replies := make(chan []byte, 1)
	if tok := c.Subscribe("bench/edge/reply/#", 1, func(_ paho.Client, m paho.Message) { replies <- m.Payload() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	// READY=1 does not wait for the broker (hedge serves the socket and
	// HTTP while MQTT reconnects): wait for its retained online status, as
	// a device would, before asking over MQTT.
	online := make(chan struct{})
	var once sync.Once
	if tok := c.Subscribe("hedge/edge/status", 1, func(_ paho.Client, m paho.Message) {
		if bytes.Contains(m.Payload(), []byte("online")) {
			once.Do(func() { close(online) })
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	select {
	case <-online:
	case <-time.After(30 * time.Second):
		return errors.New("hedge did not say online over MQTT within 30 s")
	case <-ctx.Done():
		return ctx.Err()
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/chat/completions", httpPort)
	for i := range ec.requests {
		text := edgeTexts[i%len(edgeTexts)]
		if i%2 == 0 {
			id := "e" + strconv.Itoa(i)
			q, _ := json.Marshal(map[string]string{"id": id, "text": text, "reply_to": "bench/edge/reply/" + id})
			c.Publish("hedge/edge/query", 1, false, q)
			select {
			case b := <-replies:
				var a agent.Answer
				if err := json.Unmarshal(b, &a); err != nil || a.Error != nil {
					return fmt.Errorf("mqtt request %d: %s", i, b)
				}
			case <-time.After(30 * time.Second):
				return fmt.Errorf("mqtt request %d: no reply in 30 s", i)
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		body, _ := json.Marshal(map[string]any{"model": "hedge-auto", "messages": []map[string]string{{"role": "user", "content": text}}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("http request %d: %w", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("http request %d: %s: %s", i, resp.Status, b)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// edgeFigure is one row of the edge table: the figure, its value and its
// target ("" for none).
type edgeFigure struct {
	name, value, target string
	met                 bool
}

func edgeFigures(r edgeResult) []edgeFigure {
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	starts := make([]string, len(r.ColdStartMS))
	for i, ms := range r.ColdStartMS {
		starts[i] = fmt.Sprintf("%.0f", ms)
	}
	size := fmt.Sprintf("%s (%s bytes)", mb(r.HedgeBytes), thousands(float64(r.HedgeBytes)))
	if r.BeforeBytes > 0 {
		size += fmt.Sprintf("; before the benchmark tooling moved out (cmd/hedge at %s, built in this run): %s, %.2f× that", r.BeforeRef, mb(r.BeforeBytes), float64(r.HedgeBytes)/float64(r.BeforeBytes))
	}
	return []edgeFigure{
		{name: "bin/hedge size (the edge binary)", value: size},
		{name: "bin/hedge-bench size (benchmark tooling, for contrast)", value: fmt.Sprintf("%s (%s bytes)", mb(r.BenchBytes), thousands(float64(r.BenchBytes)))},
		{name: fmt.Sprintf("idle RSS of hedge run after %d requests (VmRSS)", r.Requests), value: mb(r.IdleRSS),
			target: "≤ " + mb(edgeIdleRSSTarget), met: r.IdleRSS > 0 && r.IdleRSS <= edgeIdleRSSTarget},
		{name: "cold start to READY=1, model on disk (median)", value: fmt.Sprintf("%.0f ms (of %d starts: %s ms)", r.ColdStartMedianMS, len(r.ColdStartMS), strings.Join(starts, ", ")),
			target: fmt.Sprintf("≤ %.0f ms", edgeColdStartTarget), met: len(r.ColdStartMS) > 0 && r.ColdStartMedianMS <= edgeColdStartTarget},
		{name: "peak RSS of hedge train, starter intents (ru_maxrss)", value: fmt.Sprintf("%s (%.1f s)", mb(r.TrainPeakRSS), r.TrainSeconds),
			target: "≤ " + mb(edgeTrainRSSTarget), met: r.TrainPeakRSS > 0 && r.TrainPeakRSS <= edgeTrainRSSTarget},
	}
}

// edgeTable is the edge figures as a Markdown table.
func edgeTable(r edgeResult) string {
	var b strings.Builder
	b.WriteString("| figure | value | target | |\n|---|---:|---:|---|\n")
	for _, f := range edgeFigures(r) {
		t, v := "—", "—"
		if f.target != "" {
			t, v = f.target, "missed"
			if f.met {
				v = "met"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.name, f.value, t, v)
	}
	fmt.Fprintf(&b, "\nIdle RSS: %.1f MB anonymous (heaps, arenas, stacks) + %.1f MB file pages (code and read-only data of hedge and its libraries, ONNX Runtime's among them). "+
		"RSS right after READY=1: %.1f MB; VmHWM after the requests: %.1f MB.\n",
		float64(r.IdleAnon)/1e6, float64(r.IdleFile)/1e6, float64(r.ReadyRSS)/1e6, float64(r.IdleHWM)/1e6)
	return b.String()
}

// The edge figures: hedge-bench edge.

func renderEdgeSection(rc *reportCtx) (string, error) {
	var r edgeResult
	if err := rc.readJSON("edge.json", &r); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("`scripts/bench-edge.sh` builds nothing: it measures the `bin/hedge` that `make build` made (`go build -trimpath`,\n" +
		"nothing stripped) with `hedge-bench edge`. Peak RSS of `hedge train` on the starter intents is the kernel's `ru_maxrss` of the\n" +
		"child. Cold start is exec to the `READY=1` datagram on a `NOTIFY_SOCKET` of hedge-bench's own, with the trained intent model\n" +
		"already in the state directory (a first start trains it and is not timed); `hedge run` has the SLM loaded, MQTT to a real\n" +
		"mosquitto on loopback and HTTP on loopback on. Idle RSS is `VmRSS` from `/proc/PID/status` of the last start, after its\n" +
		fmt.Sprintf("%d requests one at a time (half over MQTT, half over HTTP; cache hits and volatile intents) and %.0f s of idle. MB is 10⁶ bytes.\n", r.Requests, r.SettleSeconds))
	if len(r.Env) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(r.Env)) {
			kv = append(kv, fmt.Sprintf("`%s=%s`", k, r.Env[k]))
		}
		fmt.Fprintf(&b, "hedge ran with %s.\n", strings.Join(kv, ", "))
	}
	b.WriteString("\n" + edgeTable(r))
	for _, f := range edgeFigures(r) {
		if f.target == "" && !strings.HasPrefix(f.name, "bin/hedge size") {
			continue
		}
		rc.head(headline{Figure: "edge: " + f.name, Value: f.value, Target: f.target, Met: f.met})
	}
	return b.String(), nil
}
