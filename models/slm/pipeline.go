package slm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Corpus is what a model is trained from: labelled utterances and, when
// OutOfScope is set, the label of the examples the device must not answer.
type Corpus struct {
	Labels     []string
	OutOfScope string
	Examples   []Example
	// Source identifies the corpus (the intents file's sha256) in the
	// manifest.
	Source string
}

// BuildOptions sets how Build trains.
type BuildOptions struct {
	Train TrainConfig
	// ValFraction of each label's examples is held out to calibrate the
	// confidence and pick the threshold (labels with fewer than 3 examples
	// keep all of them for training).
	ValFraction float64
	// Refit trains again on every example once the temperature and the
	// threshold are known, so that small intent sets lose no examples to
	// validation.
	Refit bool
	// Quantize stores the embedding tables as int8.
	Quantize bool
}

// DefaultBuildOptions is what hedge train and hedge run use.
func DefaultBuildOptions() BuildOptions {
	return BuildOptions{Train: DefaultTrainConfig(), ValFraction: 0.2, Refit: true, Quantize: true}
}

// BuildReport summarizes a Build for people.
type BuildReport struct {
	Examples, Validation int
	Accuracy, ECE        float64
	Temperature          float32
	Threshold            float64
	ThresholdRule        string
	ModelBytes           int
	Duration             time.Duration
}

// Build trains, calibrates and exports a model for the corpus: a stratified
// validation split, Train, FitTemperature on the held-out examples, a
// threshold (see PickThreshold), an optional refit on everything, Quantize
// and Export. The bundle is not saved; the result depends only on the
// corpus and the options.
func Build(ctx context.Context, c Corpus, o BuildOptions) (*Bundle, *Model, BuildReport, error) {
	start := time.Now()
	if len(c.Examples) == 0 || len(c.Labels) == 0 {
		return nil, nil, BuildReport{}, errors.New("build model: no examples")
	}
	train, val := Split(c.Examples, len(c.Labels), o.ValFraction, o.Train.Seed)
	m, err := Train(ctx, train, c.Labels, o.Train)
	if err != nil {
		return nil, nil, BuildReport{}, fmt.Errorf("build model: %w", err)
	}
	if o.Quantize {
		m.Quantize()
	}
	oos := -1
	for i, l := range c.Labels {
		if l == c.OutOfScope && l != "" {
			oos = i
		}
	}
	cal := Calibration{Temperature: 1, Threshold: 0.5, ThresholdRule: "default 0.5 (no validation examples)", Validation: len(val)}
	if len(val) > 0 {
		logits := make([][]float32, len(val))
		ys := make([]int, len(val))
		for i, e := range val {
			logits[i] = m.Logits(o.Train.Feat.Featurize(e.Text), nil)
			ys[i] = e.Label
		}
		cal.Temperature = FitTemperature(logits, ys)
		m.Temperature = cal.Temperature
		conf, correct, isOOS := make([]float64, len(val)), make([]bool, len(val)), make([]bool, len(val))
		var right int
		for i, e := range val {
			p := m.Predict(o.Train.Feat.Featurize(e.Text))
			best := argmax(p.Probs)
			conf[i] = float64(p.Probs[best])
			correct[i] = best == e.Label
			isOOS[i] = e.Label == oos
			if best == oos {
				conf[i] = 0 // rejected whatever the threshold
			}
			if correct[i] {
				right++
			}
		}
		cal.Accuracy = float64(right) / float64(len(val))
		cal.ECE = ECE(conf, correct, 10)
		cal.Threshold, cal.ThresholdRule = PickThreshold(conf, correct, isOOS)
	}
	if o.Refit && len(val) > 0 {
		m, err = Train(ctx, c.Examples, c.Labels, o.Train)
		if err != nil {
			return nil, nil, BuildReport{}, fmt.Errorf("build model: refit: %w", err)
		}
		if o.Quantize {
			m.Quantize()
		}
	}
	m.Temperature = cal.Temperature
	onnx, err := m.Export()
	if err != nil {
		return nil, nil, BuildReport{}, fmt.Errorf("build model: %w", err)
	}
	b := &Bundle{
		Model:       onnx,
		Labels:      Labels{Labels: c.Labels, OutOfScope: c.OutOfScope},
		Featurizer:  o.Train.Feat,
		Calibration: cal,
		Manifest:    Manifest{Source: c.Source, Seed: o.Train.Seed, Encoder: "compact"},
	}
	r := BuildReport{
		Examples: len(c.Examples), Validation: len(val), Accuracy: cal.Accuracy, ECE: cal.ECE,
		Temperature: cal.Temperature, Threshold: cal.Threshold, ThresholdRule: cal.ThresholdRule,
		ModelBytes: len(onnx), Duration: time.Since(start),
	}
	return b, m, r, nil
}

// PickThreshold picks the acceptance threshold from held-out predictions:
// with out-of-scope examples, the one maximizing in-scope accuracy plus
// out-of-scope recall (Larson et al. 2019); without, the 5th percentile of
// the confidence of correct predictions, so that about 95% of queries like
// the examples are accepted. Either way it stays within [0.2, 0.9].
func PickThreshold(conf []float64, correct, isOOS []bool) (float64, string) {
	var nIn, nOOS int
	var right []float64
	for i := range conf {
		if isOOS[i] {
			nOOS++
			continue
		}
		nIn++
		if correct[i] {
			right = append(right, conf[i])
		}
	}
	clamp := func(t float64) float64 { return min(max(t, 0.2), 0.9) }
	if nOOS == 0 || nIn == 0 {
		if len(right) == 0 {
			return 0.5, "default 0.5 (no correct validation predictions)"
		}
		return clamp(Quantile(right, 0.05)), "5th percentile of correct validation confidences"
	}
	best, bestT := -1.0, 0.5
	for _, t := range append([]float64{0}, conf...) {
		var acc, rej int
		for i, c := range conf {
			ok := c >= t && c > 0
			if isOOS[i] {
				if !ok {
					rej++
				}
			} else if ok && correct[i] {
				acc++
			}
		}
		v := float64(acc)/float64(nIn) + float64(rej)/float64(nOOS)
		if v > best || v == best && t < bestT {
			best, bestT = v, t
		}
	}
	return clamp(bestT), "max validation in-scope accuracy + out-of-scope recall"
}

// Split holds out about frac of each label's examples for validation,
// chosen by a seeded shuffle; labels with fewer than 3 examples keep all.
func Split(ex []Example, labels int, frac float64, seed uint64) (train, val []Example) {
	if frac <= 0 {
		return ex, nil
	}
	by := make([][]int, labels)
	for i, e := range ex {
		by[e.Label] = append(by[e.Label], i)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5b117))
	hold := make([]bool, len(ex))
	for _, idx := range by {
		if len(idx) < 3 {
			continue
		}
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		k := max(1, int(frac*float64(len(idx))+0.5))
		for _, i := range idx[:k] {
			hold[i] = true
		}
	}
	for i, e := range ex {
		if hold[i] {
			val = append(val, e)
		} else {
			train = append(train, e)
		}
	}
	return train, val
}

func argmax(v []float32) int {
	b := 0
	for i, x := range v {
		if x > v[b] {
			b = i
		}
	}
	return b
}
