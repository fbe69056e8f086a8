package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/hedge-edge/hedge/agent/intents"
)

// train is `hedge train --intents FILE --out DIR [--seed N]`.
func train(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("intents", "", `intents file ("" or "starter": the embedded starter set)`)
	out := fs.String("out", "", "directory to write the model to (required)")
	seed := fs.Uint64("seed", 1, "training seed: same intents and seed give a byte-identical model")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: hedge train --intents FILE --out DIR [--seed N]")
		return 2
	}
	path := *file
	if path == "starter" {
		path = ""
	}
	set, err := intents.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "hedge train: %v\n", err)
		return 1
	}
	bar, done := progressBar(stderr, "training")
	b, r, err := trainIntents(ctx, set, buildOptions(*seed), bar)
	done()
	if err != nil {
		fmt.Fprintf(stderr, "hedge train: %v\n", err)
		return 1
	}
	if err := b.Save(*out); err != nil {
		fmt.Fprintf(stderr, "hedge train: %v\n", err)
		return 1
	}
	labels, _ := set.Labels()
	fmt.Fprintf(stdout, "trained %d intents on %d examples in %s\n", len(set.File.Intents), r.Examples, r.Duration.Round(1e6))
	fmt.Fprintf(stdout, "validation: %d examples, accuracy %.1f%%, expected calibration error %.3f, temperature %.3f\n",
		r.Validation, 100*r.Accuracy, r.ECE, r.Temperature)
	fmt.Fprintf(stdout, "threshold:  %.3f (%s)\n", r.Threshold, r.ThresholdRule)
	fmt.Fprintf(stdout, "model:      %s, %d bytes, %d classes\n", *out, r.ModelBytes, len(labels))
	return 0
}
