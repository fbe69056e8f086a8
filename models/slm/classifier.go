package slm

import (
	"context"
	"fmt"
	"math"
	"slices"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/hedge-edge/hedge/agent"
)

// Classifier is a trained compact model running in ONNX Runtime. It is
// safe for concurrent use: each call has its own tensors and the session is
// shared.
type Classifier struct {
	sess      *Session
	feat      Featurizer
	labels    []string
	oos       int // index of the out-of-scope class, -1 if none
	threshold float64
	hidden    int

	// spare holds output tensors of finished calls for the next ones:
	// ONNX Runtime writes into them instead of allocating outputs that
	// then have to be wrapped for Go and destroyed, on every query. The
	// outputs' shapes do not depend on the text. Bounded, so that a burst
	// of concurrent calls does not keep its tensors forever.
	spare                   chan outputs
	probsShape, hiddenShape ort.Shape
}

// outputs are the tensors of one call's outputs.
type outputs struct{ probs, hidden *ort.Tensor[float32] }

// spareOutputs bounds Classifier.spare: more than the transports' workers
// rarely classify at once.
const spareOutputs = 16

var _ agent.Classifier = (*Classifier)(nil)

// LoadClassifier creates the ONNX Runtime session of a verified bundle.
// The session is created once here and reused by every Classify.
func (r *Runtime) LoadClassifier(b *Bundle) (*Classifier, error) {
	s, err := r.NewSession(b.Model, []string{InputIndices, InputWeights}, []string{OutputProbs, OutputHidden})
	if err != nil {
		return nil, fmt.Errorf("load classifier %s: %w", b.Dir, err)
	}
	c := &Classifier{sess: s, feat: b.Featurizer, labels: b.Labels.Labels, oos: -1, threshold: b.Calibration.Threshold}
	if b.Labels.OutOfScope != "" {
		c.oos = slices.Index(c.labels, b.Labels.OutOfScope)
	}
	// One probe query checks that the graph's outputs have the shapes the
	// labels promise: a model and labels.json from different trainings
	// fail here, at startup, not on the first query.
	probs, hid, err := c.Run("hello")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("load classifier %s: probe: %w", b.Dir, err)
	}
	if len(probs) != len(c.labels) {
		s.Close()
		return nil, fmt.Errorf("load classifier %s: %w: the model has %d classes, %s lists %d", b.Dir, ErrCorruptModel, len(probs), FileLabels, len(c.labels))
	}
	c.hidden = len(hid)
	c.spare = make(chan outputs, spareOutputs)
	// The probe's outputs had these shapes; a graph whose outputs have
	// others fails here, not on the first query.
	if _, _, err := c.Run("hello"); err != nil {
		c.Close()
		return nil, fmt.Errorf("load classifier %s: probe with preallocated outputs: %w", b.Dir, err)
	}
	return c, nil
}

// Close frees the session and the spare output tensors. No call may be
// running.
func (c *Classifier) Close() error {
	if c.spare != nil {
	drain:
		for {
			select {
			case o := <-c.spare:
				o.destroy()
			default:
				break drain
			}
		}
	}
	return c.sess.Close()
}

func (o outputs) destroy() {
	o.probs.Destroy()
	o.hidden.Destroy()
}

// takeOutputs returns spare output tensors or new ones; ok is false
// before the shapes are known (the probe), when ONNX Runtime allocates.
func (c *Classifier) takeOutputs() (o outputs, ok bool, err error) {
	if c.spare == nil {
		return outputs{}, false, nil
	}
	select {
	case o = <-c.spare:
		return o, true, nil
	default:
	}
	if o.probs, err = ort.NewEmptyTensor[float32](c.probsShape); err != nil {
		return outputs{}, false, err
	}
	if o.hidden, err = ort.NewEmptyTensor[float32](c.hiddenShape); err != nil {
		o.probs.Destroy()
		return outputs{}, false, err
	}
	return o, true, nil
}

// giveOutputs keeps o for a later call, or destroys it when enough are
// kept.
func (c *Classifier) giveOutputs(o outputs) {
	select {
	case c.spare <- o:
	default:
		o.destroy()
	}
}

