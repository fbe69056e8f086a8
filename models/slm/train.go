package slm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Example is one labelled utterance; Label indexes the label list.
type Example struct {
	Text  string
	Label int
	// Soft, when set, is the training target instead of Label alone: a
	// distribution over labels (weights summing to 1), for examples that
	// are partly one intent and partly another.
	Soft []LabelWeight
}

// LabelWeight is one label's share of a soft target.
type LabelWeight struct {
	Label  int
	Weight float32
}

// TrainConfig sets the compact model's shape and training.
type TrainConfig struct {
	Feat    Featurizer
	Dim     int // embedding size
	Hidden  int // hidden units
	Members int // ensemble members, averaged at the logits
	// Views assigns feature views to members in turn (member k trains on
	// Views[k % len(Views)]); empty means every member sees all features.
	Views  []View
	Epochs int
	// MinSteps raises the epochs for small example sets so that training
	// takes at least this many optimizer steps.
	MinSteps int
	Batch    int
	LR       float64 // Adam step size
	// WeightDecay is decoupled (AdamW) weight decay of the dense layers;
	// EmbDecay that of the embedding rows a batch touches.
	WeightDecay float64
	EmbDecay    float64
	// DropFeature drops whole n-gram features (an augmentation: the model
	// must recognize an intent from part of its wording); DropEmbed and
	// DropHidden are dropout on the embedding bag and the hidden layer.
	DropFeature    float64
	DropEmbed      float64
	DropHidden     float64
	LabelSmoothing float64
	Seed           uint64
	// Progress, when set, is called after each batch with the examples
	// seen and the total to see; it must be cheap.
	Progress func(done, total int) `json:"-"`
}

// DefaultTrainConfig is what hedge train and hedge eval use unless told
// otherwise; it was chosen on CLINC150's validation split (docs/slm.md).
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{
		Feat: DefaultFeaturizer(), Dim: 48, Hidden: 256, Members: 3,
		Views:  []View{ViewAll, ViewWords, ViewChars},
		Epochs: 10, MinSteps: 600, Batch: 32, LR: 1.5e-3, WeightDecay: 1e-4, EmbDecay: 0,
		DropFeature: 0.2, DropEmbed: 0.2, DropHidden: 0.3, LabelSmoothing: 0, Seed: 1,
	}
}

// Validate reports a configuration that cannot train.
func (c TrainConfig) Validate() error {
	if err := c.Feat.Validate(); err != nil {
		return err
	}
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(c.Dim >= 1 && c.Dim <= 1024, "dim %d: must be 1..1024", c.Dim)
	check(c.Hidden >= 1 && c.Hidden <= 4096, "hidden %d: must be 1..4096", c.Hidden)
	check(c.Members >= 1 && c.Members <= 16, "members %d: must be 1..16", c.Members)
	check(c.Epochs >= 1, "epochs %d: must be at least 1", c.Epochs)
	check(c.Batch >= 1, "batch %d: must be at least 1", c.Batch)
	check(c.LR > 0, "lr %v: must be positive", c.LR)
	for _, p := range []float64{c.DropFeature, c.DropEmbed, c.DropHidden} {
		check(p >= 0 && p < 1, "dropout %v: must be in [0, 1)", p)
	}
	check(c.LabelSmoothing >= 0 && c.LabelSmoothing < 1, "label smoothing %v: must be in [0, 1)", c.LabelSmoothing)
	return errors.Join(errs...)
}

