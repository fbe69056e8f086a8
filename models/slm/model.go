package slm

import (
	"fmt"
	"math"
)

// Net is one member of the model: an embedding bag of Dim, a ReLU hidden
// layer of Hidden units and a linear layer to the class logits. Weights are
// row-major: W1 is [Dim][Hidden], W2 is [Hidden][Classes].
type Net struct {
	Emb []float32 // [Buckets][Dim]
	W1  []float32
	B1  []float32
	W2  []float32
	B2  []float32
	// EmbQ and EmbScale hold the int8 embedding table and its per-row scale
	// once Quantize has run; Emb then holds exactly EmbQ*EmbScale, so the Go
	// forward pass computes what the exported graph computes.
	EmbQ     []int8
	EmbScale []float32
}

// Model is a trained compact intent classifier.
type Model struct {
	Feat   Featurizer
	Labels []string
	Dim    int
	Hidden int
	// Nets are averaged at the logits: an ensemble of independently
	// initialized members generalizes better than one.
	Nets []*Net
	// Temperature divides the averaged logits; fitted on held-out examples.
	Temperature float32
}

// Classes is the number of labels.
func (m *Model) Classes() int { return len(m.Labels) }

// Validate reports a model whose shapes do not agree.
func (m *Model) Validate() error {
	if err := m.Feat.Validate(); err != nil {
		return err
	}
	c := m.Classes()
	if c < 1 || m.Dim < 1 || m.Hidden < 1 || len(m.Nets) < 1 {
		return fmt.Errorf("model shape: %d classes, dim %d, hidden %d, %d nets", c, m.Dim, m.Hidden, len(m.Nets))
	}
	if !(m.Temperature > 0) || math.IsInf(float64(m.Temperature), 0) {
		return fmt.Errorf("model temperature %v: must be positive and finite", m.Temperature)
	}
	for k, n := range m.Nets {
		if len(n.Emb) != m.Feat.Buckets*m.Dim || len(n.W1) != m.Dim*m.Hidden || len(n.B1) != m.Hidden ||
			len(n.W2) != m.Hidden*c || len(n.B2) != c {
			return fmt.Errorf("model net %d: weight sizes do not match %d buckets, dim %d, hidden %d, %d classes", k, m.Feat.Buckets, m.Dim, m.Hidden, c)
		}
		if n.EmbQ != nil && (len(n.EmbQ) != len(n.Emb) || len(n.EmbScale) != m.Feat.Buckets) {
			return fmt.Errorf("model net %d: quantized table does not match %d buckets", k, m.Feat.Buckets)
		}
	}
	return nil
}

// Prediction is the Go forward pass's result for one text.
type Prediction struct {
	// Probs are the calibrated class probabilities.
	Probs []float32
	// Hidden is the members' hidden layers, concatenated: the text's dense
	// vector.
	Hidden []float32
}

// Predict runs the forward pass in Go. hedge serves queries through ONNX
// Runtime; this is for training, calibration and the parity test.
func (m *Model) Predict(f Features) Prediction {
	logits := m.Logits(f, nil)
	p := Prediction{Probs: make([]float32, len(logits)), Hidden: make([]float32, m.Hidden*len(m.Nets))}
	inv := m.Temperature
	for i := range logits {
		logits[i] /= inv
	}
	Softmax(p.Probs, logits)
	x := make([]float32, m.Dim)
	for k, n := range m.Nets {
		n.embed(f, x, m.Dim)
		n.hidden(x, p.Hidden[k*m.Hidden:(k+1)*m.Hidden], m.Dim, m.Hidden)
	}
	return p
}

// Logits returns the members' averaged logits before the temperature;
// buf, when big enough, is reused.
func (m *Model) Logits(f Features, buf []float32) []float32 {
	c := m.Classes()
	if cap(buf) < c {
		buf = make([]float32, c)
	}
	out := buf[:c]
	clear(out)
	x := make([]float32, m.Dim)
	h := make([]float32, m.Hidden)
	l := make([]float32, c)
	for _, n := range m.Nets {
		n.embed(f, x, m.Dim)
		n.hidden(x, h, m.Dim, m.Hidden)
		n.output(h, l, m.Hidden, c)
		for i := range out {
			out[i] += l[i]
		}
	}
	if k := len(m.Nets); k > 1 {
		for i := range out {
			out[i] /= float32(k)
		}
	}
	return out
}

func (n *Net) embed(f Features, x []float32, dim int) {
	clear(x)
	for i, r := range f.Index {
		w := f.Weight[i]
		row := n.Emb[int(r)*dim : int(r)*dim+dim]
		for d, v := range row {
			x[d] += w * v
		}
	}
}

func (n *Net) hidden(x, h []float32, dim, hid int) {
	copy(h, n.B1)
	for d := 0; d < dim; d++ {
		xd := x[d]
		if xd == 0 {
			continue
		}
		row := n.W1[d*hid : d*hid+hid]
		for j, w := range row {
			h[j] += xd * w
		}
	}
	for j, v := range h {
		if v < 0 {
			h[j] = 0
		}
	}
}

func (n *Net) output(h, l []float32, hid, c int) {
	copy(l, n.B2)
	for j := 0; j < hid; j++ {
		hj := h[j]
		if hj == 0 {
			continue
		}
		row := n.W2[j*c : j*c+c]
		for k, w := range row {
			l[k] += hj * w
		}
	}
}

// Softmax writes the softmax of logits into dst; dst may be logits itself.
func Softmax(dst, logits []float32) {
	mx := logits[0]
	for _, v := range logits {
		mx = max(mx, v)
	}
	var s float64
	for i, v := range logits {
		e := math.Exp(float64(v - mx))
		dst[i] = float32(e)
		s += e
	}
	for i := range dst {
		dst[i] = float32(float64(dst[i]) / s)
	}
}

// Quantize stores every member's embedding table as int8 with one scale per
// row — shared by the members, so the exported graph gathers one row of
// all members at once — a quarter of the float32 size, and replaces Emb by
// the dequantized values so that the Go forward pass matches the graph.
func (m *Model) Quantize() {
	for _, n := range m.Nets {
		n.EmbQ = make([]int8, len(n.Emb))
		n.EmbScale = make([]float32, m.Feat.Buckets)
	}
	for r := 0; r < m.Feat.Buckets; r++ {
		var mx float32
		for _, n := range m.Nets {
			for _, v := range n.Emb[r*m.Dim : r*m.Dim+m.Dim] {
				mx = max(mx, float32(math.Abs(float64(v))))
			}
		}
		if mx == 0 {
			continue
		}
		s := mx / 127
		for _, n := range m.Nets {
			n.EmbScale[r] = s
			row := n.Emb[r*m.Dim : r*m.Dim+m.Dim]
			q := n.EmbQ[r*m.Dim : r*m.Dim+m.Dim]
			for d, v := range row {
				qi := int8(math.Round(float64(v / s)))
				q[d] = qi
				row[d] = float32(qi) * s
			}
		}
	}
}
