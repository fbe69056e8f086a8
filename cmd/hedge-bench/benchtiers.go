package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/hedge-edge/hedge/agent"
)

// tiersMode says how `hedge-bench tiers` loads hedge; the report quotes it.
const tiersMode = "closed loop: one client on one open socket connection, one request at a time, " +
	"the kinds of query shuffled in every round so that each tier sees the same machine"

// tierKind is one kind of query the tiers benchmark sends: the tier it is
// meant to reach and how it gets there. Where it actually lands is read
// from each reply's tier field.
type tierKind struct {
	name   string
	prefer agent.Prefer
	text   func(i int) string
}

// The texts of each kind. Cache texts are asked once before the run (an
// SLM answer, then cached); SLM texts belong to volatile intents (time,
// date), which are never cached; LLM and cloud texts are unique (the count
// in them), so none of them is ever a cache hit.
var (
	tiersCacheTexts = []string{"hello", "thank you", "goodbye", "what can you do"}
	tiersSLMTexts   = []string{"what time is it", "what's the date today", "tell me the time", "what day is it today"}
	tiersNouns      = []string{"a red fox", "an old lighthouse", "a paper boat", "a sleepy dragon", "a brave little robot"}
)

func tierKinds() []tierKind {
	return []tierKind{
		{"cache", agent.PreferAuto, func(i int) string { return tiersCacheTexts[i%len(tiersCacheTexts)] }},
		{"slm", agent.PreferAuto, func(i int) string { return tiersSLMTexts[i%len(tiersSLMTexts)] }},
		{"llm", agent.PreferLocal, func(i int) string {
			return fmt.Sprintf("tell me a short story about %s, number %d", tiersNouns[i%len(tiersNouns)], i)
		}},
		{"cloud", agent.PreferCloud, func(i int) string {
			return fmt.Sprintf("explain in two sentences how %s would cross the sea, question %d", tiersNouns[i%len(tiersNouns)], i)
		}},
	}
}

// tierStats is the end-to-end latency of one tier (or of the direct call
// to the loopback cloud), in milliseconds from writing the request line to
// reading the reply line.
type tierStats struct {
	Tier string  `json:"tier"`
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
	// HedgeP50 is the median of the latency_ms hedge puts in its replies
	// (its own time for the query, without the socket).
	HedgeP50 float64   `json:"hedge_p50_ms,omitempty"`
	Samples  []float64 `json:"samples_ms"`
	hedgeMS  []float64
}

// tiersResult is one `hedge-bench tiers` run.
type tiersResult struct {
	Mode         string      `json:"mode"`
	PerTier      int         `json:"samples_per_tier"`
	Warmup       int         `json:"warmup_per_kind"`
	LLMModel     string      `json:"llm_model"`
	LLMMaxTokens int         `json:"llm_max_tokens"`
	LLMThreads   int         `json:"llm_threads"`
	Tiers        []tierStats `json:"tiers"`
	// Direct is the peer of the cloud tier: the same loopback server asked
	// directly over HTTP, without hedge.
	Direct tierStats `json:"cloud_direct"`
	// Routing counts, per kind of query, the tiers that answered it
	// ("error:CODE" for error replies).
	Routing map[string]map[string]int `json:"routing"`
	Seconds float64                   `json:"seconds"`
}

