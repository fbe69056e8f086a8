package slm

import (
	"encoding/binary"
	"fmt"

	"github.com/hedge-edge/hedge/models/slm/onnxpb"
)

// The compact graph's input and output names. indices holds the feature
// rows of each text, padded with any row whose weight is 0; weights holds
// their weights with a middle axis of 1, so that the embedding bag is one
// batched MatMul ([B,1,K] × [B,K,D]), the fastest form in ONNX Runtime.
const (
	InputIndices  = "indices" // int64 [batch, n]
	InputWeights  = "weights" // float [batch, 1, n]
	OutputProbs   = "probs"   // float [batch, classes]
	OutputHidden  = "hidden"  // float [batch, members*hidden]
	compactOpset  = 13
	compactIRName = "hedge-compact"
)

// Export writes m as an ONNX model. The bytes depend only on m.
//
// The members are laid side by side so that the graph is the same dozen
// operators whatever their number (ONNX Runtime's cost per query is mostly
// per operator): one table whose row holds every member's embedding of a
// bucket, one MatMul with a block-diagonal hidden layer, and one MatMul
// with the output layers stacked (each divided by the member count, which
// averages the logits).
func (m *Model) Export() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	nm := len(m.Nets)
	c := int64(m.Classes())
	d, h := m.Dim, m.Hidden
	md, mh := int64(nm*d), int64(nm*h)
	g := &onnxpb.Graph{
		Name: compactIRName, Opset: compactOpset, Producer: "hedge", ProducerVersion: "1",
		Doc: "hedge compact intent classifier: hashed n-gram embedding bag, ReLU layer, softmax over intents with a calibrated temperature",
		Inputs: []onnxpb.Value{
			{Name: InputIndices, Type: onnxpb.Int64, Shape: []onnxpb.Dim{{Param: "batch"}, {Param: "n"}}},
			{Name: InputWeights, Type: onnxpb.Float, Shape: []onnxpb.Dim{{Param: "batch"}, {Value: 1}, {Param: "n"}}},
		},
		Outputs: []onnxpb.Value{
			{Name: OutputProbs, Type: onnxpb.Float, Shape: []onnxpb.Dim{{Param: "batch"}, {Value: c}}},
			{Name: OutputHidden, Type: onnxpb.Float, Shape: []onnxpb.Dim{{Param: "batch"}, {Value: mh}}},
		},
	}
	node := func(op string, in []string, out string, attrs ...onnxpb.Attr) {
		g.Nodes = append(g.Nodes, onnxpb.Node{Name: out + "_" + op, Op: op, Inputs: in, Outputs: []string{out}, Attrs: attrs})
	}
	g.Initializers = append(g.Initializers, onnxpb.Int64Tensor("axis1", []int64{1}, []int64{1}))

	// Only buckets that training touched have non-zero embeddings (the
	// table starts at zero and only rows in a batch are updated), so the
	// graph keeps just those rows, plus row 0 of zeros, and maps a bucket
	// to its row with a small integer table.
	remap, kept := m.usedRows()
	rows := int64(len(kept)) + 1
	if len(kept) < 1<<16 {
		// Row numbers fit 16 bits: half the size of an int32 table.
		raw := make([]byte, 2*len(remap))
		for i, r := range remap {
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(r))
		}
		g.Initializers = append(g.Initializers, onnxpb.Tensor{Name: "bucket_row", Type: onnxpb.Uint16, Dims: []int64{int64(len(remap))}, Raw: raw})
		node("Gather", []string{"bucket_row", InputIndices}, "rows_idx16")
		node("Cast", []string{"rows_idx16"}, "rows_idx", onnxpb.IntAttr("to", int64(onnxpb.Int64)))
	} else {
		g.Initializers = append(g.Initializers, onnxpb.Int32Tensor("bucket_row", []int64{int64(len(remap))}, remap))
		node("Gather", []string{"bucket_row", InputIndices}, "rows_idx")
	}

	quant := m.Nets[0].EmbQ != nil
	if quant {
		raw := make([]byte, int(rows)*nm*d)
		scale := make([]float32, rows)
		for i, r := range kept {
			o := (i + 1) * nm * d
			for k, n := range m.Nets {
				for j, q := range n.EmbQ[int(r)*d : int(r)*d+d] {
					raw[o+k*d+j] = byte(q)
				}
			}
			scale[i+1] = m.Nets[0].EmbScale[r]
		}
		g.Initializers = append(g.Initializers,
			onnxpb.Tensor{Name: "emb_q", Type: onnxpb.Int8, Dims: []int64{rows, md}, Raw: raw},
			onnxpb.FloatTensor("emb_scale", []int64{rows}, scale))
		node("Gather", []string{"emb_q", "rows_idx"}, "rows_q")
		node("Cast", []string{"rows_q"}, "rows", onnxpb.IntAttr("to", int64(onnxpb.Float)))
		node("Gather", []string{"emb_scale", "rows_idx"}, "scale")
		node("Unsqueeze", []string{"scale", "axis1"}, "scale3")
		node("Mul", []string{InputWeights, "scale3"}, "wq")
		node("MatMul", []string{"wq", "rows"}, "bag")
	} else {
		emb := make([]float32, int(rows)*nm*d)
		for i, r := range kept {
			o := (i + 1) * nm * d
			for k, n := range m.Nets {
				copy(emb[o+k*d:], n.Emb[int(r)*d:int(r)*d+d])
			}
		}
		g.Initializers = append(g.Initializers, onnxpb.FloatTensor("emb", []int64{rows, md}, emb))
		node("Gather", []string{"emb", "rows_idx"}, "rows")
		node("MatMul", []string{InputWeights, "rows"}, "bag")
	}

	w1 := make([]float32, int(md*mh)) // block diagonal
	b1 := make([]float32, mh)
	w2 := make([]float32, int(mh*c))
	b2 := make([]float32, c)
	inv := float32(1) / float32(nm)
	for k, n := range m.Nets {
		for i := 0; i < d; i++ {
			copy(w1[(k*d+i)*int(mh)+k*h:], n.W1[i*h:i*h+h])
		}
		copy(b1[k*h:], n.B1)
		for j := 0; j < h*int(c); j++ {
			w2[k*h*int(c)+j] = n.W2[j] * inv
		}
		for j, v := range n.B2 {
			b2[j] += v * inv
		}
	}
	g.Initializers = append(g.Initializers,
		onnxpb.FloatTensor("w1", []int64{md, mh}, w1), onnxpb.FloatTensor("b1", []int64{mh}, b1),
		onnxpb.FloatTensor("w2", []int64{mh, c}, w2), onnxpb.FloatTensor("b2", []int64{c}, b2),
		onnxpb.FloatTensor("temperature", nil, []float32{m.Temperature}))
	node("MatMul", []string{"bag", "w1"}, "z1")
	node("Add", []string{"z1", "b1"}, "z1b")
	node("Relu", []string{"z1b"}, "h")
	node("MatMul", []string{"h", "w2"}, "z2")
	node("Add", []string{"z2", "b2"}, "logits")
	node("Div", []string{"logits", "temperature"}, "scaled")
	node("Softmax", []string{"scaled"}, "probs3", onnxpb.IntAttr("axis", -1))
	node("Squeeze", []string{"probs3", "axis1"}, OutputProbs)
	node("Squeeze", []string{"h", "axis1"}, OutputHidden)
	return g.Marshal(), nil
}

// usedRows returns, for every bucket, its row in the pruned table (0: the
// zero row) and the buckets kept, ascending. A bucket is kept when any
// member's embedding of it is not all zeros.
func (m *Model) usedRows() (remap []int32, kept []int32) {
	remap = make([]int32, m.Feat.Buckets)
	for r := 0; r < m.Feat.Buckets; r++ {
		used := false
		for _, n := range m.Nets {
			for _, x := range n.Emb[r*m.Dim : r*m.Dim+m.Dim] {
				if x != 0 {
					used = true
					break
				}
			}
			if used {
				break
			}
		}
		if used {
			kept = append(kept, int32(r))
			remap[r] = int32(len(kept))
		}
	}
	return remap, kept
}
