package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/intents"
	"github.com/hedge-edge/hedge/models/slm"
	"github.com/hedge-edge/hedge/models/slm/transformer"
	"github.com/hedge-edge/hedge/platform"
)

// wireSLM opens the SLM tier: the intents file, ONNX Runtime, and the
// model trained on the intents (trained and saved under
// <model_dir>/<key>/ first when absent). pub performs intent actions (nil:
// action intents reply that MQTT is not configured). A disabled tier
// returns nil tiers and a closeFn that does nothing.
func wireSLM(ctx context.Context, cfg config.Config, log *slog.Logger, pub agent.Publisher) (clf agent.Classifier, sk agent.Skills, version string, closeFn func() error, err error) {
	noop := func() error { return nil }
	if !cfg.SLM.Enabled {
		return nil, nil, "", noop, nil
	}
	log = log.With("component", "slm")
	set, err := intents.Load(cfg.SLM.Intents)
	if err != nil {
		return nil, nil, "", noop, fmt.Errorf("slm: %w", err)
	}
	lib, err := slm.FindLibrary(cfg.SLM.RuntimeLibrary)
	if err != nil {
		return nil, nil, "", noop, fmt.Errorf("slm: %w", err)
	}
	// The device is read at most once a second: a reading costs more than
	// the rest of an intent answer, and an answer that names the time
	// still gets the time of the call.
	deviceFacts := platform.NewFactsCache("/", time.Second)
	facts := func() map[string]string { return deviceFacts.Facts().Template() }
	threads := cfg.SLM.Threads
	switch {
	case threads != 0:
	case cfg.SLM.Encoder == "transformer":
		f, _ := platform.Detect("/")
		threads = f.DefaultThreads()
	default:
		// The compact model's ops are too small to split: a second
		// intra-op thread only spins on a core that the transport's
		// workers need (at 2,000 MQTT queries a second it took nearly
		// half of hedge's CPU). Queries still run in parallel, one per
		// worker.
		threads = 1
	}
	rt, err := slm.OpenRuntime(lib, threads)
	if err != nil {
		return nil, nil, "", noop, fmt.Errorf("slm: %w", err)
	}
	base := cfg.SLM.ModelDir
	if base == "" {
		base = filepath.Join(cfg.StateDir, "slm")
	}
	if cfg.SLM.Encoder == "transformer" {
		c, version, closeFn, err := wireTransformer(ctx, cfg, set, rt, base, log)
		if err != nil {
			rt.Close()
			return nil, nil, "", noop, fmt.Errorf("slm: %w", err)
		}
		return c, intents.NewSkills(set, facts, pub), version, func() error { return errors.Join(closeFn(), rt.Close()) }, nil
	}
	opts := buildOptions(cfg.SLM.Seed)
	key := modelKey(set, opts)
	dir := filepath.Join(base, key)
	b, err := slm.LoadBundle(dir)
	if errors.Is(err, slm.ErrNoModel) {
		log.Info("training intent model", "intents", intentsName(cfg.SLM.Intents), "dir", dir)
		var r slm.BuildReport
		b, r, err = trainIntents(ctx, set, opts, nil)
		if err == nil {
			err = b.Save(dir)
		}
		if err == nil {
			log.Info("intent model trained", "examples", r.Examples, "validation_accuracy", fmt.Sprintf("%.3f", r.Accuracy),
				"threshold", fmt.Sprintf("%.3f", r.Threshold), "bytes", r.ModelBytes, "took", r.Duration.Round(1e6))
		}
	}
	if err != nil {
		rt.Close()
		if errors.Is(err, slm.ErrCorruptModel) {
			err = fmt.Errorf("%w; delete %s to retrain it", err, dir)
		}
		return nil, nil, "", noop, fmt.Errorf("slm: %w", err)
	}
	c, err := rt.LoadClassifier(b)
	if err != nil {
		rt.Close()
		return nil, nil, "", noop, fmt.Errorf("slm: %w", err)
	}
	log.Info("intent model loaded", "intents", len(set.File.Intents), "library", lib, "threads", threads)
	closeFn = func() error { return errors.Join(c.Close(), rt.Close()) }
	return c, intents.NewSkills(set, facts, pub), "compact-" + key[:12], closeFn, nil
}

func intentsName(path string) string {
	if path == "" {
		return "starter set"
	}
	return path
}

// buildOptions are the training settings of hedge run and hedge train.
func buildOptions(seed uint64) slm.BuildOptions {
	o := slm.DefaultBuildOptions()
	o.Train.Seed = seed
	return o
}

