package main

// The sections of hedge-bench report, one renderer per benchmark: each
// reads its results from bin/bench and returns the Markdown under its
// heading, its headline figures and its plots.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/cloudbridge/anonymize"
	"github.com/hedge-edge/hedge/models/llm"
	"github.com/hedge-edge/hedge/models/slm/evaluate"
)

// The Go benchmarks (go test -json).

// goBench is one benchmark's result line; with -count > 1 its metrics are
// the medians of its lines.
type goBench struct {
	Pkg, Name string
	// Procs is the run's GOMAXPROCS, which go test appends to the name
	// (none is 1).
	Procs   int
	Lines   int
	Metrics map[string]float64
	Units   []string
}

// parseGoTestJSON reads `go test -json -bench` output. Output events split
// result lines (the name is printed before the run, the figures after), so
// each package's output is joined before it is read line by line.
func parseGoTestJSON(r io.Reader) (benches []goBench, failed []string, err error) {
	// A result line: name (with -GOMAXPROCS), iterations, then value–unit
	// pairs. Compiled here, not in a package variable: every hedge command,
	// `hedge run` first, would compile it at start.
	resultLine := regexp.MustCompile(`^(Benchmark\S+?)(?:-(\d+))?\s+(\d+)\s+(.+)$`)
	type event struct{ Action, Package, Test, Output string }
	out := map[string]*strings.Builder{}
	var pkgs []string
	dec := json.NewDecoder(r)
	for {
		var e event
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			return nil, nil, fmt.Errorf("go test -json output: %w", err)
		}
		switch e.Action {
		case "output":
			if out[e.Package] == nil {
				out[e.Package] = &strings.Builder{}
				pkgs = append(pkgs, e.Package)
			}
			out[e.Package].WriteString(e.Output)
		case "fail":
			if e.Test == "" {
				failed = append(failed, e.Package)
			}
		}
	}
	for _, pkg := range pkgs {
		lines := map[string][]map[string]float64{}
		var names []string
		units := map[string][]string{}
		procs := map[string]int{}
		for _, line := range strings.Split(out[pkg].String(), "\n") {
			m := resultLine.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil {
				continue
			}
			f := strings.Fields(m[4])
			if len(f)%2 != 0 {
				continue
			}
			metrics := map[string]float64{}
			var us []string
			for i := 0; i < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					continue
				}
				metrics[f[i+1]] = v
				us = append(us, f[i+1])
			}
			if _, ok := lines[m[1]]; !ok {
				names = append(names, m[1])
				units[m[1]] = us
				procs[m[1]] = 1
				if n, err := strconv.Atoi(m[2]); err == nil {
					procs[m[1]] = n
				}
			}
			lines[m[1]] = append(lines[m[1]], metrics)
		}
		for _, n := range names {
			b := goBench{Pkg: pkg, Name: n, Procs: procs[n], Lines: len(lines[n]), Metrics: map[string]float64{}, Units: units[n]}
			for _, u := range b.Units {
				var vs []float64
				for _, l := range lines[n] {
					if v, ok := l[u]; ok {
						vs = append(vs, v)
					}
				}
				slices.Sort(vs)
				b.Metrics[u] = vs[len(vs)/2]
			}
			benches = append(benches, b)
		}
	}
	return benches, failed, nil
}