func benchTiers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tiers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hedgeBin := fs.String("hedge", besideSelf("hedge"), "hedge binary to start (`hedge run`)")
	model := fs.String("llm-model", "", "GGUF file for the local LLM tier (required)")
	maxTokens := fs.Int("llm-max-tokens", 8, "most tokens the local LLM generates per answer (llm.max_tokens and each query's max_tokens)")
	// One thread by default: a tiny model's matrices are too small for a
	// second thread to pay for the barrier at every step, and on a shared
	// machine a descheduled thread stalls the other for a whole time slice.
	threads := fs.Int("llm-threads", 1, "llama.cpp threads (0: hedge's default, one per core)")
	samples := fs.Int("samples", 500, "answers to time per tier")
	warmup := fs.Int("warmup", 20, "queries of each kind sent first and not timed")
	modelDir := fs.String("slm-model-dir", "", "where hedge keeps its trained intent model (default: the run's temporary state dir, so it trains at start)")
	lib := fs.String("runtime-library", os.Getenv("HEDGE_SLM_RUNTIME_LIBRARY"), "ONNX Runtime shared library for hedge's intent model")
	startTimeout := fs.Duration("start-timeout", 5*time.Minute, "how long hedge may take to open its socket (a first start trains the intent model)")
	jsonOut := fs.String("json", "", "write the results (with every sample) as JSON to this file")
	mdOut := fs.String("out", "", "write the Markdown tables to this file")
	plotOut := fs.String("plot", "", "write a PNG of one latency histogram per tier to this file")
	logOut := fs.String("log", "", "write hedge's log to this file (default: discarded unless hedge fails)")
	from := fs.String("from-json", "", "measure nothing: print the tables (and --plot) of a --json file of an earlier run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "hedge-bench tiers: %v\n", err)
		return 1
	}
	var res tiersResult
	if *from != "" {
		b, err := os.ReadFile(*from)
		if err == nil {
			err = json.Unmarshal(b, &res)
		}
		if err != nil {
			return fail(fmt.Errorf("--from-json: %w", err))
		}
	} else {
		if *model == "" || fs.NArg() > 0 {
			fmt.Fprintln(stderr, "usage: hedge-bench tiers --llm-model FILE.gguf [--samples N] [--json FILE] [--out FILE.md] [--plot FILE.png]")
			return 2
		}
		if *samples < 1 || *warmup < 0 || *maxTokens < 1 || *threads < 0 {
			fmt.Fprintln(stderr, "hedge-bench tiers: --samples and --llm-max-tokens must be at least 1, --warmup and --llm-threads at least 0")
			return 2
		}
		abs, err := filepath.Abs(*model)
		if err != nil {
			return fail(err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fail(fmt.Errorf("--llm-model: %w", err))
		}
		tc := tiersConfig{hedge: *hedgeBin, model: abs, maxTokens: *maxTokens, threads: *threads, samples: *samples, warmup: *warmup,
			modelDir: *modelDir, lib: *lib, startTimeout: *startTimeout, log: *logOut}
		res, err = runTiers(ctx, tc, stderr)
		if err != nil {
			return fail(err)
		}
	}
	table := tiersTable(res)
	fmt.Fprint(stdout, table)
	if *mdOut != "" {
		if err := os.WriteFile(*mdOut, []byte(table), 0o644); err != nil {
			return fail(err)
		}
	}
	if *jsonOut != "" && *from == "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fail(err)
		}
	}
	if *plotOut != "" {
		if err := tiersPlot(res, *plotOut); err != nil {
			return fail(fmt.Errorf("plot: %w", err))
		}
	}
	return 0
}

// tiersConfig is one `hedge-bench tiers` run.
type tiersConfig struct {
	hedge, model, modelDir, lib, log string
	maxTokens, threads               int
	samples, warmup                  int
	startTimeout                     time.Duration
}

