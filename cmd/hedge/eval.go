package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/hedge-edge/hedge/models/slm/evaluate"
)

// eval is `hedge eval --data FILE --format clinc150 [--encoder
// compact|transformer] [--target-oos-recall R] [--json]`: the intent model
// trained and measured with the exact pipeline hedge train and hedge run
// use. The fastText comparison and the plots are benchmark tooling:
// hedge-bench eval.
func eval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s evaluate.Setup
	s.AddFlags(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if s.Data == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: hedge eval --data FILE --format clinc150 [--encoder compact|transformer] [--target-oos-recall R] [--json]")
		return 2
	}
	if err := s.Validate(); err != nil {
		fmt.Fprintf(stderr, "hedge eval: %v\n", err)
		return 2
	}
	ds, err := s.Load()
	if err != nil {
		fmt.Fprintf(stderr, "hedge eval: %v\n", err)
		return 1
	}
	bar, done := progressBar(stderr, s.Phase())
	r, err := s.Evaluate(ctx, ds, bar)
	done()
	if err != nil {
		fmt.Fprintf(stderr, "hedge eval: %v\n", err)
		return 1
	}
	if !*asJSON {
		evaluate.WriteTable(stdout, r, len(ds.Test), nil)
		return 0
	}
	out := map[string]any{
		"in_scope_accuracy": r.Target.InScopeAccuracy,
		"oos_recall":        r.Target.OOSRecall,
		"threshold":         r.Target.Threshold,
		"model_bytes":       r.ModelBytes,
		"classify_p50_us":   r.P50us,
		"classify_p99_us":   r.P99us,
		"coverage":          r.Target.Coverage,
		"larson":            r.Larson,
		"unthresholded":     r.Unthresholded,
		"encoder":           r.Encoder,
		"train_seconds":     r.TrainSeconds,
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return 1
	}
	return 0
}
