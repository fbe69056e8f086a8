package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/platform"
)

// The marks around the block of README.md that hedge-bench report rewrites
// with the headline figures of the run.
const (
	readmeBegin = "<!-- bench:begin -->"
	readmeEnd   = "<!-- bench:end -->"
)

// benchReport is `hedge-bench report`: it reads what `make bench` left in
// bin/bench (each benchmark's JSON and run.jsonl, scripts/bench.sh's record
// of what ran when) and writes BENCHMARKS.md, copies the plots beside it
// and rewrites README.md's headline block. Every figure comes from those
// files; nothing in the report is typed by hand.
func benchReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "bin/bench", "folder of the benchmarks' results")
	out := fs.String("out", "BENCHMARKS.md", `report to write ("-": stdout)`)
	images := fs.String("images", "docs/bench", "folder the plots are copied to, so that the committed report's images resolve")
	readme := fs.String("readme", "", "README whose "+readmeBegin+" … "+readmeEnd+" block gets the headline figures (\"\": none; not with --out -)")
	only := fs.String("only", "", "print only these sections (comma-separated) to stdout, from whatever results --dir holds; no file is written")
	previous := fs.String("previous", "", "an earlier report (BENCHMARKS.md): each section this run did not run is kept as it shows it, with its summary figures, marked as of that run (\"\": none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: hedge-bench report [--dir bin/bench] [--out BENCHMARKS.md] [--images docs/bench] [--readme README.md] [--previous BENCHMARKS.md] [--only SECTIONS]")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "hedge-bench report: %v\n", err)
		return 1
	}
	if *only != "" {
		for _, name := range strings.Split(*only, ",") {
			s, ok := sectionByName(strings.TrimSpace(name))
			if !ok {
				fmt.Fprintf(stderr, "hedge-bench report: --only: no section %q (%s)\n", name, strings.Join(sectionNames(), ", "))
				return 2
			}
			rc := &reportCtx{dir: *dir, imgLink: *dir}
			body, err := s.render(rc)
			if err != nil {
				return fail(fmt.Errorf("%s: %w", s.name, err))
			}
			fmt.Fprintf(stdout, "## %s\n\n%s%s\n", s.title, body, rc.targetsTable())
		}
		return 0
	}
	run, err := readRun(filepath.Join(*dir, "run.jsonl"))
	if err != nil {
		return fail(err)
	}
	var prev earlierReport
	if *previous != "" {
		b, err := os.ReadFile(*previous)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
		// Read before the report (often the same file) is written.
		prev = parseEarlierReport(string(b))
	}
	if *out == "-" {
		// On stdout the plots are linked where they are.
		io.WriteString(stdout, buildReport(run, readMachine(), *dir, *dir, prev).doc)
		return 0
	}
	link, err := filepath.Rel(filepath.Dir(*out), *images)
	if err != nil {
		return fail(err)
	}
	rep := buildReport(run, readMachine(), *dir, filepath.ToSlash(link), prev)
	if err := os.WriteFile(*out, []byte(rep.doc), 0o644); err != nil {
		return fail(err)
	}
	if err := copyImages(*dir, *images, rep.images, rep.kept); err != nil {
		return fail(err)
	}
	if *readme != "" {
		if err := rewriteReadme(*readme, rep.readme); err != nil {
			return fail(err)
		}
	}
	fmt.Fprintf(stderr, "hedge-bench report: wrote %s (%d sections run, %d plots)\n", *out, rep.ran, len(rep.images))
	return 0
}

// reportSection is one benchmark's part of the report. render reads its
// results from rc.dir and returns the Markdown under its heading; it adds
// headline figures and plots to rc. results is its main result file, whose
// presence counts as a run when there is no run.jsonl.
type reportSection struct {
	name, title, results string
	render               func(rc *reportCtx) (string, error)
}

// reportSections lists the report's sections in scripts/bench.sh's order.
func reportSections() []reportSection {
	return []reportSection{
		{"go", "Store and socket (Go benchmarks)", "go.json", renderGoSection},
		{"slm", "Intent model (SLM) on CLINC150, beside fastText", "slm.json", renderSLMSection},
		{"cloud", "Cloud bridge and anonymizer", "cloud.json", renderCloudSection},
		{"mqtt", "MQTT round trip through mosquitto (`hedge-bench mqtt`)", "mqtt.json", renderMQTTSection},
		{"llm", "Local LLM: hedge vs a C program vs node-llama-cpp", "llm-bench.json", renderLLMSection},
		{"tiers", "End-to-end latency per tier over the socket (`hedge-bench tiers`)", "tiers.json", renderTiersSection},
		{"edge", "Edge figures: binary size, memory, cold start (`hedge-bench edge`)", "edge.json", renderEdgeSection},
	}
}