// runTiers starts the loopback cloud and `hedge run` with every tier on,
// then asks until every tier has answered tc.samples timed queries.
func runTiers(ctx context.Context, tc tiersConfig, stderr io.Writer) (tiersResult, error) {
	res := tiersResult{Mode: tiersMode, PerTier: tc.samples, Warmup: tc.warmup, LLMModel: filepath.Base(tc.model), LLMMaxTokens: tc.maxTokens, LLMThreads: tc.threads}
	cloud, err := startLoopbackCloud()
	if err != nil {
		return res, err
	}
	defer cloud.Close()

	// A short path: a socket path is limited to 108 bytes.
	dir, err := os.MkdirTemp("/tmp", "htiers")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "h.sock")
	cfg := fmt.Sprintf(`version: 1
device: bench
state_dir: %[1]s/state
socket: %[2]s
log:
  level: warn
http:
  enabled: false
mqtt:
  enabled: false
slm:
  runtime_library: %[3]q
  model_dir: %[4]q
llm:
  model: %[5]q
  max_tokens: %[6]d
  threads: %[8]d
cloud:
  base_url: %[7]s/v1
  model: bench
`, dir, socket, tc.lib, tc.modelDir, tc.model, tc.maxTokens, cloud.url, tc.threads)
	cfgPath := filepath.Join(dir, "hedge.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return res, err
	}
	h, err := startTiersHedge(tc, cfgPath, dir)
	if err != nil {
		return res, err
	}
	defer h.stop()
	fmt.Fprintf(stderr, "bench tiers: waiting for hedge's socket (a first start trains the intent model)…\n")
	conn, err := h.dial(ctx, socket, tc.startTimeout)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	c := &tiersClient{c: conn, r: bufio.NewReaderSize(conn, 64<<10)}

	// Prime the cache texts: their first answer comes from the SLM and is
	// cached, every later one is a cache hit.
	for _, text := range tiersCacheTexts {
		if _, a, err := c.ask(agent.Query{ID: "prime", Text: text}); err != nil {
			return res, err
		} else if a.Error != nil {
			return res, fmt.Errorf("priming %q: hedge answered %s: %s", text, a.Error.Code, a.Error.Message)
		}
	}

	kinds := tierKinds()
	kindOf := map[string]tierKind{}
	// Each tier's samples by name, and under "direct" those of the cloud's
	// peer, the loopback server asked without hedge.
	stats := map[string]*tierStats{"direct": {Tier: "cloud, direct HTTP"}}
	for _, k := range kinds {
		stats[k.name] = &tierStats{Tier: k.name}
		kindOf[k.name] = k
	}
	res.Routing = map[string]map[string]int{}
	sent := map[string]int{}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	lastNote := start
	for round := 0; ; round++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		timed := round >= tc.warmup
		order := []string{"direct"}
		for _, k := range kinds {
			order = append(order, k.name)
		}
		order = slices.DeleteFunc(order, func(n string) bool { return timed && len(stats[n].Samples) >= tc.samples })
		if len(order) == 0 {
			break
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, name := range order {
			if name == "direct" {
				// The cloud kind's text, so that both carry the same request.
				ms, err := cloud.direct(ctx, kindOf["cloud"].text(round))
				if err != nil {
					return res, err
				}
				if timed {
					stats[name].Samples = append(stats[name].Samples, ms)
				}
				continue
			}
			k := kindOf[name]
			i := sent[name]
			sent[name]++
			ms, a, err := c.ask(agent.Query{ID: fmt.Sprintf("%s-%d", name, i), Text: k.text(i), Prefer: k.prefer, MaxTokens: tc.maxTokens})
			if err != nil {
				return res, err
			}
			if !timed {
				continue
			}
			landed := string(a.Tier)
			if a.Error != nil {
				landed = "error:" + string(a.Error.Code)
			}
			if res.Routing[name] == nil {
				res.Routing[name] = map[string]int{}
			}
			res.Routing[name][landed]++
			if t, ok := stats[landed]; ok && a.Error == nil {
				t.Samples = append(t.Samples, ms)
				t.hedgeMS = append(t.hedgeMS, a.LatencyMS)
			}
			// A kind that keeps landing elsewhere would never fill its
			// tier: stop and say where it went.
			if off := sent[name] - tc.warmup - res.Routing[name][name]; off > tc.samples/2+10 {
				return res, fmt.Errorf("queries meant for the %s tier keep landing elsewhere: %v", name, res.Routing[name])
			}
		}
		if time.Since(lastNote) > 10*time.Second {
			lastNote = time.Now()
			fmt.Fprintf(stderr, "bench tiers: %s answers so far: cache %d, slm %d, llm %d, cloud %d, direct %d\n",
				time.Since(start).Round(time.Second), len(stats["cache"].Samples), len(stats["slm"].Samples),
				len(stats["llm"].Samples), len(stats["cloud"].Samples), len(stats["direct"].Samples))
		}
	}
	res.Seconds = time.Since(start).Seconds()
	for _, k := range kinds {
		res.Tiers = append(res.Tiers, summarize(*stats[k.name]))
	}
	res.Direct = summarize(*stats["direct"])
	return res, nil
}

// summarize fills the quantiles of s from its samples.
func summarize(s tierStats) tierStats {
	s.N = len(s.Samples)
	if s.N == 0 {
		return s
	}
	sorted := slices.Sorted(slices.Values(s.Samples))
	s.P50, s.P90, s.P99 = quantile(sorted, 0.50), quantile(sorted, 0.90), quantile(sorted, 0.99)
	s.Max = sorted[len(sorted)-1]
	sum := 0.0
	for _, v := range sorted {
		sum += v
	}
	s.Mean = sum / float64(s.N)
	if len(s.hedgeMS) > 0 {
		s.HedgeP50 = quantile(slices.Sorted(slices.Values(s.hedgeMS)), 0.50)
	}
	return s
}

// tiersClient asks over one open socket connection.
type tiersClient struct {
	c net.Conn
	r *bufio.Reader
}