func readGoBenches(rc *reportCtx, name string) ([]goBench, error) {
	f, err := os.Open(filepath.Join(rc.dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bs, failed, err := parseGoTestJSON(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("%s: go test failed in %s", name, strings.Join(failed, ", "))
	}
	if len(bs) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results", name)
	}
	return bs, nil
}

// perCommit is one BenchmarkPutReplies run: n replies to a commit.
type perCommit struct {
	n int
	b goBench
}

// putRepliesBenches returns the BenchmarkPutReplies/per-commit=N results
// that report CPU per reply, fewest replies to a commit first.
func putRepliesBenches(bs []goBench) []perCommit {
	var per []perCommit
	for _, x := range bs {
		s, ok := strings.CutPrefix(x.Name, "BenchmarkPutReplies/per-commit=")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(s); err == nil && n > 0 && x.Metrics["cpu-µs/reply"] > 0 {
			per = append(per, perCommit{n, x})
		}
	}
	slices.SortFunc(per, func(a, b perCommit) int { return a.n - b.n })
	return per
}

func findBench(bs []goBench, name string) (goBench, bool) {
	for _, b := range bs {
		if b.Name == name {
			return b, true
		}
	}
	return goBench{}, false
}

// goTable lists benchmarks with their time per operation first.
func goTable(bs []goBench) string {
	var b strings.Builder
	b.WriteString("| package | benchmark | time per op | B/op | allocs/op | other | lines |\n|---|---|---:|---:|---:|---|---:|\n")
	for _, x := range bs {
		var other []string
		for _, u := range x.Units {
			if u != "ns/op" && u != "B/op" && u != "allocs/op" {
				other = append(other, sig3(x.Metrics[u])+" "+u)
			}
		}
		cell := func(u string) string {
			if v, ok := x.Metrics[u]; ok {
				return thousands(v)
			}
			return ""
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d |\n", strings.TrimPrefix(x.Pkg, "github.com/hedge-edge/hedge/"),
			strings.TrimPrefix(x.Name, "Benchmark"), fmtNs(x.Metrics["ns/op"]), cell("B/op"), cell("allocs/op"), strings.Join(other, ", "), x.Lines)
	}
	return b.String()
}

func renderGoSection(rc *reportCtx) (string, error) {
	bs, err := readGoBenches(rc, "go.json")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("`go test -bench` on `agent/store` (a real bbolt file, every write committed with fsync) and\n" +
		"`agent/transport/local` (the Unix socket through the agent, with an instant tier).\n\n")
	b.WriteString(goTable(bs))
	if per := putRepliesBenches(bs); len(per) >= 2 {
		one, many := per[0], per[len(per)-1]
		c1, cn := one.b.Metrics["cpu-µs/reply"], many.b.Metrics["cpu-µs/reply"]
		fmt.Fprintf(&b, "\nMQTT reply records as the transport's recorder writes them, several to a commit (`PutReplies`, into a full\n"+
			"10,000-id window): %s µs of CPU per reply at %d to a commit, %s µs at %d, **%.1f× less CPU per reply**; wall time\n"+
			"per reply %s and %s.\n", sig3(c1), one.n, sig3(cn), many.n, c1/math.Max(cn, 1e-3), fmtNs(one.b.Metrics["ns/op"]), fmtNs(many.b.Metrics["ns/op"]))
		rc.head(headline{Figure: fmt.Sprintf("store: MQTT reply record CPU, %d vs %d to a commit", one.n, many.n),
			Value: fmt.Sprintf("%s µs vs %s µs per reply (%.1f×)", sig3(c1), sig3(cn), c1/math.Max(cn, 1e-3))})
	}
	if get, ok := findBench(bs, "BenchmarkCacheGet"); ok {
		if put, ok := findBench(bs, "BenchmarkCachePut"); ok {
			rc.head(headline{Figure: "store: cache get / put (fsync)", Value: fmtNs(get.Metrics["ns/op"]) + " / " + fmtNs(put.Metrics["ns/op"])})
		}
	}
	if rt, ok := findBench(bs, "BenchmarkRoundTrip"); ok {
		v := fmtNs(rt.Metrics["ns/op"]) + " on an open connection"
		if ask, ok := findBench(bs, "BenchmarkAsk"); ok {
			v += fmt.Sprintf("; %s with connect and close (`hedge ask`'s client)", fmtNs(ask.Metrics["ns/op"]))
		}
		rc.head(headline{Figure: "socket round trip, agent with an instant tier", Value: v})
	}
	return b.String(), nil
}

// The SLM: hedge eval beside fastText.

// The SLM targets: accuracy and recall on CLINC150's test split at the
// threshold picked on validation, model size, classification latency.
const (
	slmTargetAccuracy = 0.92
	slmTargetRecall   = 0.75
	slmTargetBytes    = 10e6
	slmTargetP50us    = 50
)

func renderSLMSection(rc *reportCtx) (string, error) {
	var ev evalJSON
	if err := rc.readJSON("slm.json", &ev); err != nil {
		return "", err
	}
	h := ev.Hedge
	var b strings.Builder
	fmt.Fprintf(&b, "`hedge-bench eval` (`hedge eval`'s pipeline, %s encoder) on CLINC150 with fastText on the same splits and the same threshold rules\n"+
		"(`scripts/bench-slm.sh`); test split, thresholds picked on validation.\n\n", h.Encoder)
	b.WriteString("| model | threshold rule | threshold | in-scope acc. | OOS recall | coverage | size |\n|---|---|---:|---:|---:|---:|---:|\n")
	row := func(model string, r evaluate.Row, size string) {
		name := r.Name
		if i := strings.Index(name, ": "); i >= 0 {
			name = name[i+2:]
		}
		fmt.Fprintf(&b, "| %s | %s | %.3f | %s | %s | %s | %s |\n", model, name, r.Threshold, pct(r.InScopeAccuracy), pct(r.OOSRecall), pct(r.Coverage), size)
	}
	// The size goes on a model's first row only.
	row("hedge "+h.Encoder, h.Target, fmt.Sprintf("%.2f MB", float64(h.ModelBytes)/1e6))
	row("hedge "+h.Encoder, h.Larson, "")
	row("hedge "+h.Encoder, h.Unthresholded, "")
	for i, r := range ev.Baseline {
		size := ""
		if i == 0 && ev.BaselineBytes > 0 {
			size = fmt.Sprintf("%.1f MB", float64(ev.BaselineBytes)/1e6)
		}
		row("fastText", r, size)
	}
	fmt.Fprintf(&b, "\nhedge classifies in %s µs at p50 and %s µs at p99 on %d thread(s) (featurization included, through ONNX Runtime);\n"+
		"trained in %s, temperature %.3f, validation ECE %.3f.\n", sig3(h.P50us), sig3(h.P99us), h.Threads, fmtSeconds(h.TrainSeconds), h.Temperature, h.ValECE)

	if len(ev.Baseline) > 0 {
		ft := ev.Baseline[0]
		fmt.Fprintf(&b, "\nhedge vs fastText at the same rule (%s): in-scope accuracy %+.1f points, out-of-scope recall %+.1f points",
			h.Target.Name, 100*(h.Target.InScopeAccuracy-ft.InScopeAccuracy), 100*(h.Target.OOSRecall-ft.OOSRecall))
		if ev.BaselineBytes > 0 {
			fmt.Fprintf(&b, "; fastText's model is **%.0f× larger**", float64(ev.BaselineBytes)/float64(h.ModelBytes))
		}
		b.WriteString(".\n")
		rc.head(headline{Figure: "SLM vs fastText on CLINC150 (in-scope acc. / OOS recall / size)",
			Value: fmt.Sprintf("hedge %s / %s / %.2f MB; fastText %s / %s / %.0f MB", pct(h.Target.InScopeAccuracy), pct(h.Target.OOSRecall),
				float64(h.ModelBytes)/1e6, pct(ft.InScopeAccuracy), pct(ft.OOSRecall), float64(ev.BaselineBytes)/1e6)})
	}
	var ftl evaluate.FastTextLatency
	if err := rc.readJSON("slm-fasttext.json", &ftl); err == nil && ftl.FastText.P50us > 0 {
		ft, pipe := ftl.FastText, ftl.PipeFloor
		own := ft.P50us - pipe.P50us
		fmt.Fprintf(&b, "\nfastText, one query at a time through a pipe to `fasttext predict-prob`: p50 %s µs, p99 %s µs; the same\n"+
			"round trip through `cat` (the pipe's floor, alternated with it) p50 %s µs, so fastText's own time is about %s µs.\n"+
			"**hedge's p50 is %.2f× fastText's** (%.2f× fastText's less the pipe floor).\n",
			sig3(ft.P50us), sig3(ft.P99us), sig3(pipe.P50us), sig3(own), h.P50us/ft.P50us, h.P50us/math.Max(own, 1e-3))
		rc.head(headline{Figure: "SLM classification p50, hedge vs fastText (less its pipe floor)",
			Value: fmt.Sprintf("%s µs vs %s µs (%.2f×)", sig3(h.P50us), sig3(own), h.P50us/math.Max(own, 1e-3))})
	}
	rc.head(headline{Figure: "SLM in-scope accuracy (CLINC150 test)", Value: pct(h.Target.InScopeAccuracy),
		Target: "≥ " + pct(slmTargetAccuracy), Met: h.Target.InScopeAccuracy >= slmTargetAccuracy})
	rc.head(headline{Figure: "SLM out-of-scope recall (CLINC150 test)", Value: pct(h.Target.OOSRecall),
		Target: "≥ " + pct(slmTargetRecall), Met: h.Target.OOSRecall >= slmTargetRecall})
	rc.head(headline{Figure: "SLM model size", Value: fmt.Sprintf("%.2f MB", float64(h.ModelBytes)/1e6),
		Target: fmt.Sprintf("≤ %.0f MB", slmTargetBytes/1e6), Met: float64(h.ModelBytes) <= slmTargetBytes})
	rc.head(headline{Figure: "SLM classification p50 (one thread)", Value: sig3(h.P50us) + " µs",
		Target: fmt.Sprintf("≤ %d µs", slmTargetP50us), Met: h.P50us <= slmTargetP50us})
	b.WriteString(rc.image("slm-clinc150.png", "risk–coverage and accuracy/recall trade-off on CLINC150"))
	return b.String(), nil
}

// The cloud tier: Go benchmarks of the anonymizer and the bridge, and the
// anonymizer's latency against query length.

func renderCloudSection(rc *reportCtx) (string, error) {
	bs, err := readGoBenches(rc, "cloud.json")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("`go test -bench` on `cloudbridge/anonymize` and `cloudbridge` (`scripts/bench-cloud.sh`): the anonymizer on a\n" +
		"200-character query with five entities, and the bridge against a loopback OpenAI-compatible server, alternating\n" +
		"each call with a direct go-openai call to the same server.\n\n")
	b.WriteString(goTable(bs))
	b.WriteString("\n| figure | value |\n|---|---|\n")
	if a, ok := findBench(bs, "BenchmarkAnonymize200"); ok {
		fmt.Fprintf(&b, "| anonymizer, 200-character query, 5 entities | %s queries/s on one goroutine, mean %s, p99 %s µs |\n",
			thousands(a.Metrics["queries/s"]), fmtNs(a.Metrics["ns/op"]), sig3(a.Metrics["p99-µs"]))
		rc.head(headline{Figure: "anonymizer, 200-character query with 5 entities",
			Value: fmt.Sprintf("%s queries/s, p99 %s µs", thousands(a.Metrics["queries/s"]), sig3(a.Metrics["p99-µs"]))})
	}
	if r, ok := findBench(bs, "BenchmarkRestore"); ok {
		fmt.Fprintf(&b, "| restore of placeholders in an answer | %s |\n", fmtNs(r.Metrics["ns/op"]))
	}
	for _, v := range []struct{ name, what string }{
		{"BenchmarkBridgeOverhead/no-budget", "bridge vs a direct go-openai call"},
		{"BenchmarkBridgeOverhead/with-budget", "the same with a daily budget (durable counters, fsync)"},
	} {
		o, ok := findBench(bs, v.name)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "| %s | direct %s µs, bridge %s µs: +%s µs, **bridge ÷ direct = %.2f×** |\n", v.what,
			sig3(o.Metrics["direct-µs"]), sig3(o.Metrics["bridge-µs"]), sig3(o.Metrics["added-µs"]), o.Metrics["ratio"])
		if strings.HasSuffix(v.name, "no-budget") {
			rc.head(headline{Figure: "cloud bridge vs direct go-openai, loopback server",
				Value: fmt.Sprintf("+%s µs (%.2f×)", sig3(o.Metrics["added-µs"]), o.Metrics["ratio"])})
		}
	}
	var pts []anonymize.BenchPoint
	if err := rc.readJSON("cloud-anonymizer.json", &pts); err == nil && len(pts) > 0 {
		b.WriteString("\nAnonymizer latency against query length (dense text, an entity every ~40 bytes; `anonbench`):\n\n")
		b.WriteString("| bytes | runs | p50 (µs) | p99 (µs) | MB/s at p50 |\n|---:|---:|---:|---:|---:|\n")
		for _, p := range pts {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", thousands(float64(p.Bytes)), thousands(float64(p.Runs)), sig3(p.P50us), sig3(p.P99us), sig3(p.MBps))
		}
	}
	b.WriteString(rc.image("cloud-anonymizer.png", "anonymizer latency against query length"))
	return b.String(), nil
}

