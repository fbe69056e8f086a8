package evaluate

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hedge-edge/hedge/models/slm"
	"github.com/hedge-edge/hedge/models/slm/transformer"
)

// Setup is an evaluation as a command line names it: the data set, the
// encoder and the training settings. hedge eval and hedge-bench eval both
// take it and run it with Evaluate, so the figures `make bench` reports are
// those of the pipeline hedge train and hedge run use.
type Setup struct {
	Data, Format string
	// Encoder is compact or transformer; the transformer needs
	// EncoderModel and Tokenizer.
	Encoder      string
	TargetRecall float64
	// RuntimeLibrary is ONNX Runtime's shared library ("": slm.FindLibrary's
	// default places).
	RuntimeLibrary string
	Seed           uint64
	// Members is the ensemble's size (0: the default), Mix the synthetic
	// out-of-scope training examples (-1: the default).
	Members, Mix            int
	EncoderModel, Tokenizer string
	MaxLength               int
}

// AddFlags defines the setup's flags on fs, with their defaults.
func (s *Setup) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Data, "data", "", "labelled data set (CLINC150's data_full.json)")
	fs.StringVar(&s.Format, "format", "clinc150", "data set format: clinc150")
	fs.StringVar(&s.Encoder, "encoder", "compact", "encoder: compact or transformer")
	fs.Float64Var(&s.TargetRecall, "target-oos-recall", 0.75, "pick the lowest threshold whose validation out-of-scope recall is at least R")
	fs.StringVar(&s.RuntimeLibrary, "runtime-library", os.Getenv("HEDGE_SLM_RUNTIME_LIBRARY"), "ONNX Runtime shared library (default: beside the binary, then the fetch-ort cache)")
	fs.Uint64Var(&s.Seed, "seed", 1, "training seed")
	fs.IntVar(&s.Members, "members", 0, "ensemble members (0: the default)")
	fs.IntVar(&s.Mix, "mix", -1, "synthetic out-of-scope training examples (slm.MixNegatives; -1: the default)")
	fs.StringVar(&s.EncoderModel, "encoder-model", "", "transformer encoder ONNX file (--encoder transformer)")
	fs.StringVar(&s.Tokenizer, "tokenizer", "", "the encoder's tokenizer.json (--encoder transformer)")
	fs.IntVar(&s.MaxLength, "max-length", 64, "tokens per text for the transformer encoder")
}

// Validate reports the first flag that cannot work, naming it; it opens
// nothing.
func (s Setup) Validate() error {
	if s.Data == "" {
		return errors.New("--data: no data set")
	}
	if s.Format != "clinc150" {
		return fmt.Errorf("format %q: only clinc150 is supported", s.Format)
	}
	switch s.Encoder {
	case "compact":
	case "transformer":
		if s.EncoderModel == "" || s.Tokenizer == "" {
			return errors.New("--encoder transformer needs --encoder-model FILE.onnx and --tokenizer tokenizer.json")
		}
	default:
		return fmt.Errorf("--encoder %q: must be compact or transformer", s.Encoder)
	}
	if s.TargetRecall <= 0 || s.TargetRecall > 1 {
		return fmt.Errorf("--target-oos-recall %v: must be in (0, 1]", s.TargetRecall)
	}
	return nil
}

// Load reads the setup's data set.
func (s Setup) Load() (Dataset, error) {
	return LoadCLINC150(s.Data)
}

// Phase names what Evaluate's progress counts: training the compact
// model, or embedding the texts with the transformer.
func (s Setup) Phase() string {
	if s.Encoder == "transformer" {
		return "embedding"
	}
	return "training"
}

// Evaluate opens ONNX Runtime with one intra-op thread (the latency
// reported is a single core's), trains on ds with DefaultOptions and the
// setup's changes to them, and measures the test split. progress, when
// set, is called as training (or embedding) goes.
func (s Setup) Evaluate(ctx context.Context, ds Dataset, progress func(done, total int)) (Report, error) {
	path, err := slm.FindLibrary(s.RuntimeLibrary)
	if err != nil {
		return Report{}, err
	}
	rt, err := slm.OpenRuntime(path, 1)
	if err != nil {
		return Report{}, err
	}
	defer rt.Close()
	o := DefaultOptions()
	o.TargetRecall, o.Runtime = s.TargetRecall, rt
	if s.Mix >= 0 {
		o.MixNegatives = s.Mix
	}
	o.Train.Seed = s.Seed
	if s.Members > 0 {
		o.Train.Members = s.Members
	}
	o.Train.Progress = progress
	if s.Encoder != "transformer" {
		return Run(ctx, ds, o)
	}
	enc, err := transformer.LoadEncoder(rt, s.EncoderModel, s.Tokenizer, s.MaxLength)
	if err != nil {
		return Report{}, err
	}
	defer enc.Close()
	st, err := os.Stat(s.EncoderModel)
	if err != nil {
		return Report{}, err
	}
	hc := transformer.DefaultHeadConfig()
	hc.Seed = s.Seed
	return RunTransformer(ctx, ds, enc, int(st.Size()), hc, o)
}

// WriteTable prints r as a table: a row per threshold rule, then extra
// rows (a baseline's on the same splits), then the model's size, latency
// and calibration. tested is the number of test items.
func WriteTable(w io.Writer, r Report, tested int, extra []Row) {
	fmt.Fprintf(w, "hedge %s on CLINC150 test (%d in-scope + out-of-scope items); threshold picked on validation\n", r.Encoder, tested)
	fmt.Fprintf(w, "%-44s %9s %9s %9s %9s\n", "threshold rule", "threshold", "in-scope", "oos rec.", "coverage")
	rows := []Row{r.Target, r.Larson, r.Unthresholded}
	for i := range rows {
		rows[i].Name = "hedge " + r.Encoder + ": " + rows[i].Name
	}
	for _, row := range append(rows, extra...) {
		fmt.Fprintf(w, "%-44s %9.3f %8.1f%% %8.1f%% %8.1f%%\n", row.Name, row.Threshold, 100*row.InScopeAccuracy, 100*row.OOSRecall, 100*row.Coverage)
	}
	fmt.Fprintf(w, "model %.2f MB; classify p50 %.0f µs, p99 %.0f µs on %d thread; trained in %.0f s; temperature %.3f, validation ECE %.3f\n",
		float64(r.ModelBytes)/1e6, r.P50us, r.P99us, r.Threads, r.TrainSeconds, r.Temperature, r.ValECE)
}
