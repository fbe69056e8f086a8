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
	OutputHidden  = "hidden"  // float [batch, hidden]
	compactOpset  = 13
	compactIRName = "hedge-compact"
)

// Export writes m as an ONNX model. Quantized members (Quantize) store int8
// tables dequantized in the graph. The bytes depend only on m.
func (m *Model) Export() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	c := int64(m.Classes())
	d, h, v := int64(m.Dim), int64(m.Hidden), int64(m.Feat.Buckets)
	g := &onnxpb.Graph{
		Name: compactIRName, Opset: compactOpset, Producer: "hedge", ProducerVersion: "1",
		Doc: "hedge compact intent classifier: hashed n-gram embedding bag, ReLU layer, softmax over intents with a calibrated temperature",
		Inputs: []onnxpb.Value{
			{Name: InputIndices, Type: onnxpb.Int64, Shape: []onnxpb.Dim{{Param: "batch"}, {Param: "n"}}},
			{Name: InputWeights, Type: onnxpb.Float, Shape: []onnxpb.Dim{{Param: "batch"}, {Value: 1}, {Param: "n"}}},
		},
		Outputs: []onnxpb.Value{
			{Name: OutputProbs, Type: onnxpb.Float, Shape: []onnxpb.Dim{{Param: "batch"}, {Value: c}}},
			{Name: OutputHidden, Type: onnxpb.Float, Shape: []onnxpb.Dim{{Param: "batch"}, {Value: h}}},
		},
	}
	node := func(op string, in []string, out string, attrs ...onnxpb.Attr) {
		g.Nodes = append(g.Nodes, onnxpb.Node{Name: out + "_" + op, Op: op, Inputs: in, Outputs: []string{out}, Attrs: attrs})
	}
	g.Initializers = append(g.Initializers, onnxpb.Int64Tensor("axis1", []int64{1}, []int64{1}))
	// Only buckets that training touched have non-zero embeddings (the
	// table starts at zero and only rows in a batch are updated), so the
	// graph keeps just those rows, plus row 0 of zeros, and maps a bucket
	// to its row with one int32 table: a fraction of the full table's size
	// with the same result.
	remap, kept := m.usedRows()
	v = int64(len(kept)) + 1
	if len(kept) < 1<<16 {
		// Row numbers fit 16 bits: half the size of the int32 table.
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
	var logits []string
	for k, n := range m.Nets {
		p := fmt.Sprintf("m%d_", k)
		var x string
		if n.EmbQ != nil {
			raw := make([]byte, int(v)*m.Dim)
			scale := make([]float32, v)
			for i, r := range kept {
				for j, q := range n.EmbQ[int(r)*m.Dim : int(r)*m.Dim+m.Dim] {
					raw[(i+1)*m.Dim+j] = byte(q)
				}
				scale[i+1] = n.EmbScale[r]
			}
			g.Initializers = append(g.Initializers,
				onnxpb.Tensor{Name: p + "emb_q", Type: onnxpb.Int8, Dims: []int64{v, d}, Raw: raw},
				onnxpb.FloatTensor(p+"emb_scale", []int64{v}, scale))
			node("Gather", []string{p + "emb_q", "rows_idx"}, p+"rows_q")
			node("Cast", []string{p + "rows_q"}, p+"rows", onnxpb.IntAttr("to", int64(onnxpb.Float)))
			node("Gather", []string{p + "emb_scale", "rows_idx"}, p+"scale")
			node("Unsqueeze", []string{p + "scale", "axis1"}, p+"scale3")
			node("Mul", []string{InputWeights, p + "scale3"}, p+"wq")
			node("MatMul", []string{p + "wq", p + "rows"}, p+"bag")
		} else {
			emb := make([]float32, int(v)*m.Dim)
			for i, r := range kept {
				copy(emb[(i+1)*m.Dim:], n.Emb[int(r)*m.Dim:int(r)*m.Dim+m.Dim])
			}
			g.Initializers = append(g.Initializers, onnxpb.FloatTensor(p+"emb", []int64{v, d}, emb))
			node("Gather", []string{p + "emb", "rows_idx"}, p+"rows")
			node("MatMul", []string{InputWeights, p + "rows"}, p+"bag")
		}
		x = p + "bag"
		g.Initializers = append(g.Initializers,
			onnxpb.FloatTensor(p+"w1", []int64{d, h}, n.W1),
			onnxpb.FloatTensor(p+"b1", []int64{h}, n.B1),
			onnxpb.FloatTensor(p+"w2", []int64{h, c}, n.W2),
			onnxpb.FloatTensor(p+"b2", []int64{c}, n.B2))
		node("MatMul", []string{x, p + "w1"}, p+"z1")
		node("Add", []string{p + "z1", p + "b1"}, p+"z1b")
		node("Relu", []string{p + "z1b"}, p+"h")
		node("MatMul", []string{p + "h", p + "w2"}, p+"z2")
		node("Add", []string{p + "z2", p + "b2"}, p+"logits")
		logits = append(logits, p+"logits")
	}
	avg := logits[0]
	if len(logits) > 1 {
		node("Sum", logits, "logit_sum")
		g.Initializers = append(g.Initializers, onnxpb.FloatTensor("members", nil, []float32{float32(len(logits))}))
		node("Div", []string{"logit_sum", "members"}, "logit_avg")
		avg = "logit_avg"
	}
	g.Initializers = append(g.Initializers, onnxpb.FloatTensor("temperature", nil, []float32{m.Temperature}))
	node("Div", []string{avg, "temperature"}, "scaled")
	node("Softmax", []string{"scaled"}, "probs3", onnxpb.IntAttr("axis", -1))
	node("Squeeze", []string{"probs3", "axis1"}, OutputProbs)
	node("Squeeze", []string{"m0_h", "axis1"}, OutputHidden)
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