// MQTT: hedge-bench mqtt's paths beside mosquitto's floor and a bare paho
// responder.

// The MQTT targets hold for the cache and the slm path at this rate, and
// the slm path must sustain mqttSLMTargetRate; benchPlot draws them too.
const (
	mqttTargetRate    = 2000
	mqttTargetP50     = 0.5
	mqttTargetP99     = 3.0
	mqttSLMTargetP50  = 1.0
	mqttSLMTargetP99  = 5.0
	mqttSLMTargetRate = 5000
)

// mqttSustainedP99 (ms) bounds the p99 of a rate hedge sustains. Past
// saturation the broker's backlog grows for the whole run, and p99 with
// it, to hundreds of milliseconds; below it p99 stays within a few.
const mqttSustainedP99 = 25.0

// sustained reports whether hedge kept up with r's rate: every request
// answered without error, p99 within mqttSustainedP99, and the load
// generator itself reached the rate (else the rate was not offered).
func sustained(r benchResult) bool {
	return r.Sent > 0 && r.Replies == r.Sent && r.Errors == 0 && r.P99 <= mqttSustainedP99 && r.Achieved >= 0.97*float64(r.Rate)
}

// readList reads a JSON array of results from rc.dir; an empty one is an
// error: the benchmark measured nothing.
func readList[T any](rc *reportCtx, name string) ([]T, error) {
	var v []T
	if err := rc.readJSON(name, &v); err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("%s holds no results", name)
	}
	return v, nil
}