// Train fits a model to the examples. The result depends only on the
// examples (in order), the labels and the configuration: the same inputs
// give bit-identical weights. The temperature is 1 until Calibrate.
func Train(ctx context.Context, examples []Example, labels []string, cfg TrainConfig) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if len(labels) == 0 || len(examples) == 0 {
		return nil, errors.New("train: no examples")
	}
	featsOf := map[View][]Features{}
	view := func(k int) View {
		if len(cfg.Views) == 0 {
			return ViewAll
		}
		return cfg.Views[k%len(cfg.Views)]
	}
	for k := 0; k < cfg.Members; k++ {
		v := view(k)
		if featsOf[v] != nil {
			continue
		}
		fs := make([]Features, len(examples))
		for i, e := range examples {
			fs[i] = cfg.Feat.FeaturizeView(e.Text, v)
		}
		featsOf[v] = fs
	}
	for i, e := range examples {
		if e.Label < 0 || e.Label >= len(labels) {
			return nil, fmt.Errorf("train: example %d has label %d of %d", i, e.Label, len(labels))
		}
		for _, lw := range e.Soft {
			if lw.Label < 0 || lw.Label >= len(labels) {
				return nil, fmt.Errorf("train: example %d has soft label %d of %d", i, lw.Label, len(labels))
			}
		}
	}
	m := &Model{Feat: cfg.Feat, Labels: append([]string(nil), labels...), Dim: cfg.Dim, Hidden: cfg.Hidden, Temperature: 1}
	if perEpoch := (len(examples) + cfg.Batch - 1) / cfg.Batch; cfg.Epochs*perEpoch < cfg.MinSteps {
		cfg.Epochs = (cfg.MinSteps + perEpoch - 1) / perEpoch
	}
	total := cfg.Members * cfg.Epochs * len(examples)
	for k := 0; k < cfg.Members; k++ {
		t := newTrainer(cfg, len(labels), cfg.Seed*1000003+uint64(k))
		feats := featsOf[view(k)]
		for ep := 0; ep < cfg.Epochs; ep++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("train: %w", err)
			}
			order := t.rng.Perm(len(examples))
			// Linear decay of the step size to a tenth over training.
			frac := float64(ep) / float64(cfg.Epochs)
			lr := cfg.LR * (1 - 0.9*frac)
			for s := 0; s < len(order); s += cfg.Batch {
				end := min(s+cfg.Batch, len(order))
				for _, i := range order[s:end] {
					t.accumulate(feats[i], examples[i], 1/float32(end-s))
				}
				t.step(lr)
				if cfg.Progress != nil {
					cfg.Progress((k*cfg.Epochs+ep)*len(examples)+end, total)
				}
			}
		}
		m.Nets = append(m.Nets, t.net)
	}
	return m, nil
}

// trainer holds one member's weights, gradients and Adam state.
type trainer struct {
	cfg           TrainConfig
	dim, hid, cls int
	net           *Net
	rng           *rand.Rand
	gW1, gB1      []float32
	gW2, gB2      []float32
	dense         []adamParam
	// embM and embV are lazy Adam's moments of the embedding rows
	// training has touched, d values per row at the row's slot (embSlot):
	// a row no batch touches is never updated, so the 2^18-row tables
	// need not exist in full (two of them were 100 MB of hedge train's
	// peak, for a few percent of rows in use).
	embSlot       map[int32]int32
	embM, embV    []float32
	rowPos        map[int32]int
	rows          []int32
	gEmb          []float32
	steps         int
	x, z, h, l, p []float32
	dx, dz, dh    []float32
	maskX, maskH  []float32
	fIdx          []int32
	fW            []float32
}

type adamParam struct {
	w, g, m, v []float32
	decay      bool
}