// modelKey names the model of an intents file: the file's hash and every
// training setting, so that changing either trains a new model.
func modelKey(set *intents.Set, o slm.BuildOptions) string {
	h := sha256.New()
	io.WriteString(h, slm.ManifestFormat+"\x00"+set.Hash+"\x00")
	cfg, err := json.Marshal(o)
	if err != nil {
		// The options are plain data (Progress is not encoded); a field
		// that cannot be encoded is a programming error.
		panic("slm: build options: " + err.Error())
	}
	h.Write(cfg)
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// trainIntents builds the compact model of an intents set.
func trainIntents(ctx context.Context, set *intents.Set, o slm.BuildOptions, progress func(done, total int)) (*slm.Bundle, slm.BuildReport, error) {
	labels, oos := set.Labels()
	texts, ys := set.Examples()
	c := slm.Corpus{Labels: labels, OutOfScope: oos, Source: set.Hash}
	for i, t := range texts {
		c.Examples = append(c.Examples, slm.Example{Text: t, Label: ys[i]})
	}
	o.Train.Progress = progress
	b, _, r, err := slm.Build(ctx, c, o)
	return b, r, err
}

// progressBar draws a bar on w (stderr) for long work: redrawn in place on
// a terminal, a line per 10 % otherwise (logs, CI).
func progressBar(w io.Writer, what string) (update func(done, total int), finish func()) {
	tty := isTerminal(w)
	step := 1
	if !tty {
		step = 10
	}
	last := -1
	update = func(done, total int) {
		if total <= 0 {
			return
		}
		pct := done * 100 / total / step * step
		if pct == last {
			return
		}
		last = pct
		if !tty {
			fmt.Fprintf(w, "%s %3d%%\n", what, pct)
			return
		}
		const width = 30
		n := pct * width / 100
		fmt.Fprintf(w, "\r%s [%-*s] %3d%%", what, width, strings.Repeat("#", n), pct)
	}
	finish = func() {
		if tty && last >= 0 {
			fmt.Fprintln(w)
		}
	}
	return update, finish
}

// wireTransformer loads the configured encoder and the head trained on the
// intents for it (training and saving it first when absent).
func wireTransformer(ctx context.Context, cfg config.Config, set *intents.Set, rt *slm.Runtime, base string, log *slog.Logger) (agent.Classifier, string, func() error, error) {
	tc := cfg.SLM.Transformer
	enc, err := transformer.LoadEncoder(rt, tc.Model, tc.Tokenizer, tc.MaxLength)
	if err != nil {
		return nil, "", nil, err
	}
	h := sha256.New()
	for _, p := range []string{tc.Model, tc.Tokenizer} {
		f, err := os.Open(p)
		if err != nil {
			enc.Close()
			return nil, "", nil, err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			enc.Close()
			return nil, "", nil, fmt.Errorf("hash %s: %w", p, err)
		}
	}
	encSum := hex.EncodeToString(h.Sum(nil))
	hc := transformer.DefaultHeadConfig()
	hc.Seed = cfg.SLM.Seed
	k := sha256.New()
	fmt.Fprintf(k, "%s\x00transformer\x00%s\x00%s\x00%d\x00%+v", slm.ManifestFormat, set.Hash, encSum, tc.MaxLength, hc)
	key := "tf-" + hex.EncodeToString(k.Sum(nil))[:21]
	dir := filepath.Join(base, key)
	b, err := slm.LoadBundle(dir)
	if errors.Is(err, slm.ErrNoModel) {
		log.Info("training intent head on the transformer encoder", "intents", intentsName(cfg.SLM.Intents), "dir", dir)
		labels, oos := set.Labels()
		texts, ys := set.Examples()
		c := slm.Corpus{Labels: labels, OutOfScope: oos, Source: set.Hash}
		for i, t := range texts {
			c.Examples = append(c.Examples, slm.Example{Text: t, Label: ys[i]})
		}
		b, _, _, err = transformer.Build(ctx, enc, c, 0.2, hc)
		if err == nil {
			b.Manifest.EncoderModel = encSum
			err = b.Save(dir)
		}
	}
	if err != nil {
		enc.Close()
		if errors.Is(err, slm.ErrCorruptModel) {
			err = fmt.Errorf("%w; delete %s to retrain it", err, dir)
		}
		return nil, "", nil, err
	}
	clf, err := transformer.LoadClassifier(rt, enc, b)
	if err != nil {
		enc.Close()
		return nil, "", nil, err
	}
	log.Info("intent model loaded", "encoder", "transformer", "model", tc.Model, "intents", len(set.File.Intents))
	return clf, key, func() error { return errors.Join(clf.Close(), enc.Close()) }, nil
}