func renderMQTTSection(rc *reportCtx) (string, error) {
	rs, err := readList[benchResult](rc, "mqtt.json")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("Open loop at fixed rates (`scripts/bench-mqtt.sh`): requests published on schedule whatever the replies do,\n" +
		"publish → reply arrival, through a mosquitto on loopback. Peers measured in the same run: `floor` is mosquitto's own\n" +
		"pub→sub (one hop), `echo` a bare paho client that republishes each request (two hops, the floor of any\n" +
		"request/reply service).\n\n")
	b.WriteString(benchTable(rs))
	find := func(path string, rate int) (benchResult, bool) {
		for _, r := range rs {
			if r.Path == path && r.Rate == rate {
				return r, true
			}
		}
		return benchResult{}, false
	}
	var rates []int
	for _, r := range rs {
		if !slices.Contains(rates, r.Rate) {
			rates = append(rates, r.Rate)
		}
	}
	var ratios strings.Builder
	for _, rate := range rates {
		echo, ok := find("echo", rate)
		if !ok || echo.P50 <= 0 {
			continue
		}
		for _, path := range []string{"cache", "slm"} {
			h, ok := find(path, rate)
			if !ok || h.P50 <= 0 {
				continue
			}
			fmt.Fprintf(&ratios, "| %s | %d | %.2f× | +%.3f ms | %.2f× |\n", path, rate, h.P50/echo.P50, h.P50-echo.P50, h.P99/echo.P99)
		}
	}
	if ratios.Len() > 0 {
		b.WriteString("\nhedge against the bare paho responder (echo) at the same rate:\n\n" +
			"| hedge path | rate (q/s) | p50 ÷ echo p50 | p50 − echo p50 | p99 ÷ echo p99 |\n|---|---:|---:|---:|---:|\n")
		b.WriteString(ratios.String())
	}
	for _, r := range rs {
		if r.Path != "floor" && r.Path != "echo" && (r.Replies < r.Sent || r.Errors > 0) {
			fmt.Fprintf(&b, "\n%s at %d q/s: %d of %d requests answered, %d error replies (%s).\n", r.Path, r.Rate, r.Replies, r.Sent, r.Errors, r.Tiers)
		}
	}
	if c, ok := find("cache", mqttTargetRate); ok {
		v := fmt.Sprintf("%.3f ms", c.P50)
		if e, ok := find("echo", mqttTargetRate); ok {
			v += fmt.Sprintf(" (echo peer %.3f ms)", e.P50)
		}
		rc.head(headline{Figure: fmt.Sprintf("MQTT cache-hit round trip p50 at %d q/s", mqttTargetRate), Value: v,
			Target: fmt.Sprintf("≤ %.1f ms", mqttTargetP50), Met: c.P50 <= mqttTargetP50 && c.Replies == c.Sent})
		rc.head(headline{Figure: fmt.Sprintf("MQTT cache-hit round trip p99 at %d q/s", mqttTargetRate), Value: fmt.Sprintf("%.3f ms", c.P99),
			Target: fmt.Sprintf("≤ %.0f ms", mqttTargetP99), Met: c.P99 <= mqttTargetP99 && c.Replies == c.Sent})
	} else {
		fmt.Fprintf(&b, "\nThe targets are for the cache path at %d q/s, which this run did not measure.\n", mqttTargetRate)
	}
	if r, ok := find("slm", mqttTargetRate); ok {
		rc.head(headline{Figure: fmt.Sprintf("MQTT SLM-path round trip p50 at %d q/s", mqttTargetRate), Value: fmt.Sprintf("%.3f ms", r.P50),
			Target: fmt.Sprintf("≤ %.0f ms", mqttSLMTargetP50), Met: r.P50 <= mqttSLMTargetP50 && r.Replies == r.Sent && r.Errors == 0})
		rc.head(headline{Figure: fmt.Sprintf("MQTT SLM-path round trip p99 at %d q/s", mqttTargetRate), Value: fmt.Sprintf("%.3f ms", r.P99),
			Target: fmt.Sprintf("≤ %.0f ms", mqttSLMTargetP99), Met: r.P99 <= mqttSLMTargetP99 && r.Replies == r.Sent && r.Errors == 0})
	}
	b.WriteString(rc.image("mqtt.png", "MQTT round trip p50 and p99 per rate"))
	b.WriteString(renderMQTTSweep(rc))
	b.WriteString(renderMQTTProfile(rc))
	return b.String(), nil
}

