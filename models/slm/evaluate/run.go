package evaluate

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/slm"
	"github.com/hedge-edge/hedge/models/slm/transformer"
)

// Options sets an evaluation.
type Options struct {
	Train slm.TrainConfig
	// Quantize stores the embedding tables as int8, as hedge train does.
	Quantize bool
	// OOSClass trains the out-of-scope training items as a class of their
	// own (Larson et al.'s oos-train); without it they are left out.
	OOSClass bool
	// MixNegatives adds that many synthetic out-of-scope training
	// examples (slm.MixNegatives) when OOSClass is set.
	MixNegatives int
	// MixShare is the soft target share of each source intent (0: hard
	// out-of-scope label).
	MixShare float32
	// TargetRecall R picks the reported threshold: the lowest whose
	// validation out-of-scope recall is at least R.
	TargetRecall float64
	// Runtime runs the exported model; its thread count is the latency's.
	Runtime *slm.Runtime
}

// DefaultOptions are hedge eval's settings: the default compact model,
// int8 tables, CLINC150's out-of-scope training items as a class plus 1,100
// soft chimeras (slm.MixNegatives), and R = 0.75. They were chosen on
// CLINC150 (docs/slm.md lists what was tried); the runtime is the caller's.
func DefaultOptions() Options {
	return Options{Train: slm.DefaultTrainConfig(), Quantize: true, OOSClass: true,
		MixNegatives: 1100, MixShare: 0.15, TargetRecall: 0.75}
}

// Report is an evaluation's result; rows are measured on the test split.
type Report struct {
	Encoder      string  `json:"encoder"`
	TargetRecall float64 `json:"target_oos_recall"`
	// Target is the row at the threshold picked for TargetRecall, Larson
	// the row at Larson et al.'s criterion, Unthresholded the row at 0.
	Target        Row     `json:"target"`
	Larson        Row     `json:"larson"`
	Unthresholded Row     `json:"unthresholded"`
	ModelBytes    int     `json:"model_bytes"`
	P50us         float64 `json:"classify_p50_us"`
	P99us         float64 `json:"classify_p99_us"`
	Threads       int     `json:"threads"`
	TrainSeconds  float64 `json:"train_seconds"`
	Temperature   float32 `json:"temperature"`
	ValECE        float64 `json:"validation_ece"`
	// Curve is the test split's threshold sweep, for the plots.
	Curve []Row `json:"-"`
}

// Run trains on ds.Train, calibrates and picks thresholds on ds.Val, and
// measures ds.Test through ONNX Runtime.
func Run(ctx context.Context, ds Dataset, o Options) (Report, error) {
	labels := slices.Clone(ds.Intents)
	oosLabel := ""
	if o.OOSClass {
		labels = append(labels, OOS)
		oosLabel = OOS
	}
	index := map[string]int{}
	for i, l := range labels {
		index[l] = i
	}
	examples := func(items []Item) []slm.Example {
		var ex []slm.Example
		for _, it := range items {
			if l, ok := index[it.Label]; ok {
				ex = append(ex, slm.Example{Text: it.Text, Label: l})
			}
		}
		return ex
	}
	start := time.Now()
	train := examples(ds.Train)
	if o.OOSClass && o.MixNegatives > 0 {
		train = append(train, slm.MixNegatives(train, index[OOS], o.MixNegatives, o.MixShare, o.Train.Seed)...)
	}
	m, err := slm.Train(ctx, train, labels, o.Train)
	if err != nil {
		return Report{}, fmt.Errorf("evaluate: %w", err)
	}
	if o.Quantize {
		m.Quantize()
	}
	val := examples(ds.Val)
	logits := make([][]float32, len(val))
	ys := make([]int, len(val))
	for i, e := range val {
		logits[i] = m.Logits(o.Train.Feat.Featurize(e.Text), nil)
		ys[i] = e.Label
	}
	m.Temperature = slm.FitTemperature(logits, ys)
	onnx, err := m.Export()
	if err != nil {
		return Report{}, fmt.Errorf("evaluate: %w", err)
	}
	r := Report{Encoder: "compact", TargetRecall: o.TargetRecall, ModelBytes: len(onnx), Threads: o.Runtime.Threads(),
		TrainSeconds: time.Since(start).Seconds(), Temperature: m.Temperature}
	b := &slm.Bundle{Dir: "(evaluation)", Model: onnx, Featurizer: o.Train.Feat,
		Labels: slm.Labels{Labels: labels, OutOfScope: oosLabel}}
	clf, err := o.Runtime.LoadClassifier(b)
	if err != nil {
		return Report{}, fmt.Errorf("evaluate: %w", err)
	}
	defer clf.Close()
	return measure(ctx, ds, clf, r)
}