func newTrainer(cfg TrainConfig, classes int, seed uint64) *trainer {
	d, h, c := cfg.Dim, cfg.Hidden, classes
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := &Net{
		// The embedding table starts at zero: a bucket no training text
		// touches contributes nothing, so unseen words cannot push a query
		// towards an intent.
		Emb: make([]float32, cfg.Feat.Buckets*d),
		W1:  make([]float32, d*h), B1: make([]float32, h),
		W2: make([]float32, h*c), B2: make([]float32, c),
	}
	// The embeddings start at zero, so the hidden layer's input does too: a
	// small positive bias keeps the ReLUs alive until the embeddings grow.
	for i := range n.B1 {
		n.B1[i] = 0.1
	}
	// He initialization for the ReLU layer, Glorot for the output layer.
	s1 := math.Sqrt(2.0 / float64(d))
	for i := range n.W1 {
		n.W1[i] = float32(rng.NormFloat64() * s1)
	}
	s2 := math.Sqrt(2.0 / float64(h+c))
	for i := range n.W2 {
		n.W2[i] = float32(rng.NormFloat64() * s2)
	}
	t := &trainer{
		cfg: cfg, dim: d, hid: h, cls: c, net: n, rng: rng,
		gW1: make([]float32, d*h), gB1: make([]float32, h),
		gW2: make([]float32, h*c), gB2: make([]float32, c),
		embSlot: make(map[int32]int32),
		rowPos:  make(map[int32]int),
		x:       make([]float32, d), z: make([]float32, h), h: make([]float32, h),
		l: make([]float32, c), p: make([]float32, c),
		dx: make([]float32, d), dz: make([]float32, h), dh: make([]float32, h),
		maskX: make([]float32, d), maskH: make([]float32, h),
	}
	t.dense = []adamParam{
		{w: n.W1, g: t.gW1, m: make([]float32, len(n.W1)), v: make([]float32, len(n.W1)), decay: true},
		{w: n.B1, g: t.gB1, m: make([]float32, h), v: make([]float32, h)},
		{w: n.W2, g: t.gW2, m: make([]float32, len(n.W2)), v: make([]float32, len(n.W2)), decay: true},
		{w: n.B2, g: t.gB2, m: make([]float32, c), v: make([]float32, c)},
	}
	return t
}