// renderMQTTSweep is the slm path's rate sweep (mqtt-sweep.json): "" when
// the run made none.
func renderMQTTSweep(rc *reportCtx) string {
	rs, err := readList[benchResult](rc, "mqtt-sweep.json")
	if err != nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n### SLM path rate sweep\n\n"+
		"The slm path at rising rates (`hedge-bench mqtt --stop-saturated`), %s each, until one is not sustained. A rate is\n"+
		"sustained when every request is answered without error, p99 stays within %.0f ms (past saturation the broker's\n"+
		"backlog grows for the whole run and p99 with it) and the load generator, on the same cores, reached the rate.\n\n",
		fmtSeconds(math.Round(float64(rs[0].Sent)/float64(rs[0].Rate))), mqttSustainedP99)
	b.WriteString("| rate (q/s) | achieved | sent | replies | errors | p50 (ms) | p99 (ms) | max (ms) | sustained |\n|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	best := 0
	broken := false
	for _, r := range rs {
		ok := sustained(r)
		verdict := "yes"
		switch {
		case !ok && r.Achieved < 0.97*float64(r.Rate):
			verdict = fmt.Sprintf("no: the load generator reached %.0f q/s", r.Achieved)
		case !ok:
			verdict = "**no**"
		}
		fmt.Fprintf(&b, "| %d | %.0f | %d | %d | %d | %.3f | %.3f | %.3f | %s |\n", r.Rate, r.Achieved, r.Sent, r.Replies, r.Errors, r.P50, r.P99, r.Max, verdict)
		if !ok {
			broken = true
		}
		if ok && !broken && r.Rate > best {
			best = r.Rate
		}
	}
	v := fmt.Sprintf("%d q/s", best)
	switch {
	case best == 0:
		v = "none of the rates swept"
	case !broken:
		v = fmt.Sprintf("≥ %d q/s (every rate swept was sustained)", best)
	}
	fmt.Fprintf(&b, "\nHighest rate sustained: **%s**.\n", v)
	rc.head(headline{Figure: "MQTT SLM path: highest rate sustained", Value: v,
		Target: fmt.Sprintf("≥ %d q/s", mqttSLMTargetRate), Met: best >= mqttSLMTargetRate})
	b.WriteString(rc.image("mqtt-sweep.png", "SLM path p50 and p99 against the request rate"))
	return b.String()
}

