// Package testbert generates a BERT-like ONNX encoder and its
// tokenizer.json for tests: one layer, one attention head, random weights,
// and the input and output names and shapes of a Hugging Face export
// (input_ids, attention_mask, optional token_type_ids → last_hidden_state).
// It exercises everything a real encoder does at a size a test builds in
// milliseconds; no registry reachable from here serves real weights.
package testbert

import (
	"encoding/json"
	"math/rand/v2"

	"github.com/hedge-edge/hedge/models/slm/onnxpb"
)

// Vocab is the fixture's WordPiece vocabulary.
var Vocab = []string{
	"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
	"!", ",", ".", "?", "'",
	"hello", "hi", "hey", "there", "good", "morning", "turn", "on", "off", "the", "light", "##s", "lamp",
	"what", "time", "is", "it", "tell", "me", "zurich", "weather", "in", "bye", "see", "you", "later",
	"switch", "please", "now", "kitchen", "un", "##able", "##ing", "s", "t", "capital", "of", "france", "poem", "write", "a",
}

// TokenizerJSON is a tokenizer.json as Hugging Face writes it for
// BERT, over Vocab.
func TokenizerJSON() []byte {
	vocab := map[string]int{}
	for i, w := range Vocab {
		vocab[w] = i
	}
	t := map[string]any{
		"version":       "1.0",
		"normalizer":    map[string]any{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": nil, "lowercase": true},
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"model": map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
			"max_input_chars_per_word": 100, "vocab": vocab},
	}
	data, _ := json.Marshal(t)
	return data
}

// Encoder returns the ONNX bytes of a BERT-like encoder of width
// hidden; withTypes adds the token_type_ids input.
func Encoder(hidden int, withTypes bool, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	h := int64(hidden)
	v := int64(len(Vocab))
	rnd := func(n int64, scale float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(rng.NormFloat64() * scale)
		}
		return out
	}
	ones := func(n int64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = 1
		}
		return out
	}
	dyn := []onnxpb.Dim{{Param: "batch_size"}, {Param: "sequence_length"}}
	g := &onnxpb.Graph{Name: "test-bert", Opset: 17, Producer: "hedge-test",
		Inputs: []onnxpb.Value{
			{Name: "input_ids", Type: onnxpb.Int64, Shape: dyn},
			{Name: "attention_mask", Type: onnxpb.Int64, Shape: dyn},
		},
		Outputs: []onnxpb.Value{{Name: "last_hidden_state", Type: onnxpb.Float,
			Shape: []onnxpb.Dim{{Param: "batch_size"}, {Param: "sequence_length"}, {Value: h}}}},
	}
	init := func(t onnxpb.Tensor) { g.Initializers = append(g.Initializers, t) }
	node := func(op string, in []string, out string, attrs ...onnxpb.Attr) {
		g.Nodes = append(g.Nodes, onnxpb.Node{Name: out, Op: op, Inputs: in, Outputs: []string{out}, Attrs: attrs})
	}
	init(onnxpb.FloatTensor("word_embeddings", []int64{v, h}, rnd(v*h, 1)))
	init(onnxpb.FloatTensor("position_embeddings", []int64{512, h}, rnd(512*h, 0.1)))
	init(onnxpb.Int64Tensor("one_i", nil, []int64{1}))
	init(onnxpb.Int64Tensor("zero_i", nil, []int64{0}))
	init(onnxpb.Int64Tensor("axes1", []int64{1}, []int64{1}))
	init(onnxpb.FloatTensor("one_f", nil, []float32{1}))
	init(onnxpb.FloatTensor("neg_big", nil, []float32{-10000}))
	init(onnxpb.FloatTensor("att_scale", nil, []float32{1 / float32(hidden)}))
	for _, ln := range []string{"ln0", "ln1", "ln2"} {
		init(onnxpb.FloatTensor(ln+"_g", []int64{h}, ones(h)))
		init(onnxpb.FloatTensor(ln+"_b", []int64{h}, make([]float32, h)))
	}
	for _, w := range []string{"wq", "wk", "wv", "wo", "w1", "w2"} {
		init(onnxpb.FloatTensor(w, []int64{h, h}, rnd(h*h, 1/float64(hidden))))
		init(onnxpb.FloatTensor(w+"_b", []int64{h}, rnd(h, 0.01)))
	}
	node("Shape", []string{"input_ids"}, "ids_shape")
	node("Gather", []string{"ids_shape", "one_i"}, "seq_len", onnxpb.IntAttr("axis", 0))
	node("Range", []string{"zero_i", "seq_len", "one_i"}, "positions")
	node("Gather", []string{"word_embeddings", "input_ids"}, "we")
	node("Gather", []string{"position_embeddings", "positions"}, "pe")
	node("Add", []string{"we", "pe"}, "e1")
	emb := "e1"
	if withTypes {
		g.Inputs = append(g.Inputs, onnxpb.Value{Name: "token_type_ids", Type: onnxpb.Int64, Shape: dyn})
		init(onnxpb.FloatTensor("token_type_embeddings", []int64{2, h}, rnd(2*h, 0.1)))
		node("Gather", []string{"token_type_embeddings", "token_type_ids"}, "te")
		node("Add", []string{"e1", "te"}, "e2")
		emb = "e2"
	}
	ln := func(in, name, out string) {
		node("LayerNormalization", []string{in, name + "_g", name + "_b"}, out,
			onnxpb.IntAttr("axis", -1), onnxpb.FloatAttr("epsilon", 1e-12))
	}
	dense := func(in, w, out string) {
		node("MatMul", []string{in, w}, out+"_mm")
		node("Add", []string{out + "_mm", w + "_b"}, out)
	}
	ln(emb, "ln0", "x")
	dense("x", "wq", "q")
	dense("x", "wk", "k")
	dense("x", "wv", "val")
	node("Transpose", []string{"k"}, "kt", onnxpb.IntsAttr("perm", 0, 2, 1))
	node("MatMul", []string{"q", "kt"}, "scores")
	node("Mul", []string{"scores", "att_scale"}, "scores_s")
	node("Cast", []string{"attention_mask"}, "mask_f", onnxpb.IntAttr("to", int64(onnxpb.Float)))
	node("Unsqueeze", []string{"mask_f", "axes1"}, "mask3")
	node("Sub", []string{"one_f", "mask3"}, "mask_inv")
	node("Mul", []string{"mask_inv", "neg_big"}, "mask_bias")
	node("Add", []string{"scores_s", "mask_bias"}, "scores_m")
	node("Softmax", []string{"scores_m"}, "attn", onnxpb.IntAttr("axis", -1))
	node("MatMul", []string{"attn", "val"}, "ctx")
	dense("ctx", "wo", "att_out")
	node("Add", []string{"x", "att_out"}, "res1")
	ln("res1", "ln1", "x2")
	dense("x2", "w1", "ff1")
	node("Relu", []string{"ff1"}, "ff1r")
	dense("ff1r", "w2", "ff2")
	node("Add", []string{"x2", "ff2"}, "res2")
	ln("res2", "ln2", "last_hidden_state")
	return g.Marshal()
}