// Labels returns the class labels in output order.
func (c *Classifier) Labels() []string { return c.labels }

// Run returns the calibrated class probabilities of text and its hidden
// vector, computed by ONNX Runtime.
func (c *Classifier) Run(text string) (probs, hidden []float32, err error) {
	f := c.feat.Featurize(text)
	n := int64(len(f.Index))
	idx := make([]int64, n)
	for i, r := range f.Index {
		idx[i] = int64(r)
	}
	in0, err := ort.NewTensor(ort.NewShape(1, n), idx)
	if err != nil {
		return nil, nil, fmt.Errorf("classify: indices tensor: %w", err)
	}
	defer in0.Destroy()
	in1, err := ort.NewTensor(ort.NewShape(1, 1, n), f.Weight)
	if err != nil {
		return nil, nil, fmt.Errorf("classify: weights tensor: %w", err)
	}
	defer in1.Destroy()
	o, pre, err := c.takeOutputs()
	if err != nil {
		return nil, nil, fmt.Errorf("classify: output tensors: %w", err)
	}
	if pre {
		if err := c.sess.Run([]ort.Value{in0, in1}, []ort.Value{o.probs, o.hidden}); err != nil {
			o.destroy()
			return nil, nil, fmt.Errorf("classify: onnx runtime: %w", err)
		}
		probs, hidden = slices.Clone(o.probs.GetData()), slices.Clone(o.hidden.GetData())
		c.giveOutputs(o)
		return probs, hidden, nil
	}
	outs := []ort.Value{nil, nil}
	if err := c.sess.Run([]ort.Value{in0, in1}, outs); err != nil {
		return nil, nil, fmt.Errorf("classify: onnx runtime: %w", err)
	}
	defer outs[0].Destroy()
	defer outs[1].Destroy()
	p, ok0 := outs[0].(*ort.Tensor[float32])
	h, ok1 := outs[1].(*ort.Tensor[float32])
	if !ok0 || !ok1 {
		return nil, nil, fmt.Errorf("classify: %w: outputs are not float tensors", ErrCorruptModel)
	}
	// Only LoadClassifier's probe gets here: the shapes it learns are
	// those of every later call's preallocated outputs.
	c.probsShape, c.hiddenShape = p.GetShape(), h.GetShape()
	return slices.Clone(p.GetData()), slices.Clone(h.GetData()), nil
}

// Classify returns text's intent: the best class, its calibrated
// confidence, the top three and the normalized hidden vector. When the
// best class is the out-of-scope one, Name is "" and Confidence is that of
// the best in-scope class, so the policy moves the query on.
func (c *Classifier) Classify(ctx context.Context, text string) (agent.Intent, error) {
	if err := ctx.Err(); err != nil {
		return agent.Intent{}, err
	}
	probs, hid, err := c.Run(text)
	if err != nil {
		return agent.Intent{}, err
	}
	return MakeIntent(c.labels, c.oos, c.threshold, probs, hid), nil
}

// MakeIntent turns class probabilities into an agent.Intent: the best
// class, its confidence, the top three, the classifier's threshold and the
// normalized vector. oos is the out-of-scope class's index (-1: none);
// when it is the best class, Name is "" and Confidence is that of the best
// in-scope class, so the policy moves the query on. vector is normalized
// in place.
func MakeIntent(labels []string, oos int, threshold float64, probs, vector []float32) agent.Intent {
	order := make([]int, len(probs))
	for i := range order {
		order[i] = i
	}
	// Stable by index on ties, so equal texts get equal answers.
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case probs[a] > probs[b]:
			return -1
		case probs[a] < probs[b]:
			return 1
		}
		return 0
	})
	in := agent.Intent{Threshold: threshold, Vector: normalize(vector)}
	for _, i := range order[:min(3, len(order))] {
		in.Top = append(in.Top, agent.Scored{Intent: labels[i], Confidence: float64(probs[i])})
	}
	for _, i := range order {
		if i == oos {
			continue
		}
		if order[0] != oos {
			in.Name = labels[i]
		}
		in.Confidence = float64(probs[i])
		break
	}
	return in
}

func normalize(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return v
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
	return v
}