// ask sends q and returns the time to its reply line, in milliseconds.
func (c *tiersClient) ask(q agent.Query) (float64, agent.Answer, error) {
	line, err := json.Marshal(q)
	if err != nil {
		return 0, agent.Answer{}, err
	}
	line = append(line, '\n')
	c.c.SetDeadline(time.Now().Add(2 * time.Minute))
	t0 := time.Now()
	if _, err := c.c.Write(line); err != nil {
		return 0, agent.Answer{}, fmt.Errorf("send query: %w", err)
	}
	reply, err := c.r.ReadBytes('\n')
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	if err != nil {
		return 0, agent.Answer{}, fmt.Errorf("read reply: %w", err)
	}
	var a agent.Answer
	if err := json.Unmarshal(reply, &a); err != nil {
		return 0, agent.Answer{}, fmt.Errorf("read reply: %w", err)
	}
	return ms, a, nil
}

// tiersHedge is the `hedge run` under test.
type tiersHedge struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	file *os.File
	done chan error
}

// startTiersHedge starts `hedge run --config cfg`. The environment loses every
// HEDGE_ variable, so that only the config file speaks; the API key is one
// the loopback cloud ignores.
func startTiersHedge(tc tiersConfig, cfg, dir string) (*tiersHedge, error) {
	h := &tiersHedge{logs: &bytes.Buffer{}, done: make(chan error, 1)}
	h.cmd = exec.Command(tc.hedge, "run", "--config", cfg)
	h.cmd.Dir = dir
	var w io.Writer = h.logs
	if tc.log != "" {
		f, err := os.Create(tc.log)
		if err != nil {
			return nil, err
		}
		h.file, w = f, io.MultiWriter(h.logs, f)
	}
	h.cmd.Stdout, h.cmd.Stderr = w, w
	env := slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, "HEDGE_") || strings.HasPrefix(e, "NOTIFY_SOCKET=")
	})
	h.cmd.Env = append(env, "HEDGE_CLOUD_API_KEY=bench-loopback")
	if err := h.cmd.Start(); err != nil {
		if h.file != nil {
			h.file.Close()
		}
		return nil, fmt.Errorf("start %s: %w", tc.hedge, err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	return h, nil
}

// dial waits until hedge accepts on its socket.
func (h *tiersHedge) dial(ctx context.Context, socket string, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("unix", socket)
		if err == nil {
			return c, nil
		}
		select {
		case err := <-h.done:
			h.done <- err
			return nil, fmt.Errorf("hedge exited before opening its socket (%v); its log:\n%s", err, h.logs.String())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			// Its log is read once it has exited: until then hedge writes
			// to it. The exit status goes back for stop.
			_ = h.cmd.Process.Kill()
			err := <-h.done
			h.done <- err
			return nil, fmt.Errorf("hedge did not open %s within %s; its log:\n%s", socket, timeout, h.logs.String())
		}
	}
}

// stop ends hedge with SIGTERM (SIGKILL after 15 s) and reaps it.
func (h *tiersHedge) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	if h.file != nil {
		h.file.Close()
	}
}

// loopbackCloud is the cloud of the tiers benchmark: an HTTP server on
// loopback speaking OpenAI's chat completions wire format, answering at
// once, so that the cloud tier's figure is hedge's own cost.
type loopbackCloud struct {
	srv    *http.Server
	url    string
	client *http.Client
}

func startLoopbackCloud() (*loopbackCloud, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loopback cloud: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"bench","object":"model","owned_by":"bench"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-bench","object":"chat.completion","created":%d,"model":"bench",`+
			`"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"It would build a raft, wait for a calm morning and follow the stars."}}],`+
			`"usage":{"prompt_tokens":40,"completion_tokens":16,"total_tokens":56}}`, time.Now().Unix())
	})
	c := &loopbackCloud{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, url: "http://" + ln.Addr().String(),
		client: &http.Client{Timeout: 30 * time.Second}}
	go c.srv.Serve(ln)
	return c, nil
}

func (c *loopbackCloud) Close() { c.srv.Close() }

