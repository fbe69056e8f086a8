package transformer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/hedge-edge/hedge/models/slm"
	"github.com/hedge-edge/hedge/models/slm/onnxpb"
)

// The head graph's input and output.
const (
	InputPooled = "pooled" // float [batch, hidden]
	OutputProbs = "probs"  // float [batch, classes]
)

// Head is a softmax layer over standardized pooled vectors, trained in Go
// and exported to ONNX: the intent part of the transformer path.
type Head struct {
	Mean, Std   []float32 // standardization of the pooled vector
	W           []float32 // [hidden][classes]
	B           []float32
	Temperature float32
	hidden, cls int
}

// HeadConfig sets the head's training.
type HeadConfig struct {
	Epochs      int
	LR          float64
	WeightDecay float64
	Seed        uint64
}

// DefaultHeadConfig is what hedge uses.
func DefaultHeadConfig() HeadConfig {
	return HeadConfig{Epochs: 60, LR: 0.01, WeightDecay: 1e-3, Seed: 1}
}

// TrainHead fits a head to pooled vectors xs with labels ys.
func TrainHead(ctx context.Context, xs [][]float32, ys []int, classes int, cfg HeadConfig) (*Head, error) {
	if len(xs) == 0 || classes < 1 {
		return nil, errors.New("train head: no examples")
	}
	h := len(xs[0])
	hd := &Head{Mean: make([]float32, h), Std: make([]float32, h), W: make([]float32, h*classes), B: make([]float32, classes),
		Temperature: 1, hidden: h, cls: classes}
	for _, x := range xs {
		if len(x) != h {
			return nil, fmt.Errorf("train head: vectors of sizes %d and %d", h, len(x))
		}
		for j, v := range x {
			hd.Mean[j] += v / float32(len(xs))
		}
	}
	for _, x := range xs {
		for j, v := range x {
			d := v - hd.Mean[j]
			hd.Std[j] += d * d / float32(len(xs))
		}
	}
	for j := range hd.Std {
		hd.Std[j] = float32(math.Sqrt(float64(hd.Std[j]))) + 1e-6
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x4ead))
	m, v := make([]float32, len(hd.W)+classes), make([]float32, len(hd.W)+classes)
	g := make([]float32, len(hd.W)+classes)
	z := make([]float32, h)
	p := make([]float32, classes)
	step := 0
	for ep := 0; ep < cfg.Epochs; ep++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("train head: %w", err)
		}
		order := rng.Perm(len(xs))
		for s := 0; s < len(order); s += 32 {
			clear(g)
			end := min(s+32, len(order))
			for _, i := range order[s:end] {
				hd.standardize(xs[i], z)
				hd.logits(z, p)
				slm.Softmax(p, p)
				p[ys[i]]--
				for j, zj := range z {
					row := g[j*classes : j*classes+classes]
					for k, pk := range p {
						row[k] += zj * pk / float32(end-s)
					}
				}
				for k, pk := range p {
					g[len(hd.W)+k] += pk / float32(end-s)
				}
			}
			step++
			bc1 := 1 - math.Pow(0.9, float64(step))
			bc2 := 1 - math.Pow(0.999, float64(step))
			a := float32(cfg.LR * math.Sqrt(bc2) / bc1)
			for i, gi := range g {
				m[i] = 0.9*m[i] + 0.1*gi
				v[i] = 0.999*v[i] + 0.001*gi*gi
				w := &hd.B[0]
				if i < len(hd.W) {
					w = &hd.W[i]
					*w -= float32(cfg.LR*cfg.WeightDecay) * *w
				} else {
					w = &hd.B[i-len(hd.W)]
				}
				*w -= a * m[i] / (float32(math.Sqrt(float64(v[i]))) + 1e-8)
			}
		}
	}
	return hd, nil
}

func (hd *Head) standardize(x, z []float32) {
	for j, v := range x {
		z[j] = (v - hd.Mean[j]) / hd.Std[j]
	}
}

func (hd *Head) logits(z, out []float32) {
	copy(out, hd.B)
	for j, zj := range z {
		row := hd.W[j*hd.cls : j*hd.cls+hd.cls]
		for k, w := range row {
			out[k] += zj * w
		}
	}
}

// Logits returns x's logits before the temperature.
func (hd *Head) Logits(x []float32) []float32 {
	z := make([]float32, hd.hidden)
	out := make([]float32, hd.cls)
	hd.standardize(x, z)
	hd.logits(z, out)
	return out
}

// Probs returns x's calibrated probabilities (the Go forward pass).
func (hd *Head) Probs(x []float32) []float32 {
	l := hd.Logits(x)
	for i := range l {
		l[i] /= hd.Temperature
	}
	slm.Softmax(l, l)
	return l
}

// Export writes the head as an ONNX graph: pooled → standardize → linear →
// /T → softmax.
func (hd *Head) Export() []byte {
	h, c := int64(hd.hidden), int64(hd.cls)
	g := &onnxpb.Graph{Name: "hedge-transformer-head", Opset: 13, Producer: "hedge", ProducerVersion: "1",
		Inputs:  []onnxpb.Value{{Name: InputPooled, Type: onnxpb.Float, Shape: []onnxpb.Dim{{Param: "batch"}, {Value: h}}}},
		Outputs: []onnxpb.Value{{Name: OutputProbs, Type: onnxpb.Float, Shape: []onnxpb.Dim{{Param: "batch"}, {Value: c}}}},
		Initializers: []onnxpb.Tensor{
			onnxpb.FloatTensor("mean", []int64{h}, hd.Mean), onnxpb.FloatTensor("std", []int64{h}, hd.Std),
			onnxpb.FloatTensor("w", []int64{h, c}, hd.W), onnxpb.FloatTensor("b", []int64{c}, hd.B),
			onnxpb.FloatTensor("temperature", nil, []float32{hd.Temperature}),
		},
	}
	add := func(op string, in []string, out string, attrs ...onnxpb.Attr) {
		g.Nodes = append(g.Nodes, onnxpb.Node{Name: out, Op: op, Inputs: in, Outputs: []string{out}, Attrs: attrs})
	}
	add("Sub", []string{InputPooled, "mean"}, "centered")
	add("Div", []string{"centered", "std"}, "z")
	add("MatMul", []string{"z", "w"}, "zw")
	add("Add", []string{"zw", "b"}, "logits")
	add("Div", []string{"logits", "temperature"}, "scaled")
	add("Softmax", []string{"scaled"}, OutputProbs, onnxpb.IntAttr("axis", -1))
	return g.Marshal()
}