// renderMQTTProfile is where hedge's CPU goes per slm request
// (mqtt-profile.json, written by hedge-bench profile): "" when the run
// took no profile.
func renderMQTTProfile(rc *reportCtx) string {
	var bd mqtt.CPUBreakdown
	if err := rc.readJSON("mqtt-profile.json", &bd); err != nil || len(bd.Parts) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Where an SLM request's CPU goes\n\n"+
		"A CPU profile of `hedge run` (`HEDGE_PPROF`, read by `hedge-bench profile`) for %.0f s while the %s path ran at a steady\n"+
		"%d q/s, and its heap allocations over the same seconds; per request is over the %.0f requests sent meanwhile. A\n"+
		"sample counts for the innermost function of its stack that names a part (a system call for whoever made it,\n"+
		"`encoding/json` as JSON whoever called it). Load average at the end: %s.\n\n",
		bd.Seconds, bd.Path, bd.Rate, bd.Requests, orUnknown(bd.Load))
	b.WriteString("| part | share of CPU | CPU per request | allocations per request | bytes per request |\n|---|---:|---:|---:|---:|\n")
	for _, p := range bd.Parts {
		fmt.Fprintf(&b, "| %s | %.1f %% | %s µs | %s | %s |\n", p.Name, 100*p.Share, sig3(p.CPUus), sig3(p.Allocs), thousands(p.AllocBytes))
	}
	total := max(bd.CPUus, bd.ProcessCPUus)
	fmt.Fprintf(&b, "| **all** | 100 %% | **%s µs** | %s | %s |\n", sig3(total), sig3(bd.Allocs), thousands(bd.AllocBytes))
	if bd.ProcessCPUus > 0 {
		fmt.Fprintf(&b, "\nAll is the process's own count (`/proc`, user and system time over the same seconds); the profile's samples\n"+
			"account for %s µs of it.\n", sig3(bd.CPUus))
	}
	if load, err := readList[benchResult](rc, "mqtt-profile-load.json"); err == nil {
		l := load[0]
		fmt.Fprintf(&b, "The load meanwhile: %d of %d requests answered, %d errors, p50 %.3f ms, p99 %.3f ms.\n", l.Replies, l.Sent, l.Errors, l.P50, l.P99)
	}
	rc.head(headline{Figure: fmt.Sprintf("MQTT %s path: hedge's CPU per request at %d q/s", bd.Path, bd.Rate),
		Value: fmt.Sprintf("%s µs, %.0f allocations", sig3(total), bd.Allocs)})
	return b.String()
}

