package transformer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/slm"
)

// Build embeds the corpus with the encoder, trains the head on a split,
// calibrates its temperature and picks the threshold on the held-out part
// (as slm.Build does for the compact model), refits on everything and
// returns the head as a bundle.
func Build(ctx context.Context, enc *Encoder, c slm.Corpus, valFraction float64, cfg HeadConfig) (*slm.Bundle, *Head, slm.BuildReport, error) {
	start := time.Now()
	if len(c.Examples) == 0 {
		return nil, nil, slm.BuildReport{}, errors.New("build head: no examples")
	}
	vecs := make(map[string][]float32, len(c.Examples))
	embed := func(ex []slm.Example) ([][]float32, []int, error) {
		xs := make([][]float32, len(ex))
		ys := make([]int, len(ex))
		for i, e := range ex {
			v, ok := vecs[e.Text]
			if !ok {
				var err error
				if v, err = enc.Embed(ctx, e.Text); err != nil {
					return nil, nil, err
				}
				vecs[e.Text] = v
			}
			xs[i], ys[i] = v, e.Label
		}
		return xs, ys, nil
	}
	oos := slices.Index(c.Labels, c.OutOfScope)
	if c.OutOfScope == "" {
		oos = -1
	}
	train, val := slm.Split(c.Examples, len(c.Labels), valFraction, cfg.Seed)
	xs, ys, err := embed(train)
	if err != nil {
		return nil, nil, slm.BuildReport{}, fmt.Errorf("build head: %w", err)
	}
	hd, err := TrainHead(ctx, xs, ys, len(c.Labels), cfg)
	if err != nil {
		return nil, nil, slm.BuildReport{}, err
	}
	cal := slm.Calibration{Temperature: 1, Threshold: 0.5, ThresholdRule: "default 0.5 (no validation examples)", Validation: len(val)}
	if len(val) > 0 {
		vx, vy, err := embed(val)
		if err != nil {
			return nil, nil, slm.BuildReport{}, fmt.Errorf("build head: %w", err)
		}
		logits := make([][]float32, len(vx))
		for i, x := range vx {
			logits[i] = hd.Logits(x)
		}
		hd.Temperature = slm.FitTemperature(logits, vy)
		cal.Temperature = hd.Temperature
		conf, correct, isOOS := make([]float64, len(vx)), make([]bool, len(vx)), make([]bool, len(vx))
		var right int
		for i, x := range vx {
			p := hd.Probs(x)
			best := 0
			for k := range p {
				if p[k] > p[best] {
					best = k
				}
			}
			conf[i], correct[i], isOOS[i] = float64(p[best]), best == vy[i], vy[i] == oos
			if best == oos {
				conf[i] = 0
			}
			if correct[i] {
				right++
			}
		}
		cal.Accuracy = float64(right) / float64(len(vx))
		cal.ECE = slm.ECE(conf, correct, 10)
		cal.Threshold, cal.ThresholdRule = slm.PickThreshold(conf, correct, isOOS)
		all, ally, err := embed(c.Examples)
		if err != nil {
			return nil, nil, slm.BuildReport{}, fmt.Errorf("build head: %w", err)
		}
		if hd, err = TrainHead(ctx, all, ally, len(c.Labels), cfg); err != nil {
			return nil, nil, slm.BuildReport{}, err
		}
		hd.Temperature = cal.Temperature
	}
	model := hd.Export()
	b := &slm.Bundle{Model: model, Labels: slm.Labels{Labels: c.Labels, OutOfScope: c.OutOfScope}, Calibration: cal,
		Manifest: slm.Manifest{Source: c.Source, Seed: cfg.Seed, Encoder: "transformer"}}
	r := slm.BuildReport{Examples: len(c.Examples), Validation: len(val), Accuracy: cal.Accuracy, ECE: cal.ECE,
		Temperature: cal.Temperature, Threshold: cal.Threshold, ThresholdRule: cal.ThresholdRule, ModelBytes: len(model),
		Duration: time.Since(start)}
	return b, hd, r, nil
}

// Classifier is an encoder and a trained head, both in ONNX Runtime. It is
// safe for concurrent use.
type Classifier struct {
	enc       *Encoder
	head      *slm.Session
	labels    []string
	oos       int
	threshold float64
}

var _ agent.Classifier = (*Classifier)(nil)

// LoadClassifier creates the head's session for a bundle built by Build
// with the same encoder.
func LoadClassifier(rt *slm.Runtime, enc *Encoder, b *slm.Bundle) (*Classifier, error) {
	s, err := rt.NewSession(b.Model, []string{InputPooled}, []string{OutputProbs})
	if err != nil {
		return nil, fmt.Errorf("load head %s: %w", b.Dir, err)
	}
	c := &Classifier{enc: enc, head: s, labels: b.Labels.Labels, oos: -1, threshold: b.Calibration.Threshold}
	if b.Labels.OutOfScope != "" {
		c.oos = slices.Index(c.labels, b.Labels.OutOfScope)
	}
	probs, _, err := c.Run(context.Background(), "hello")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("load head %s: probe: %w", b.Dir, err)
	}
	if len(probs) != len(c.labels) {
		s.Close()
		return nil, fmt.Errorf("load head %s: %w: %d classes, %d labels", b.Dir, slm.ErrCorruptModel, len(probs), len(c.labels))
	}
	return c, nil
}

// Close frees the head's session (not the encoder's).
func (c *Classifier) Close() error { return c.head.Close() }

// Run returns text's calibrated probabilities and pooled vector.
func (c *Classifier) Run(ctx context.Context, text string) (probs, pooled []float32, err error) {
	pooled, err = c.enc.Embed(ctx, text)
	if err != nil {
		return nil, nil, fmt.Errorf("classify: %w", err)
	}
	in, err := ort.NewTensor(ort.NewShape(1, int64(len(pooled))), pooled)
	if err != nil {
		return nil, nil, fmt.Errorf("classify: %w", err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil}
	if err := c.head.Run([]ort.Value{in}, outs); err != nil {
		return nil, nil, fmt.Errorf("classify: onnx runtime: %w", err)
	}
	defer outs[0].Destroy()
	p, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, nil, fmt.Errorf("classify: %w: output is not a float tensor", slm.ErrCorruptModel)
	}
	return slices.Clone(p.GetData()), pooled, nil
}

// Classify returns text's intent (see slm.MakeIntent).
func (c *Classifier) Classify(ctx context.Context, text string) (agent.Intent, error) {
	probs, pooled, err := c.Run(ctx, text)
	if err != nil {
		return agent.Intent{}, err
	}
	return slm.MakeIntent(c.labels, c.oos, c.threshold, probs, slices.Clone(pooled)), nil
}
