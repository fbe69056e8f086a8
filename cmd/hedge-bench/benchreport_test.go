package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/models/llm"
	"github.com/hedge-edge/hedge/models/slm/evaluate"
)

// testdata/bench/go.json and cloud.json are real `go test -json -bench`
// output of scripts/bench.sh: some result lines arrive whole, others split
// over two output events (name first, figures when the run ends).

func TestParseGoTestJSON(t *testing.T) {
	f, err := os.Open("testdata/bench/go.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bs, failed, err := parseGoTestJSON(f)
	if err != nil || len(failed) > 0 {
		t.Fatalf("parse: %v, failed %v", err, failed)
	}
	want := map[string]float64{
		"BenchmarkCacheGet":                    4085,
		"BenchmarkCachePut":                    338917,
		"BenchmarkPutReplyParallel/one-by-one": -1, // split over two events
		"BenchmarkEnqueue":                     -1,
		"BenchmarkAsk":                         58015,
	}
	for name, ns := range want {
		b, ok := findBench(bs, name)
		if !ok {
			t.Errorf("%s missing from %d results", name, len(bs))
			continue
		}
		if b.Pkg == "" || b.Metrics["ns/op"] <= 0 || b.Metrics["allocs/op"] <= 0 {
			t.Errorf("%s = %+v, want a package and ns/op, allocs/op", name, b)
		}
		if ns > 0 && b.Metrics["ns/op"] != ns {
			t.Errorf("%s ns/op = %v, want %v", name, b.Metrics["ns/op"], ns)
		}
	}
	// 8 of scripts/bench.sh's run, and 4 of BenchmarkPutReplies appended
	// from a later go test -json -bench run of agent/store.
	if len(bs) != 12 {
		t.Errorf("got %d benchmarks, want 12: %+v", len(bs), bs)
	}
}

func TestParseGoTestJSONMediansAndFailures(t *testing.T) {
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	out := func(pkg, s string) {
		enc.Encode(map[string]string{"Action": "output", "Package": pkg, "Output": s})
	}
	// Three lines of one benchmark (-count 3), a custom unit, and a package
	// whose run failed.
	for _, ns := range []string{"300", "100", "200"} {
		out("p/a", "BenchmarkX/sub-case-2   \t")
		out("p/a", "  10\t  "+ns+" ns/op\t 7.5 ratio\n")
	}
	out("p/b", "BenchmarkY-2 \t 5\t 1 ns/op\n")
	enc.Encode(map[string]string{"Action": "fail", "Package": "p/b"})
	enc.Encode(map[string]string{"Action": "fail", "Package": "p/a", "Test": "BenchmarkZ"})

	bs, failed, err := parseGoTestJSON(&in)
	if err != nil {
		t.Fatal(err)
	}
	x, ok := findBench(bs, "BenchmarkX/sub-case")
	if !ok || x.Lines != 3 || x.Metrics["ns/op"] != 200 || x.Metrics["ratio"] != 7.5 {
		t.Fatalf("BenchmarkX/sub-case = %+v (found %v), want 3 lines, median 200 ns/op, ratio 7.5", x, ok)
	}
	if x.Procs != 2 {
		t.Errorf("BenchmarkX/sub-case ran with GOMAXPROCS %d, want the name's -2", x.Procs)
	}
	if len(failed) != 1 || failed[0] != "p/b" {
		t.Fatalf("failed = %v, want [p/b] (a failed test is not a failed package)", failed)
	}
	if _, err := readGoBenches(&reportCtx{dir: t.TempDir()}, "go.json"); err == nil {
		t.Fatal("a missing file read without error")
	}
}

func TestParseCPUModel(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\nprocessor\t: 1\nmodel name\t: AMD EPYC 9B14\n", "AMD EPYC 9B14"},
		{"processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\n\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n", "BCM2835"},
		{"processor\t: 0\nModel\t: Raspberry Pi 5 Model B Rev 1.0\n", "Raspberry Pi 5 Model B Rev 1.0"},
		{"", ""},
	} {
		if got := parseCPUModel(c.in); got != c.want {
			t.Errorf("parseCPUModel(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestReplaceBlock(t *testing.T) {
	doc := "# x\n\n" + readmeBegin + "\nold rows\n" + readmeEnd + "\nafter\n"
	got, err := replaceBlock(doc, "new rows\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "# x\n\n" + readmeBegin + "\nnew rows\n" + readmeEnd + "\nafter\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"no marks", readmeEnd + " then " + readmeBegin, readmeBegin + " only"} {
		if _, err := replaceBlock(bad, "x"); err == nil {
			t.Errorf("replaceBlock(%q) succeeded", bad)
		}
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{fmtNs(826), "826 ns"}, {fmtNs(4086), "4.09 µs"}, {fmtNs(338917), "339 µs"}, {fmtNs(2.5e7), "25.0 ms"},
		{fmtNs(4.1e9), "4.10 s"}, {fmtMS(0.12), "120 µs"}, {sig3(0), "0"}, {sig3(1532.4), "1532"},
		{thousands(10778.4), "10,778"}, {thousands(999), "999"}, {thousands(1234567), "1,234,567"}, {pct(0.9213), "92.1 %"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// writeJSON marshals v into dir/name.
func writeJSON(t *testing.T, dir, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// benchFixture fills dir with one run's results: every section but mqtt
// ran, cloud failed, and the figures are chosen so that some targets are
// met and others missed.
func benchFixture(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"go.json", "cloud.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/bench", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	writeJSON(t, dir, "slm.json", evalJSON{
		Hedge: evaluate.Report{Encoder: "compact", ModelBytes: 9_510_000, P50us: 62, P99us: 90, Threads: 1,
			Target:        evaluate.Row{Name: "val OOS recall ≥ 0.75", InScopeAccuracy: 0.9213, OOSRecall: 0.754, Coverage: 0.83},
			Larson:        evaluate.Row{Name: "Larson", Threshold: 0.88, InScopeAccuracy: 0.807, OOSRecall: 0.959},
			Unthresholded: evaluate.Row{Name: "none", InScopeAccuracy: 0.9213, OOSRecall: 0.754}},
		Baseline: []evaluate.Row{{Name: "fastText: val OOS recall ≥ 0.75", Threshold: 0.36, InScopeAccuracy: 0.866, OOSRecall: 0.726}},
		// 84 times hedge's model.
		BaselineBytes: 798_840_000,
	})
	writeJSON(t, dir, "slm-fasttext.json", map[string]map[string]float64{
		"fasttext": {"n": 5500, "p50_us": 40, "p99_us": 70}, "pipe_floor": {"n": 5500, "p50_us": 9, "p99_us": 20}})
	writeJSON(t, dir, "llm-bench.json", []llm.BenchMedian{
		{Model: "m.gguf", Impl: "hedge", Threads: 2, PromptTokens: 95, GenTokens: 32, PromptTPS: 100, GenTPS: 50, PeakRSSMB: 200, Runs: 3},
		{Model: "m.gguf", Impl: "c", Threads: 2, PromptTokens: 95, GenTokens: 32, PromptTPS: 101, GenTPS: 50, PeakRSSMB: 190, Runs: 3},
		{Model: "m.gguf", Impl: "node-llama-cpp", Threads: 2, PromptTokens: 95, GenTokens: 32, PromptTPS: 200, GenTPS: 25, PeakRSSMB: 300, Runs: 3},
	})
	writeJSON(t, dir, "tiers.json", tiersResult{Mode: tiersMode, PerTier: 3, Warmup: 1, LLMModel: "stories260K.gguf", LLMMaxTokens: 8, LLMThreads: 1,
		Tiers: []tierStats{
			summarize(tierStats{Tier: "cache", Samples: []float64{0.1, 0.2, 0.3}}),
			summarize(tierStats{Tier: "slm", Samples: []float64{0.5, 0.6, 0.7}}),
			summarize(tierStats{Tier: "llm", Samples: []float64{20, 30, 40}}),
			summarize(tierStats{Tier: "cloud", Samples: []float64{1, 2, 3}}),
		},
		Direct:  summarize(tierStats{Tier: "cloud, direct HTTP", Samples: []float64{0.2, 0.25, 0.3}}),
		Routing: map[string]map[string]int{"cache": {"cache": 3}, "slm": {"slm": 3}, "llm": {"llm": 2, "slm": 1}, "cloud": {"cloud": 3}},
	})
	writeJSON(t, dir, "edge.json", edgeResult{HedgeBytes: 26_677_040, BenchBytes: 23_152_168, TrainPeakRSS: 392e6, TrainSeconds: 3.4,
		ColdStartMS: []float64{36, 38, 70, 34, 34}, ColdStartMedianMS: 36, ReadyRSS: 59e6, IdleRSS: 61.2e6, IdleHWM: 61.3e6, Requests: 100, SettleSeconds: 2})
	// mqtt.json from an earlier run: mqtt did not run in this one, so it
	// must not show.
	writeJSON(t, dir, "mqtt.json", []benchResult{{Path: "cache", Rate: 2000, Sent: 10, Replies: 10, P50: 0.1, P99: 0.2}})
	for _, png := range []string{"slm-clinc150.png", "llm-bench.png", "tiers.png", "cloud-anonymizer.png"} {
		os.WriteFile(filepath.Join(dir, png), []byte("png "+png), 0o644)
	}
	run := `{"event":"start","time":"2026-11-28T13:00:00Z","bench":"go,slm,cloud,llm,tiers,edge","commit":"abc123","dirty":true,"load":"0.10 0.20 0.30"}
{"event":"section","section":"go","start":"2026-11-28T13:00:00Z","end":"2026-11-28T13:00:40Z","seconds":40,"load_before":"0.10 0.20 0.30","load_after":"1.00 0.50 0.40","exit":0}
{"event":"section","section":"slm","start":"2026-11-28T13:00:40Z","end":"2026-11-28T13:03:00Z","seconds":140,"load_before":"1.00 0.50 0.40","load_after":"1.50 0.90 0.50","exit":0}
{"event":"section","section":"cloud","start":"2026-11-28T13:03:00Z","end":"2026-11-28T13:03:20Z","seconds":20,"load_before":"1.50 0.90 0.50","load_after":"1.40 0.90 0.50","exit":1}
{"event":"section","section":"llm","start":"2026-11-28T13:03:20Z","end":"2026-11-28T13:10:00Z","seconds":400,"load_before":"1.40 0.90 0.50","load_after":"2.00 1.50 0.80","exit":0}
{"event":"section","section":"tiers","start":"2026-11-28T13:10:00Z","end":"2026-11-28T13:11:00Z","seconds":60,"load_before":"2.00 1.50 0.80","load_after":"1.20 1.40 0.80","exit":0}
{"event":"section","section":"edge","start":"2026-11-28T13:11:00Z","end":"2026-11-28T13:11:00Z","seconds":0,"load_before":"1.20 1.40 0.80","load_after":"1.20 1.40 0.80","exit":0}
{"event":"end","time":"2026-11-28T13:11:00Z","load":"1.20 1.40 0.80"}
`
	if err := os.WriteFile(filepath.Join(dir, "run.jsonl"), []byte(run), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBenchReport(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	benchFixture(t, dir)
	images := filepath.Join(root, "docs", "bench")
	os.MkdirAll(images, 0o755)
	os.WriteFile(filepath.Join(images, "mqtt.png"), []byte("stale"), 0o644)
	readme := filepath.Join(root, "README.md")
	os.WriteFile(readme, []byte("# hedge\n\n## Benchmarks\n\n"+readmeBegin+"\nold\n"+readmeEnd+"\n\n## Development\n"), 0o644)
	out := filepath.Join(root, "BENCHMARKS.md")

	var stdout, stderr bytes.Buffer
	code := benchReport(context.Background(), []string{"--dir", dir, "--out", out, "--images", images, "--readme", readme}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, want := range []string{
		"| run | 2026-11-28 13:00:00 → 13:11:00 UTC (11m0s) |",
		"| commit | `abc123` with uncommitted changes |",
		"| load average (1, 5, 15 min) | before 0.10 0.20 0.30; after 1.20 1.40 0.80 |",
		"| not run | mqtt |",
		"| **failed** | cloud |",
		"**Failed** in this run (exit status 1 after 20s)",
		// Go: reply records' CPU, one to a commit against 64.
		"318 µs of CPU per reply at 1 to a commit, 12.4 µs at 64, **25.7× less CPU per reply**",
		"Ran 13:00:00 → 13:00:40 UTC (40s); load average 0.10 0.20 0.30 → 1.00 0.50 0.40.",
		// SLM: targets from the figures, ratios against fastText.
		"| SLM in-scope accuracy (CLINC150 test) | 92.1 % | ≥ 92.0 % | met |",
		"| SLM classification p50 (one thread) | 62.0 µs | ≤ 50 µs | **missed** |",
		"fastText's model is **84× larger**",
		"in-scope accuracy +5.5 points, out-of-scope recall +2.8 points",
		"**hedge's p50 is 1.55× fastText's** (2.00× fastText's less the pipe floor)",
		// LLM: hedge ÷ each peer and its target.
		"| m.gguf (95 prompt, 32 generated tokens) | node-llama-cpp | — | 200.0 | 25.0 | — | 300 | 0.500× / 2.000× | 3 |",
		"| LLM prompt tok/s, hedge ÷ the C program | 0.990× (m) | ≥ 0.98× | met |",
		"| LLM generation tok/s, hedge ÷ node-llama-cpp | 2.000× (m) | ≥ 1.00× | met |",
		"| LLM prompt tok/s, hedge ÷ node-llama-cpp | 0.500× (m) | ≥ 1.00× | **missed** |",
		// Tiers: the routing as measured, the cloud peer.
		"| llm | llm 2, slm 1 |",
		"**8.0×**",
		"![latency histogram per tier](docs/bench/tiers.png)",
		// Edge: each figure against its target.
		"| edge: bin/hedge size (the edge binary) | 26.7 MB (26,677,040 bytes) | — | — |",
		"| edge: idle RSS of hedge run after 100 requests (VmRSS) | 61.2 MB | ≤ 45.0 MB | **missed** |",
		"| edge: cold start to READY=1, model on disk (median) | 36 ms (of 5 starts: 36, 38, 70, 34, 34 ms) | ≤ 300 ms | met |",
		"| peak RSS of hedge train, starter intents (ru_maxrss) | 392.0 MB (3.4 s) | ≤ 200.0 MB | missed |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, absent := range []string{"MQTT cache-hit", "anonymizer latency against query length"} {
		if strings.Contains(doc, absent) {
			t.Errorf("report shows %q from a section that did not run or failed", absent)
		}
	}
	for _, png := range []string{"slm-clinc150.png", "llm-bench.png", "tiers.png"} {
		if got, err := os.ReadFile(filepath.Join(images, png)); err != nil || string(got) != "png "+png {
			t.Errorf("%s not copied: %q, %v", png, got, err)
		}
	}
	for _, gone := range []string{"mqtt.png", "cloud-anonymizer.png"} {
		if _, err := os.Stat(filepath.Join(images, gone)); err == nil {
			t.Errorf("%s left in the images folder, which the report does not link", gone)
		}
	}
	rd, _ := os.ReadFile(readme)
	r := string(rd)
	if strings.Contains(r, "\nold\n") || !strings.Contains(r, "[BENCHMARKS.md](BENCHMARKS.md)") ||
		!strings.Contains(r, "| SLM model size | 9.51 MB | ≤ 10 MB | met |") || !strings.Contains(r, "Not run in this run: mqtt.") ||
		!strings.HasSuffix(r, readmeEnd+"\n\n## Development\n") {
		t.Errorf("README block not rewritten as expected:\n%s", r)
	}
}

func TestBenchReportOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	benchFixture(t, dir)
	var stdout, stderr bytes.Buffer
	if code := benchReport(ctx, []string{"--dir", dir, "--only", "tiers,llm"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "## End-to-end latency per tier") || !strings.Contains(out, "## Local LLM") || strings.Contains(out, "## Store") {
		t.Fatalf("--only tiers,llm printed:\n%s", out)
	}
	if code := benchReport(ctx, []string{"--dir", dir, "--only", "nope"}, &stdout, &stderr); code != 2 {
		t.Fatalf("an unknown section: exit %d, want 2", code)
	}
	// A section whose results are missing is an error, not an empty table.
	os.Remove(filepath.Join(dir, "tiers.json"))
	if code := benchReport(ctx, []string{"--dir", dir, "--only", "tiers"}, &stdout, &stderr); code != 1 {
		t.Fatalf("missing tiers.json: exit %d, want 1", code)
	}
}

// TestBenchReportWithoutRunFile: results put in a folder by hand (no
// run.jsonl) are reported for what is there, without times.
func TestBenchReportWithoutRunFile(t *testing.T) {
	dir := t.TempDir()
	benchFixture(t, dir)
	os.Remove(filepath.Join(dir, "run.jsonl"))
	run, err := readRun(filepath.Join(dir, "run.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rep := buildReport(run, machineInfo{CPU: "Test CPU", Cores: 4, MemBytes: 8 << 30, Kernel: "6.1", Go: "go1.26"}, dir, "img", earlierReport{})
	for _, want := range []string{"| run | unknown time (no run.jsonl) |", "| machine | Test CPU, 4 logical CPUs, 8.0 GiB RAM |",
		"MQTT cache-hit round trip p50 at 2000 q/s", "![anonymizer latency against query length](img/cloud-anonymizer.png)"} {
		if !strings.Contains(rep.doc, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if rep.ran != 7 {
		t.Errorf("%d sections ran, want 7 (every one with results)", rep.ran)
	}
	if err := os.WriteFile(filepath.Join(dir, "run.jsonl"), []byte(`{"event":"bogus"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readRun(filepath.Join(dir, "run.jsonl")); err == nil {
		t.Fatal("an unknown event read without error")
	}
}

func TestMQTTSectionTargets(t *testing.T) {
	for _, c := range []struct {
		p50, p99 float64
		replies  int
		want     []string
	}{
		{0.38, 1.8, 100, []string{"≤ 0.5 ms | met", "≤ 3 ms | met"}},
		{0.6, 1.8, 100, []string{"≤ 0.5 ms | **missed**", "≤ 3 ms | met"}},
		// Lost replies miss the targets whatever the latency of the rest.
		{0.3, 1.0, 90, []string{"≤ 0.5 ms | **missed**", "≤ 3 ms | **missed**", "90 of 100 requests answered"}},
	} {
		dir := t.TempDir()
		writeJSON(t, dir, "mqtt.json", []benchResult{
			{Path: "echo", Rate: 2000, Sent: 100, Replies: 100, P50: 0.2, P99: 0.5},
			{Path: "cache", Rate: 2000, Sent: 100, Replies: c.replies, P50: c.p50, P99: c.p99, Tiers: "cache 100"},
		})
		rc := &reportCtx{dir: dir}
		body, err := renderMQTTSection(rc)
		if err != nil {
			t.Fatal(err)
		}
		body += rc.targetsTable()
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("p50 %v p99 %v replies %d: section lacks %q:\n%s", c.p50, c.p99, c.replies, w, body)
			}
		}
		if want := fmt.Sprintf("| cache | 2000 | %.2f× |", c.p50/0.2); !strings.Contains(body, want) {
			t.Errorf("section lacks the ratio to echo %q", want)
		}
	}
}

// TestLLMSectionWithoutNode: a peer that did not run leaves its targets
// unmeasured, said so, rather than met or missed.
func TestLLMSectionWithoutNode(t *testing.T) {
	dir := t.TempDir()
	writeJSON(t, dir, "llm-bench.json", []llm.BenchMedian{
		{Model: "a.gguf", Impl: "hedge", Threads: 2, PromptTPS: 100, GenTPS: 40, Runs: 3, Variant: "icelake", TokenBytes: 400e6, CopyGBps: 40},
		{Model: "a.gguf", Impl: "c", Threads: 2, PromptTPS: 100, GenTPS: 45, Runs: 3, Variant: "icelake", TokenBytes: 400e6, CopyGBps: 40},
		{Model: "b.gguf", Impl: "hedge", Threads: 2, PromptTPS: 50, GenTPS: 20, Runs: 3},
		{Model: "b.gguf", Impl: "c", Threads: 2, PromptTPS: 50, GenTPS: 20, Runs: 3},
	})
	rc := &reportCtx{dir: dir}
	body, err := renderLLMSection(rc)
	if err != nil {
		t.Fatal(err)
	}
	body += rc.targetsTable()
	for _, want := range []string{
		"node-llama-cpp did not run: the prompt target against it is not measured.",
		"| LLM prompt tok/s, hedge ÷ the C program | 1.000× (a), 1.000× (b) | ≥ 0.98× | met |",
		// One model below the target misses it for all.
		"| LLM generation tok/s, hedge ÷ the C program | 0.888× (a), 1.000× (b) | ≥ 0.98× | **missed** |",
		// The bandwidth bound, 40 GB/s over 400 MB: 100 tok/s.
		"| a.gguf (0 prompt, 0 generated tokens) | hedge | icelake | 100.0 | 40.0 | 40 % |",
		"so at most 100 tok/s",
		"the same CPU variant of the same llama.cpp build (icelake)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("section lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "hedge ÷ node-llama-cpp |") {
		t.Errorf("a target against node-llama-cpp was judged without it:\n%s", body)
	}
	os.WriteFile(filepath.Join(dir, "llm-bench.json"), []byte("[]"), 0o644)
	if _, err := renderLLMSection(&reportCtx{dir: dir}); err == nil {
		t.Error("an empty result list rendered without error")
	}
}

// TestMQTTSectionSLM: the slm path's targets at 2,000 q/s, the sweep's
// highest sustained rate (the first rate not sustained ends it, whatever
// follows) and the CPU breakdown.
func TestMQTTSectionSLM(t *testing.T) {
	dir := t.TempDir()
	writeJSON(t, dir, "mqtt.json", []benchResult{
		{Path: "slm", Rate: 2000, Sent: 100, Replies: 100, P50: 0.8, P99: 6.5, Achieved: 2000},
	})
	ok := func(rate int, p99 float64) benchResult {
		return benchResult{Path: "slm", Rate: rate, Sent: rate * 5, Replies: rate * 5, P50: 0.7, P99: p99, Max: 2 * p99, Achieved: float64(rate)}
	}
	lagging := ok(6000, 3)
	lagging.Achieved = 5000
	writeJSON(t, dir, "mqtt-sweep.json", []benchResult{ok(1000, 2), ok(3000, 4), ok(5000, 9), lagging, ok(7000, 400)})
	writeJSON(t, dir, "mqtt-profile.json", mqtt.CPUBreakdown{Path: "slm", Rate: 2000, Seconds: 8, Requests: 16000, CPUus: 150,
		ProcessCPUus: 170, Allocs: 120, AllocBytes: 9000, Load: "0.50 0.40 0.30", Parts: []mqtt.CPUPart{
			{Name: "intent model (featurize, ONNX Runtime)", Share: 0.4, CPUus: 60, Allocs: 40, AllocBytes: 4000},
			{Name: "MQTT client (paho: packets, socket I/O)", Share: 0.6, CPUus: 90, Allocs: 80, AllocBytes: 5000},
		}})
	writeJSON(t, dir, "mqtt-profile-load.json", []benchResult{ok(2000, 3)})
	rc := &reportCtx{dir: dir}
	body, err := renderMQTTSection(rc)
	if err != nil {
		t.Fatal(err)
	}
	body += rc.targetsTable()
	for _, want := range []string{
		"| MQTT SLM-path round trip p50 at 2000 q/s | 0.800 ms | ≤ 1 ms | met |",
		"| MQTT SLM-path round trip p99 at 2000 q/s | 6.500 ms | ≤ 5 ms | **missed** |",
		"| 6000 | 5000 | 30000 | 30000 | 0 | 0.700 | 3.000 | 6.000 | no: the load generator reached 5000 q/s |",
		"| 7000 | 7000 | 35000 | 35000 | 0 | 0.700 | 400.000 | 800.000 | **no** |",
		"Highest rate sustained: **5000 q/s**.",
		"| MQTT SLM path: highest rate sustained | 5000 q/s | ≥ 5000 q/s | met |",
		"5s each",
		"| intent model (featurize, ONNX Runtime) | 40.0 % | 60.0 µs | 40.0 | 4,000 |",
		"| **all** | 100 % | **170 µs** | 120 | 9,000 |",
		"the profile's samples\naccount for 150 µs of it.",
		"The load meanwhile: 10000 of 10000 requests answered, 0 errors",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("section lacks %q:\n%s", want, body)
		}
	}
	// A sweep whose first rate fails sustains none.
	writeJSON(t, dir, "mqtt-sweep.json", []benchResult{ok(1000, 30), ok(2000, 2)})
	rc = &reportCtx{dir: dir}
	if body, _ = renderMQTTSection(rc); !strings.Contains(body, "Highest rate sustained: **none of the rates swept**.") {
		t.Errorf("a sweep with no sustained rate:\n%s", body)
	}
}

// TestBenchReportCarriesEarlierSections: a run of mqtt alone keeps the
// sections an earlier report measured, text, plots and summary figures,
// marked with the run that measured them, also when carried twice; a
// section the earlier report had failed is not run. A report from before
// the headlines comments gives a carried section its targets' figures.
func TestBenchReportCarriesEarlierSections(t *testing.T) {
	ctx := context.Background()
	first, root := t.TempDir(), t.TempDir()
	benchFixture(t, first)
	images := filepath.Join(root, "docs", "bench")
	out := filepath.Join(root, "BENCHMARKS.md")
	report := func(dir string, extra ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args := append([]string{"--dir", dir, "--out", out, "--images", images}, extra...)
		if code := benchReport(ctx, args, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	full := report(first)

	mqttOnly := func() string {
		dir := t.TempDir()
		writeJSON(t, dir, "mqtt.json", []benchResult{{Path: "cache", Rate: 2000, Sent: 10, Replies: 10, P50: 0.1, P99: 0.2, Achieved: 2000}})
		run := `{"event":"start","time":"2026-12-01T09:00:00Z","bench":"mqtt","commit":"def456","dirty":false,"load":"0.10 0.10 0.10"}
{"event":"section","section":"mqtt","start":"2026-12-01T09:00:00Z","end":"2026-12-01T09:02:00Z","seconds":120,"load_before":"0.10 0.10 0.10","load_after":"1.00 0.50 0.20","exit":0}
{"event":"end","time":"2026-12-01T09:02:00Z","load":"1.00 0.50 0.20"}
`
		os.WriteFile(filepath.Join(dir, "run.jsonl"), []byte(run), 0o644)
		return dir
	}
	second := report(mqttOnly(), "--previous", out)
	firstRun := "*From an earlier run* (2026-11-28 13:00:00 → 13:11:00 UTC (11m0s), commit `abc123` with uncommitted changes, on "
	if !strings.Contains(full, "| machine | ") {
		t.Fatal("the first report has no machine row")
	}
	for _, want := range []string{
		"| commit | `def456` |",
		"| from an earlier run | go, slm, llm, tiers, edge |",
		"| not run | cloud |",
		"## Store and socket (Go benchmarks)\n\n" + firstRun,
		"| agent/store | CacheGet |",
		"| SLM model size (earlier run) | 9.51 MB | ≤ 10 MB | met |",
		"| store: cache get / put (fsync) (earlier run) |",
		"| MQTT cache-hit round trip p50 at 2000 q/s | 0.100 ms |",
		"![latency histogram per tier](docs/bench/tiers.png)",
	} {
		if !strings.Contains(second, want) {
			t.Errorf("second report lacks %q", want)
		}
	}
	if strings.Count(second, firstRun) != 5 {
		t.Errorf("%d sections carried with the first run's note, want 5:\n%s", strings.Count(second, firstRun), second)
	}
	for _, png := range []string{"slm-clinc150.png", "llm-bench.png", "tiers.png"} {
		if _, err := os.Stat(filepath.Join(images, png)); err != nil {
			t.Errorf("%s of a carried section removed: %v", png, err)
		}
	}
	// Carried again, a section keeps the run that measured it.
	third := report(mqttOnly(), "--previous", out)
	if strings.Count(third, firstRun) != 5 || strings.Contains(third, "(earlier run) (earlier run)") {
		t.Errorf("carried twice:\n%s", third)
	}

	// A report without headlines comments.
	legacy := regexp.MustCompile(`(?s)<!-- headlines.*?-->\n\n`).ReplaceAllString(full, "")
	os.WriteFile(out, []byte(legacy), 0o644)
	fourth := report(mqttOnly(), "--previous", out)
	if !strings.Contains(fourth, "| SLM model size (earlier run) | 9.51 MB | ≤ 10 MB | met |") ||
		strings.Contains(fourth, "store: cache get / put (fsync) (earlier run)") || !strings.Contains(fourth, "| agent/store | CacheGet |") {
		t.Errorf("from a report without headlines comments:\n%s", fourth)
	}
}