// The local LLM: llmbench's medians of hedge, the C program and
// node-llama-cpp.

// hedge's tokens per second against each peer, prompt and generation
// alike (issue 14), each on every model.
const (
	llmTargetVsC    = 0.98
	llmTargetVsNode = 1.0
)

func renderLLMSection(rc *reportCtx) (string, error) {
	ms, err := readList[llm.BenchMedian](rc, "llm-bench.json")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`scripts/bench-llm.sh`: the same GGUF files (generated fixtures of real shapes, random weights) through hedge\n"+
		"(`models/llm`), a minimal C program over the same llama.cpp build (`models/llm/cbench`) and node-llama-cpp from npm,\n"+
		"%d threads, runs interleaved; medians over the runs. Each names the llama.cpp CPU variant it loaded: hedge and the C\n"+
		"program choose among the same build's, node-llama-cpp among its prebuilt's.\n\n", ms[0].Threads)
	b.WriteString(llm.BenchTable(ms))
	if note := llm.BandwidthNote(ms); note != "" {
		b.WriteString("\n" + note)
	}
	var models []string
	by := map[string]map[string]llm.BenchMedian{}
	for _, m := range ms {
		if by[m.Model] == nil {
			by[m.Model] = map[string]llm.BenchMedian{}
			models = append(models, m.Model)
		}
		by[m.Model][m.Impl] = m
	}
	// One headline per peer and figure, across the models: a target holds
	// when it holds for every model.
	for _, peer := range []struct {
		impl, name string
		target     float64
	}{{"c", "the C program", llmTargetVsC}, {"node-llama-cpp", "node-llama-cpp", llmTargetVsNode}} {
		for _, fig := range []struct {
			name string
			get  func(llm.BenchMedian) float64
		}{{"prompt", func(m llm.BenchMedian) float64 { return m.PromptTPS }}, {"generation", func(m llm.BenchMedian) float64 { return m.GenTPS }}} {
			var vals []string
			met := true
			for _, model := range models {
				h, okH := by[model]["hedge"]
				p, okP := by[model][peer.impl]
				if !okH || !okP || fig.get(p) <= 0 {
					continue
				}
				r := fig.get(h) / fig.get(p)
				met = met && r >= peer.target
				vals = append(vals, fmt.Sprintf("%s (%s)", llm.Ratio(r), strings.TrimSuffix(model, ".gguf")))
			}
			if len(vals) == 0 {
				fmt.Fprintf(&b, "\n%s did not run: the %s target against it is not measured.\n", peer.name, fig.name)
				continue
			}
			rc.head(headline{Figure: fmt.Sprintf("LLM %s tok/s, hedge ÷ %s", fig.name, peer.name), Value: strings.Join(vals, ", "),
				Target: fmt.Sprintf("≥ %.2f×", peer.target), Met: met})
		}
	}
	// How near generation comes to what memory bandwidth allows: no
	// target, the figure that says how much any binding could still gain.
	var bound []string
	for _, model := range models {
		var fs []string
		for _, impl := range []string{"hedge", "c", "node-llama-cpp"} {
			if m, ok := by[model][impl]; ok && m.BoundFraction() > 0 {
				fs = append(fs, fmt.Sprintf("%s %.0f %%", impl, 100*m.BoundFraction()))
			}
		}
		if len(fs) > 0 {
			bound = append(bound, strings.TrimSuffix(model, ".gguf")+": "+strings.Join(fs, ", "))
		}
	}
	if len(bound) > 0 {
		rc.head(headline{Figure: "LLM generation, fraction of the memory-bandwidth bound", Value: strings.Join(bound, "; ")})
	}
	b.WriteString(rc.image("llm-bench.png", "tokens per second and peak RSS, hedge vs C vs node-llama-cpp"))
	conv, err := renderLLMConversation(rc)
	if err != nil {
		return "", err
	}
	b.WriteString(conv)
	return b.String(), nil
}

