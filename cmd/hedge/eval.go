package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hedge-edge/hedge/models/slm"
	"github.com/hedge-edge/hedge/models/slm/evaluate"
	"github.com/hedge-edge/hedge/models/slm/transformer"
)

// eval is `hedge eval --data FILE --format clinc150 [--encoder
// compact|transformer] [--target-oos-recall R] [--plot FILE.png] [--json]`.
func eval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "labelled data set (CLINC150's data_full.json)")
	format := fs.String("format", "clinc150", "data set format: clinc150")
	encoder := fs.String("encoder", "compact", "encoder: compact or transformer")
	target := fs.Float64("target-oos-recall", 0.75, "pick the lowest threshold whose validation out-of-scope recall is at least R")
	plotPath := fs.String("plot", "", "write the risk–coverage and accuracy/recall curves to this PNG")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	lib := fs.String("runtime-library", os.Getenv("HEDGE_SLM_RUNTIME_LIBRARY"), "ONNX Runtime shared library (default: beside hedge, then the fetch-ort cache)")
	seed := fs.Uint64("seed", 1, "training seed")
	members := fs.Int("members", 0, "ensemble members (0: the default)")
	mix := fs.Int("mix", -1, "synthetic out-of-scope training examples (slm.MixNegatives; -1: the default)")
	encModel := fs.String("encoder-model", "", "transformer encoder ONNX file (--encoder transformer)")
	encTok := fs.String("tokenizer", "", "the encoder's tokenizer.json (--encoder transformer)")
	maxLen := fs.Int("max-length", 64, "tokens per text for the transformer encoder")
	writeFT := fs.String("write-fasttext", "", "write the splits in fastText's format to this directory and exit (make bench)")
	ftVal := fs.String("baseline-val", "", "fastText predict-prob output for the validation texts, to print a baseline row (make bench)")
	ftTest := fs.String("baseline-test", "", "fastText predict-prob output for the test texts")
	ftBytes := fs.Int64("baseline-bytes", 0, "the baseline model's size in bytes")
	jsonFile := fs.String("json-file", "", "also write the whole result, with the baseline rows, as JSON to this file (make bench)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *data == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: hedge eval --data FILE --format clinc150 [--encoder compact|transformer] [--target-oos-recall R] [--plot FILE.png] [--json]")
		return 2
	}
	if *format != "clinc150" {
		fmt.Fprintf(stderr, "hedge eval: format %q: only clinc150 is supported\n", *format)
		return 2
	}
	switch *encoder {
	case "compact":
	case "transformer":
		if *encModel == "" || *encTok == "" {
			fmt.Fprintln(stderr, "hedge eval: --encoder transformer needs --encoder-model FILE.onnx and --tokenizer tokenizer.json")
			return 2
		}
	default:
		fmt.Fprintf(stderr, "hedge eval: --encoder %q: must be compact or transformer\n", *encoder)
		return 2
	}
	if *target <= 0 || *target > 1 {
		fmt.Fprintf(stderr, "hedge eval: --target-oos-recall %v: must be in (0, 1]\n", *target)
		return 2
	}
	ds, err := evaluate.LoadCLINC150(*data)
	if err != nil {
		fmt.Fprintf(stderr, "hedge eval: %v\n", err)
		return 1
	}
	if *writeFT != "" {
		if err := evaluate.WriteFastText(ds, *writeFT); err != nil {
			fmt.Fprintf(stderr, "hedge eval: %v\n", err)
			return 1
		}
		return 0
	}
	var baseline []evaluate.Row
	if (*ftVal == "") != (*ftTest == "") {
		fmt.Fprintln(stderr, "hedge eval: --baseline-val and --baseline-test go together")
		return 2
	}
	if *ftVal != "" {
		baseline, err = readBaseline(ds, *ftVal, *ftTest, *target)
		if err != nil {
			fmt.Fprintf(stderr, "hedge eval: %v\n", err)
			return 1
		}
	}
	path, err := slm.FindLibrary(*lib)
	if err != nil {
		fmt.Fprintf(stderr, "hedge eval: %v\n", err)
		return 1
	}
	// One intra-op thread: the latency reported is a single core's.
	rt, err := slm.OpenRuntime(path, 1)
	if err != nil {
		fmt.Fprintf(stderr, "hedge eval: %v\n", err)
		return 1
	}
	defer rt.Close()
	o := evaluate.DefaultOptions()
	o.TargetRecall, o.Runtime = *target, rt
	if *mix >= 0 {
		o.MixNegatives = *mix
	}
	o.Train.Seed = *seed
	if *members > 0 {
		o.Train.Members = *members
	}
	var r evaluate.Report
	if *encoder == "transformer" {
		enc, err := transformer.LoadEncoder(rt, *encModel, *encTok, *maxLen)
		if err != nil {
			fmt.Fprintf(stderr, "hedge eval: %v\n", err)
			return 1
		}
		defer enc.Close()
		st, err := os.Stat(*encModel)
		if err != nil {
			fmt.Fprintf(stderr, "hedge eval: %v\n", err)
			return 1
		}
		bar, done := progressBar(stderr, "embedding")
		o.Train.Progress = bar
		hc := transformer.DefaultHeadConfig()
		hc.Seed = *seed
		r, err = evaluate.RunTransformer(ctx, ds, enc, int(st.Size()), hc, o)
		done()
		if err != nil {
			fmt.Fprintf(stderr, "hedge eval: %v\n", err)
			return 1
		}
	} else {
		bar, done := progressBar(stderr, "training")
		o.Train.Progress = bar
		r, err = evaluate.Run(ctx, ds, o)
		done()
	}
	if err != nil {
		fmt.Fprintf(stderr, "hedge eval: %v\n", err)
		return 1
	}
	if *plotPath != "" {
		if err := evaluate.Plot(r, *plotPath); err != nil {
			fmt.Fprintf(stderr, "hedge eval: %v\n", err)
			return 1
		}
	}
	if *jsonFile != "" {
		b, _ := json.MarshalIndent(evalJSON{Hedge: r, Baseline: baseline, BaselineBytes: *ftBytes}, "", "  ")
		if err := os.WriteFile(*jsonFile, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "hedge eval: %v\n", err)
			return 1
		}
	}
	if *asJSON {
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
	fmt.Fprintf(stdout, "hedge %s on CLINC150 test (%d in-scope + out-of-scope items); threshold picked on validation\n", r.Encoder, len(ds.Test))
	fmt.Fprintf(stdout, "%-44s %9s %9s %9s %9s\n", "threshold rule", "threshold", "in-scope", "oos rec.", "coverage")
	rows := []evaluate.Row{r.Target, r.Larson, r.Unthresholded}
	for i := range rows {
		rows[i].Name = "hedge " + r.Encoder + ": " + rows[i].Name
	}
	for _, row := range append(rows, baseline...) {
		fmt.Fprintf(stdout, "%-44s %9.3f %8.1f%% %8.1f%% %8.1f%%\n", row.Name, row.Threshold, 100*row.InScopeAccuracy, 100*row.OOSRecall, 100*row.Coverage)
	}
	fmt.Fprintf(stdout, "model %.2f MB; classify p50 %.0f µs, p99 %.0f µs on %d thread; trained in %.0f s; temperature %.3f, validation ECE %.3f\n",
		float64(r.ModelBytes)/1e6, r.P50us, r.P99us, r.Threads, r.TrainSeconds, r.Temperature, r.ValECE)
	if *ftBytes > 0 {
		fmt.Fprintf(stdout, "baseline model %.2f MB\n", float64(*ftBytes)/1e6)
	}
	if *plotPath != "" {
		fmt.Fprintf(stdout, "plot: %s\n", *plotPath)
	}
	return 0
}

// evalJSON is what --json-file writes: hedge's evaluation and the
// baseline's rows on the same splits (hedge bench report reads it).
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
