package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hedge-edge/hedge/models/slm/evaluate"
)

// evalCmd is `hedge-bench eval`: hedge eval's evaluation (the same
// evaluate.Setup, so the same pipeline as hedge train) beside a fastText
// baseline on the same splits, with its plot and its whole result as JSON
// for the report. scripts/bench-slm.sh runs it for `make bench`.
func evalCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s evaluate.Setup
	s.AddFlags(fs)
	plotPath := fs.String("plot", "", "write the risk–coverage and accuracy/recall curves to this PNG")
	writeFT := fs.String("write-fasttext", "", "write the splits in fastText's format to this directory and exit")
	ftVal := fs.String("baseline-val", "", "fastText predict-prob output for the validation texts, to print a baseline row")
	ftTest := fs.String("baseline-test", "", "fastText predict-prob output for the test texts")
	ftBytes := fs.Int64("baseline-bytes", 0, "the baseline model's size in bytes")
	jsonFile := fs.String("json-file", "", "write the whole result, with the baseline rows, as JSON to this file (the report reads it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if s.Data == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: hedge-bench eval --data FILE --format clinc150 [--write-fasttext DIR | [--baseline-val FILE --baseline-test FILE [--baseline-bytes N]] [--plot FILE.png] [--json-file FILE]] [hedge eval's flags]")
		return 2
	}
	if err := s.Validate(); err != nil {
		fmt.Fprintf(stderr, "hedge-bench eval: %v\n", err)
		return 2
	}
	if (*ftVal == "") != (*ftTest == "") {
		fmt.Fprintln(stderr, "hedge-bench eval: --baseline-val and --baseline-test go together")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "hedge-bench eval: %v\n", err)
		return 1
	}
	ds, err := s.Load()
	if err != nil {
		return fail(err)
	}
	if *writeFT != "" {
		if err := evaluate.WriteFastText(ds, *writeFT); err != nil {
			return fail(err)
		}
		return 0
	}
	var baseline []evaluate.Row
	if *ftVal != "" {
		if baseline, err = readBaseline(ds, *ftVal, *ftTest, s.TargetRecall); err != nil {
			return fail(err)
		}
	}
	r, err := s.Evaluate(ctx, ds, progressLines(stderr, s.Phase()))
	if err != nil {
		return fail(err)
	}
	if *plotPath != "" {
		if err := evalPlot(r, *plotPath); err != nil {
			return fail(err)
		}
	}
	if *jsonFile != "" {
		b, _ := json.MarshalIndent(evalJSON{Hedge: r, Baseline: baseline, BaselineBytes: *ftBytes}, "", "  ")
		if err := os.WriteFile(*jsonFile, append(b, '\n'), 0o644); err != nil {
			return fail(err)
		}
	}
	evaluate.WriteTable(stdout, r, len(ds.Test), baseline)
	if *ftBytes > 0 {
		fmt.Fprintf(stdout, "baseline model %.2f MB\n", float64(*ftBytes)/1e6)
	}
	if *plotPath != "" {
		fmt.Fprintf(stdout, "plot: %s\n", *plotPath)
	}
	return 0
}

// progressLines prints "training  40%" every tenth of the way: make bench's
// stderr is a log more often than a terminal.
func progressLines(w io.Writer, what string) func(done, total int) {
	last := -1
	return func(done, total int) {
		if total <= 0 {
			return
		}
		if pct := done * 100 / total / 10 * 10; pct != last {
			last = pct
			fmt.Fprintf(w, "%s %3d%%\n", what, pct)
		}
	}
}

// evalJSON is what --json-file writes: hedge's evaluation and the
// baseline's rows on the same splits (the report's slm section reads it).
type evalJSON struct {
	Hedge         evaluate.Report `json:"hedge"`
	Baseline      []evaluate.Row  `json:"baseline,omitempty"`
	BaselineBytes int64           `json:"baseline_bytes,omitempty"`
}

func readBaseline(ds evaluate.Dataset, valPath, testPath string, target float64) ([]evaluate.Row, error) {
	read := func(path string, items []evaluate.Item) ([]evaluate.Scored, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return evaluate.ReadFastTextPredictions(f, items)
	}
	val, err := read(valPath, ds.Val)
	if err != nil {
		return nil, err
	}
	test, err := read(testPath, ds.Test)
	if err != nil {
		return nil, err
	}
	return evaluate.Baseline("fastText", val, test, target), nil
}