// dropMask fills mask with 0 or 1/(1-p) (inverted dropout).
func (t *trainer) dropMask(mask []float32, p float64) {
	keep := float32(1 / (1 - p))
	for i := range mask {
		if p > 0 && t.rng.Float64() < p {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
	}
}

// accumulate adds one example's gradient, scaled by scale, to the batch's.
func (t *trainer) accumulate(f Features, ex Example, scale float32) {
	cfg := &t.cfg
	d, hd, c := t.dim, t.hid, t.cls
	n := t.net
	// Feature dropout: keep a random subset (at least one), re-weighted so
	// the bag keeps its size.
	idx, w := f.Index, f.Weight
	if cfg.DropFeature > 0 && len(idx) > 1 {
		t.fIdx, t.fW = t.fIdx[:0], t.fW[:0]
		for i := range idx {
			if t.rng.Float64() >= cfg.DropFeature {
				t.fIdx = append(t.fIdx, idx[i])
				t.fW = append(t.fW, w[i])
			}
		}
		if len(t.fIdx) == 0 {
			j := t.rng.IntN(len(idx))
			t.fIdx = append(t.fIdx, idx[j])
			t.fW = append(t.fW, w[j])
		}
		r := float32(math.Sqrt(float64(len(idx)) / float64(len(t.fIdx))))
		for i := range t.fW {
			t.fW[i] *= r
		}
		idx, w = t.fIdx, t.fW
	}
	x := t.x
	n.embed(Features{Index: idx, Weight: w}, x, d)
	t.dropMask(t.maskX, cfg.DropEmbed)
	for i := range x {
		x[i] *= t.maskX[i]
	}
	// hidden
	copy(t.z, n.B1)
	for di := 0; di < d; di++ {
		xd := x[di]
		if xd == 0 {
			continue
		}
		row := n.W1[di*hd : di*hd+hd]
		for j, v := range row {
			t.z[j] += xd * v
		}
	}
	t.dropMask(t.maskH, cfg.DropHidden)
	for j, v := range t.z {
		if v > 0 {
			t.h[j] = v * t.maskH[j]
		} else {
			t.h[j] = 0
		}
	}
	n.output(t.h, t.l, hd, c)
	Softmax(t.p, t.l)
	// dL/dlogits = p - y, with label smoothing spreading eps over classes.
	eps := float32(cfg.LabelSmoothing)
	off := eps / float32(c)
	for k := range t.p {
		y := off
		if ex.Soft == nil && k == ex.Label {
			y += 1 - eps
		}
		t.p[k] -= y
	}
	for _, lw := range ex.Soft {
		t.p[lw.Label] -= (1 - eps) * lw.Weight
	}
	for k := range t.p {
		t.p[k] *= scale
	}
	dl := t.p
	for k, g := range dl {
		t.gB2[k] += g
	}
	for j := 0; j < hd; j++ {
		hj := t.h[j]
		var s float32
		row := n.W2[j*c : j*c+c]
		if hj != 0 {
			grow := t.gW2[j*c : j*c+c]
			for k, g := range dl {
				grow[k] += hj * g
				s += row[k] * g
			}
		}
		// ReLU and dropout: the gradient flows only where h was kept.
		t.dz[j] = s * t.maskH[j]
		if t.z[j] <= 0 {
			t.dz[j] = 0
		}
	}
	for j, g := range t.dz {
		t.gB1[j] += g
	}
	for di := 0; di < d; di++ {
		xd := x[di]
		row := n.W1[di*hd : di*hd+hd]
		grow := t.gW1[di*hd : di*hd+hd]
		var s float32
		for j, g := range t.dz {
			if g == 0 {
				continue
			}
			grow[j] += xd * g
			s += row[j] * g
		}
		t.dx[di] = s * t.maskX[di]
	}
	for i, r := range idx {
		p, ok := t.rowPos[r]
		if !ok {
			p = len(t.rows)
			t.rowPos[r] = p
			t.rows = append(t.rows, r)
			t.gEmb = append(t.gEmb, make([]float32, d)...)
		}
		g := t.gEmb[p*d : p*d+d]
		wi := w[i]
		for di, v := range t.dx {
			g[di] += wi * v
		}
	}
}

const (
	adamB1  = 0.9
	adamB2  = 0.999
	adamEps = 1e-8
)

// step applies Adam (AdamW decay) to the dense layers and lazy Adam to the
// embedding rows the batch touched, then clears the gradients.
func (t *trainer) step(lr float64) {
	t.steps++
	bc1 := 1 - math.Pow(adamB1, float64(t.steps))
	bc2 := 1 - math.Pow(adamB2, float64(t.steps))
	a := float32(lr * math.Sqrt(bc2) / bc1)
	for _, p := range t.dense {
		decay := float32(0)
		if p.decay {
			decay = float32(lr * t.cfg.WeightDecay)
		}
		adam(p.w, p.g, p.m, p.v, a, decay)
		clear(p.g)
	}
	d := t.dim
	decay := float32(lr * t.cfg.EmbDecay)
	for p, r := range t.rows {
		slot, ok := t.embSlot[r]
		if !ok {
			slot = int32(len(t.embM) / d)
			t.embSlot[r] = slot
			t.embM = append(t.embM, make([]float32, d)...)
			t.embV = append(t.embV, make([]float32, d)...)
		}
		o, so := int(r)*d, int(slot)*d
		adam(t.net.Emb[o:o+d], t.gEmb[p*d:p*d+d], t.embM[so:so+d], t.embV[so:so+d], a, decay)
	}
	t.rows = t.rows[:0]
	t.gEmb = t.gEmb[:0]
	clear(t.rowPos)
}

func adam(w, g, m, v []float32, a, decay float32) {
	for i, gi := range g {
		mi := adamB1*m[i] + (1-adamB1)*gi
		vi := adamB2*v[i] + (1-adamB2)*gi*gi
		m[i], v[i] = mi, vi
		w[i] -= a*mi/(float32(math.Sqrt(float64(vi)))+adamEps) + decay*w[i]
	}
}