// direct asks the loopback cloud text over HTTP without hedge, with a
// request like the bridge's, and returns the round trip in milliseconds.
func (c *loopbackCloud) direct(ctx context.Context, text string) (float64, error) {
	body, _ := json.Marshal(map[string]any{"model": "bench", "max_tokens": 256, "messages": []map[string]string{
		{"role": "system", "content": "You answer briefly. Keep placeholders such as [PERSON_1] exactly as written."},
		{"role": "user", "content": text},
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer bench-loopback")
	t0 := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("loopback cloud: %w", err)
	}
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	if err != nil || len(out.Choices) == 0 {
		return 0, fmt.Errorf("loopback cloud: bad answer (%v)", err)
	}
	return ms, nil
}

// tiersTable renders a run as Markdown: latency per tier, then where each
// kind of query landed.
func tiersTable(r tiersResult) string {
	var b strings.Builder
	b.WriteString("| tier | answers | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | mean (ms) | hedge's own p50 (ms) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range append(slices.Clone(r.Tiers), r.Direct) {
		own := "—"
		if s.HedgeP50 > 0 {
			own = fmt.Sprintf("%.3f", s.HedgeP50)
		}
		fmt.Fprintf(&b, "| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %s |\n", s.Tier, s.N, s.P50, s.P90, s.P99, s.Max, s.Mean, own)
	}
	b.WriteString("\n| queries meant for | answered by |\n|---|---|\n")
	for _, k := range tierKinds() {
		var parts []string
		for tier, n := range r.Routing[k.name] {
			parts = append(parts, fmt.Sprintf("%s %d", tier, n))
		}
		slices.Sort(parts)
		fmt.Fprintf(&b, "| %s | %s |\n", k.name, strings.Join(parts, ", "))
	}
	return b.String()
}

// tiersPlot draws one latency histogram per tier, on a shared log-scaled
// x axis with logarithmic bins, p50 and p99 marked. The cloud panel also
// outlines the direct HTTP calls to the same loopback server.
func tiersPlot(r tiersResult, file string) error {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range append(slices.Clone(r.Tiers), r.Direct) {
		for _, v := range s.Samples {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		return errors.New("no samples to plot")
	}
	lo, hi = lo/1.2, hi*1.2
	const nBins = 60
	edges := make([]float64, nBins+1)
	for i := range edges {
		edges[i] = lo * math.Pow(hi/lo, float64(i)/nBins)
	}
	var plots []*plot.Plot
	for i, s := range r.Tiers {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: %d answers, p50 %s, p99 %s", s.Tier, s.N, fmtMS(s.P50), fmtMS(s.P99))
		p.X.Label.Text = "end-to-end latency (ms, log scale)"
		p.Y.Label.Text = "answers"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.X.Min, p.X.Max = lo, hi
		h := logHistogram(s.Samples, edges)
		h.FillColor = plotutil.Color(i)
		h.LineStyle.Width = 0
		p.Add(h)
		p.Legend.Add(s.Tier+" via hedge", h)
		top := 0.0
		for _, bin := range h.Bins {
			top = max(top, bin.Weight)
		}
		if s.Tier == "cloud" && r.Direct.N > 0 {
			d := logHistogram(r.Direct.Samples, edges)
			// Empty bins would draw a line along the whole axis.
			d.Bins = slices.DeleteFunc(d.Bins, func(b plotter.HistogramBin) bool { return b.Weight == 0 })
			d.FillColor = nil
			d.LineStyle.Color = plotutil.Color(5)
			d.LineStyle.Width = vg.Points(1)
			p.Add(d)
			p.Legend.Add("same server asked directly", d)
			for _, bin := range d.Bins {
				top = max(top, bin.Weight)
			}
		}
		for _, q := range []struct {
			name string
			v    float64
			dash []vg.Length
		}{{"p50", s.P50, nil}, {"p99", s.P99, []vg.Length{vg.Points(3), vg.Points(2)}}} {
			if q.v <= 0 {
				continue
			}
			l, err := plotter.NewLine(plotter.XYs{{X: q.v, Y: 0}, {X: q.v, Y: top * 1.05}})
			if err != nil {
				return err
			}
			l.Dashes = q.dash
			p.Add(l)
			p.Legend.Add(q.name, l)
		}
		p.Y.Min, p.Y.Max = 0, top*1.3
		p.Legend.Top = true
		plots = append(plots, p)
	}
	const cols = 2
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	img := vgimg.New(12*vg.Inch, vg.Length(rows)*4*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[i/cols][i%cols])
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logHistogram counts vs into the bins between consecutive edges.
func logHistogram(vs []float64, edges []float64) *plotter.Histogram {
	bins := make([]plotter.HistogramBin, len(edges)-1)
	for i := range bins {
		bins[i] = plotter.HistogramBin{Min: edges[i], Max: edges[i+1]}
	}
	for _, v := range vs {
		i, _ := slices.BinarySearch(edges, v)
		i = max(0, min(i-1, len(bins)-1))
		bins[i].Weight++
	}
	return &plotter.Histogram{Bins: bins, LineStyle: plotter.DefaultLineStyle}
}