func sectionByName(name string) (reportSection, bool) {
	for _, s := range reportSections() {
		if s.name == name {
			return s, true
		}
	}
	return reportSection{}, false
}

func sectionNames() []string {
	var n []string
	for _, s := range reportSections() {
		n = append(n, s.name)
	}
	return n
}

// headline is one figure of the summary (and of README's block), with the
// target it is held to, if any.
type headline struct {
	Figure, Value string
	// Target is "" when the issues set none for this figure.
	Target string
	// Met is meaningful only with a Target.
	Met bool
}

func (h headline) verdict() string {
	switch {
	case h.Target == "":
		return "—"
	case h.Met:
		return "met"
	}
	return "**missed**"
}

// reportCtx carries what a section's renderer needs and what it adds.
type reportCtx struct {
	dir string
	// imgLink is the folder the report's image links point into.
	imgLink string
	images  []string
	heads   []headline
}

func (rc *reportCtx) readJSON(name string, v any) error {
	b, err := os.ReadFile(filepath.Join(rc.dir, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// image returns the Markdown of plot name (a file in rc.dir) and records it
// for copying; "" when the run made no such plot.
func (rc *reportCtx) image(name, alt string) string {
	if _, err := os.Stat(filepath.Join(rc.dir, name)); err != nil {
		return ""
	}
	rc.images = append(rc.images, name)
	return fmt.Sprintf("\n![%s](%s/%s)\n", alt, rc.imgLink, name)
}

func (rc *reportCtx) head(h headline) { rc.heads = append(rc.heads, h) }

// targetsTable lists the section's figures that have a target.
func (rc *reportCtx) targetsTable() string {
	held := slices.DeleteFunc(slices.Clone(rc.heads), func(h headline) bool { return h.Target == "" })
	if len(held) == 0 {
		return ""
	}
	return "\nTargets:\n\n" + headlineTable(held)
}

// runRecord is one line of run.jsonl: the start of a `make bench`
// (event "start"), one benchmark ("section") or the end ("end").
type runRecord struct {
	Event      string  `json:"event"`
	Time       string  `json:"time"`
	Bench      string  `json:"bench"`
	Commit     string  `json:"commit"`
	Dirty      bool    `json:"dirty"`
	Load       string  `json:"load"`
	Section    string  `json:"section"`
	Start      string  `json:"start"`
	End        string  `json:"end"`
	Seconds    float64 `json:"seconds"`
	LoadBefore string  `json:"load_before"`
	LoadAfter  string  `json:"load_after"`
	Exit       int     `json:"exit"`
}

// runInfo is what run.jsonl says about the run. Without the file (results
// put in bin/bench by hand) every section whose results exist counts as run.
type runInfo struct {
	known      bool
	start, end runRecord
	sections   map[string]runRecord
}

func readRun(path string) (runInfo, error) {
	ri := runInfo{sections: map[string]runRecord{}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return ri, nil
	}
	if err != nil {
		return ri, err
	}
	defer f.Close()
	ri.known = true
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r runRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return ri, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		switch r.Event {
		case "start":
			ri.start = r
		case "end":
			ri.end = r
		case "section":
			ri.sections[r.Section] = r
		default:
			return ri, fmt.Errorf("%s:%d: unknown event %q", path, n, r.Event)
		}
	}
	return ri, sc.Err()
}

// machineInfo describes the machine the report is written on, which is the
// one the benchmarks ran on (scripts/bench.sh writes it right after them).
type machineInfo struct {
	CPU, Board, Kernel, Go string
	Cores                  int
	MemBytes               uint64
}

func readMachine() machineInfo {
	// Detect's facts are usable even with its error: a source it could not
	// read only leaves its field zero.
	f, _ := platform.Detect("/")
	m := machineInfo{Go: runtime.Version(), Cores: f.Cores, MemBytes: f.MemTotal, Board: f.Board}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = parseCPUModel(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// parseCPUModel returns the first "model name" of /proc/cpuinfo (x86,
// most Arm kernels), else its "Hardware" or "Model" line.
func parseCPUModel(cpuinfo string) string {
	found := map[string]string{}
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if ok && v != "" && found[k] == "" {
			found[k] = v
		}
	}
	for _, k := range []string{"model name", "Hardware", "Model"} {
		if found[k] != "" {
			return found[k]
		}
	}
	return ""
}

// benchDoc is the rendered report.
type benchDoc struct {
	doc, readme string
	// images are the plots to copy; kept those of sections carried from an
	// earlier report, already in the images folder.
	images, kept []string
	ran          int
}

// buildReport renders every section that ran and says which did not; a
// section that did not run but that prev shows is carried over from it.
func buildReport(run runInfo, m machineInfo, dir, imgLink string, prev earlierReport) benchDoc {
	var rep benchDoc
	var body strings.Builder
	var heads []headline
	var notRun, failed, carried []string
	for _, s := range reportSections() {
		rec, ran := run.sections[s.name]
		if !run.known {
			_, err := os.Stat(filepath.Join(dir, s.results))
			ran = err == nil
		}
		fmt.Fprintf(&body, "## %s\n\n", s.title)
		switch {
		case !ran:
			if old, ok := prev.section(s.title); ok {
				carried = append(carried, s.name)
				fmt.Fprintf(&body, "%s\n\n%s\n", old.carriedLine(), old.body)
				body.WriteString(headlinesComment(old.heads))
				heads = append(heads, earlier(old.heads)...)
				rep.kept = append(rep.kept, old.images...)
				continue
			}
			notRun = append(notRun, s.name)
			body.WriteString("Not run in this run.\n\n")
			continue
		case rec.Exit != 0:
			failed = append(failed, s.name)
			fmt.Fprintf(&body, "**Failed** in this run (exit status %d after %s); see the console output of `make bench`.\n\n", rec.Exit, fmtSeconds(rec.Seconds))
			continue
		}
		rep.ran++
		if run.known {
			fmt.Fprintf(&body, "Ran %s → %s UTC (%s); load average %s → %s.\n\n",
				clock(rec.Start), clock(rec.End), fmtSeconds(rec.Seconds), rec.LoadBefore, rec.LoadAfter)
		}
		rc := &reportCtx{dir: dir, imgLink: imgLink}
		text, err := s.render(rc)
		if err != nil {
			failed = append(failed, s.name)
			fmt.Fprintf(&body, "**Its results could not be read**: %v.\n\n", err)
			continue
		}
		body.WriteString(text)
		body.WriteString(rc.targetsTable())
		body.WriteString("\n")
		body.WriteString(headlinesComment(rc.heads))
		heads = append(heads, rc.heads...)
		rep.images = append(rep.images, rc.images...)
	}

	var doc strings.Builder
	doc.WriteString("# hedge benchmarks\n\n")
	doc.WriteString("Written by `make bench` (`scripts/bench.sh`, then `hedge-bench report`) from the results it left in\n" +
		"`bin/bench/`: every figure below comes from that run, none is typed by hand. Ratios compare\n" +
		"hedge with a peer measured in the same run on the same machine.\n\n")
	if len(carried) > 0 {
		doc.WriteString("Sections marked *From an earlier run* were not run in this one: they are copied from the report of\n" +
			"the run they name, their figures in the summary marked \"(earlier run)\".\n\n")
	}
	doc.WriteString(runTable(run, m, notRun, failed, carried))
	doc.WriteString("\n## Summary\n\n")
	doc.WriteString(headlineTable(heads))
	doc.WriteString("\n")
	doc.WriteString(body.String())
	rep.doc = strings.TrimRight(doc.String(), "\n") + "\n"

	var rd strings.Builder
	fmt.Fprintf(&rd, "Run of %s on %s; commit %s. Full report with method, peers and plots: [BENCHMARKS.md](BENCHMARKS.md).\n\n",
		runWhen(run), machineShort(m), commitText(run))
	rd.WriteString(headlineTable(heads))
	if len(carried) > 0 {
		fmt.Fprintf(&rd, "\nFrom an earlier run (marked so): %s.\n", strings.Join(carried, ", "))
	}
	if len(notRun) > 0 {
		fmt.Fprintf(&rd, "\nNot run in this run: %s.\n", strings.Join(notRun, ", "))
	}
	rep.readme = rd.String()
	return rep
}

func runTable(run runInfo, m machineInfo, notRun, failed, carried []string) string {
	var b strings.Builder
	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| run | %s |\n", runWhen(run))
	fmt.Fprintf(&b, "| commit | %s |\n", commitText(run))
	cpu := m.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	fmt.Fprintf(&b, "| machine | %s, %d logical CPUs, %s RAM", cpu, m.Cores, fmtBytes(int64(m.MemBytes)))
	if m.Board != "" {
		fmt.Fprintf(&b, " (%s)", m.Board)
	}
	b.WriteString(" |\n")
	fmt.Fprintf(&b, "| kernel | Linux %s |\n", orUnknown(m.Kernel))
	fmt.Fprintf(&b, "| Go | %s |\n", m.Go)
	if run.known {
		fmt.Fprintf(&b, "| load average (1, 5, 15 min) | before %s; after %s |\n", orUnknown(run.start.Load), orUnknown(run.end.Load))
		fmt.Fprintf(&b, "| benchmarks asked for | `BENCH=%s` |\n", run.start.Bench)
	}
	if len(carried) > 0 {
		fmt.Fprintf(&b, "| from an earlier run | %s |\n", strings.Join(carried, ", "))
	}
	if len(notRun) > 0 {
		fmt.Fprintf(&b, "| not run | %s |\n", strings.Join(notRun, ", "))
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "| **failed** | %s |\n", strings.Join(failed, ", "))
	}
	return b.String()
}

func headlineTable(heads []headline) string {
	if len(heads) == 0 {
		return "No benchmark results in this run.\n"
	}
	var b strings.Builder
	b.WriteString("| figure | this run | target | |\n|---|---|---|---|\n")
	for _, h := range heads {
		t := h.Target
		if t == "" {
			t = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", h.Figure, h.Value, t, h.verdict())
	}
	return b.String()
}

func runWhen(run runInfo) string {
	if !run.known || run.start.Time == "" {
		return "unknown time (no run.jsonl)"
	}
	s := strings.Replace(strings.TrimSuffix(run.start.Time, "Z"), "T", " ", 1)
	if t0, err := time.Parse(time.RFC3339, run.start.Time); err == nil {
		if t1, err := time.Parse(time.RFC3339, run.end.Time); err == nil {
			return fmt.Sprintf("%s → %s UTC (%s)", s, clock(run.end.Time), t1.Sub(t0).Round(time.Second))
		}
	}
	return s + " UTC"
}

func commitText(run runInfo) string {
	if !run.known || run.start.Commit == "" {
		return "unknown"
	}
	c := "`" + run.start.Commit + "`"
	if run.start.Dirty {
		c += " with uncommitted changes"
	}
	return c
}

func machineShort(m machineInfo) string {
	cpu := m.CPU
	if cpu == "" {
		cpu = "an unknown CPU"
	}
	return fmt.Sprintf("%s (%d logical CPUs, %s RAM)", cpu, m.Cores, fmtBytes(int64(m.MemBytes)))
}

// clock is the hh:mm:ss of an RFC 3339 time.
func clock(ts string) string {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return ts
	}
	return t.UTC().Format("15:04:05")
}

func fmtSeconds(s float64) string {
	return (time.Duration(s) * time.Second).String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// copyImages copies the plots the report links from dir to dst and
// removes the PNGs in dst it no longer links (neither names nor kept, the
// plots of sections carried from an earlier report), so that the folder
// holds the report's plots and nothing else.
func copyImages(dir, dst string, names, kept []string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, n), b, 0o644); err != nil {
			return err
		}
	}
	old, _ := filepath.Glob(filepath.Join(dst, "*.png"))
	for _, p := range old {
		if n := filepath.Base(p); !slices.Contains(names, n) && !slices.Contains(kept, n) {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// rewriteReadme replaces what lies between the bench marks of path.
func rewriteReadme(path, block string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := replaceBlock(string(b), block)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

func replaceBlock(doc, block string) (string, error) {
	i := strings.Index(doc, readmeBegin)
	j := strings.Index(doc, readmeEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %s … %s block to rewrite", readmeBegin, readmeEnd)
	}
	return doc[:i+len(readmeBegin)] + "\n" + block + doc[j:], nil
}

// Formatting of figures.

// fmtNs prints a duration given in ns with a unit that suits it.
func fmtNs(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%s µs", sig3(ns/1e3))
	case ns < 1e9:
		return fmt.Sprintf("%s ms", sig3(ns/1e6))
	}
	return fmt.Sprintf("%s s", sig3(ns/1e9))
}

// fmtMS prints milliseconds.
func fmtMS(ms float64) string { return fmtNs(ms * 1e6) }

// sig3 prints v with three significant digits, without an exponent.
func sig3(v float64) string {
	if v == 0 {
		return "0"
	}
	d := 2 - int(math.Floor(math.Log10(math.Abs(v))))
	if d < 0 {
		d = 0
	}
	return strconv.FormatFloat(v, 'f', d, 64)
}

// thousands prints v rounded to a whole number, with comma grouping.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func pct(v float64) string { return fmt.Sprintf("%.1f %%", 100*v) }

// fmtBytes is n in binary units: 3.8 GiB.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