// The tiers: hedge-bench tiers.

func llmThreadsText(n int) string {
	switch n {
	case 0:
		return "one llama.cpp thread per core"
	case 1:
		return "one llama.cpp thread"
	}
	return fmt.Sprintf("%d llama.cpp threads", n)
}

func renderTiersSection(rc *reportCtx) (string, error) {
	var r tiersResult
	if err := rc.readJSON("tiers.json", &r); err != nil {
		return "", err
	}
	if len(r.Tiers) == 0 {
		return "", errors.New("tiers.json holds no tiers")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`hedge-bench tiers` starts `hedge run` with every tier on — cache, intent model (starter intents), local LLM\n"+
		"(`%s`, at most %d tokens per answer, %s), cloud (a loopback server in `hedge-bench tiers`'s own process speaking OpenAI's chat\n"+
		"completions wire format, answering at once) — and asks over the Unix socket; %s. Latency is end to end, from writing\n"+
		"the request line to reading the reply line; each answer counts for the tier its `tier` field names. %d answers per\n"+
		"tier after %d untimed queries of each kind; %s in all. The peer of the cloud tier is the same loopback server asked\n"+
		"directly over HTTP.\n\n", r.LLMModel, r.LLMMaxTokens, llmThreadsText(r.LLMThreads), r.Mode, r.PerTier, r.Warmup, fmtSeconds(r.Seconds))
	b.WriteString(tiersTable(r))
	var parts []string
	for _, t := range r.Tiers {
		parts = append(parts, fmt.Sprintf("%s %s / %s", t.Tier, fmtMS(t.P50), fmtMS(t.P99)))
		if t.Tier == "cloud" && r.Direct.N > 0 && r.Direct.P50 > 0 {
			fmt.Fprintf(&b, "\nCloud tier through hedge vs the same server asked directly: p50 %s vs %s, **%.1f×** (hedge adds %s at\n"+
				"the median: socket, intent model, policy, anonymizer, the HTTP call through go-openai, the cache write).\n",
				fmtMS(t.P50), fmtMS(r.Direct.P50), t.P50/r.Direct.P50, fmtMS(t.P50-r.Direct.P50))
		}
	}
	rc.head(headline{Figure: "end-to-end latency per tier over the socket, p50 / p99", Value: strings.Join(parts, "; ")})
	b.WriteString(rc.image("tiers.png", "latency histogram per tier"))
	return b.String(), nil
}