// measure scores the validation and test splits with clf, picks the
// thresholds on validation and fills r's rows, curve and latency.
func measure(ctx context.Context, ds Dataset, clf agent.Classifier, r Report) (Report, error) {
	score := func(items []Item, lat *[]time.Duration) ([]Scored, error) {
		out := make([]Scored, 0, len(items))
		for _, it := range items {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t0 := time.Now()
			in, err := clf.Classify(ctx, it.Text)
			if lat != nil {
				*lat = append(*lat, time.Since(t0))
			}
			if err != nil {
				return nil, fmt.Errorf("evaluate: %w", err)
			}
			out = append(out, Scored{Gold: it.Label, Pred: in.Name, Conf: in.Confidence})
		}
		return out, nil
	}
	vs, err := score(ds.Val, nil)
	if err != nil {
		return Report{}, err
	}
	var lat []time.Duration
	ts, err := score(ds.Test, &lat)
	if err != nil {
		return Report{}, err
	}
	conf, correct := make([]float64, 0, len(vs)), make([]bool, 0, len(vs))
	for _, s := range vs {
		if s.Gold != OOS {
			conf = append(conf, s.Conf)
			correct = append(correct, s.Pred == s.Gold)
		}
	}
	r.ValECE = slm.ECE(conf, correct, 10)
	r.Target = At(ts, PickByRecall(vs, r.TargetRecall))
	r.Target.Name = fmt.Sprintf("val OOS recall ≥ %.2f", r.TargetRecall)
	r.Larson = At(ts, PickLarson(vs))
	r.Larson.Name = "Larson (max val acc + recall)"
	r.Unthresholded = At(ts, 0)
	r.Unthresholded.Name = "no threshold"
	r.Curve = Curve(ts)
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	r.P50us, r.P99us = q(0.50), q(0.99)
	return r, nil
}

// RunTransformer is Run for the transformer encoder: it embeds the
// training split with enc, trains the head (out-of-scope items as a class),
// fits its temperature on validation and measures through ONNX Runtime.
// The model bytes are the encoder's plus the head's.
func RunTransformer(ctx context.Context, ds Dataset, enc *transformer.Encoder, encoderBytes int, hc transformer.HeadConfig, o Options) (Report, error) {
	labels := append(slices.Clone(ds.Intents), OOS)
	index := map[string]int{}
	for i, l := range labels {
		index[l] = i
	}
	start := time.Now()
	embed := func(items []Item) ([][]float32, []int, error) {
		xs, ys := make([][]float32, 0, len(items)), make([]int, 0, len(items))
		for i, it := range items {
			v, err := enc.Embed(ctx, it.Text)
			if err != nil {
				return nil, nil, fmt.Errorf("evaluate: %w", err)
			}
			xs, ys = append(xs, v), append(ys, index[it.Label])
			if o.Train.Progress != nil {
				o.Train.Progress(i+1, len(items))
			}
		}
		return xs, ys, nil
	}
	xs, ys, err := embed(ds.Train)
	if err != nil {
		return Report{}, err
	}
	hd, err := transformer.TrainHead(ctx, xs, ys, len(labels), hc)
	if err != nil {
		return Report{}, fmt.Errorf("evaluate: %w", err)
	}
	vx, vy, err := embed(ds.Val)
	if err != nil {
		return Report{}, err
	}
	logits := make([][]float32, len(vx))
	for i, x := range vx {
		logits[i] = hd.Logits(x)
	}
	hd.Temperature = slm.FitTemperature(logits, vy)
	model := hd.Export()
	b := &slm.Bundle{Dir: "(evaluation)", Model: model, Labels: slm.Labels{Labels: labels, OutOfScope: OOS},
		Manifest: slm.Manifest{Encoder: "transformer"}}
	clf, err := transformer.LoadClassifier(o.Runtime, enc, b)
	if err != nil {
		return Report{}, fmt.Errorf("evaluate: %w", err)
	}
	defer clf.Close()
	r := Report{Encoder: "transformer", TargetRecall: o.TargetRecall, ModelBytes: encoderBytes + len(model), Threads: o.Runtime.Threads(),
		TrainSeconds: time.Since(start).Seconds(), Temperature: hd.Temperature}
	return measure(ctx, ds, clf, r)
}
