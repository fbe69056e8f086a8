package gguf

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/x448/float16"
)

// Shape is the architecture of a llama-family model: the sizes that decide
// its speed and memory, whatever its weights.
type Shape struct {
	Name        string
	Vocab       int
	Embd        int
	Layers      int
	Heads       int
	HeadsKV     int
	FFN         int
	Context     int
	RopeBase    float32
	TiedOutput  bool // output projection shares token_embd (SmolLM2)
	NormEpsilon float32
	// EOS is the end-of-sequence token id written to the metadata; 0 means
	// 2 (</s>). Tests pick a token the model will generate to see it stop.
	EOS uint32
}

// Shapes of real models, for fixtures that behave like them on the CPU.
var (
	// SmolLM2_135M is HuggingFaceTB/SmolLM2-135M(-Instruct).
	SmolLM2_135M = Shape{Name: "smollm2-135m-shaped", Vocab: 49152, Embd: 576, Layers: 30, Heads: 9, HeadsKV: 3, FFN: 1536, Context: 8192, RopeBase: 100000, TiedOutput: true, NormEpsilon: 1e-5}
	// TinyLlama_1_1B is TinyLlama/TinyLlama-1.1B-Chat-v1.0.
	TinyLlama_1_1B = Shape{Name: "tinyllama-1.1b-shaped", Vocab: 32000, Embd: 2048, Layers: 22, Heads: 32, HeadsKV: 4, FFN: 5632, Context: 2048, RopeBase: 10000, NormEpsilon: 1e-5}
	// Tiny is a toy shape for exact tests (f32, a Go reference can follow it).
	Tiny = Shape{Name: "tiny-test", Vocab: 512, Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FFN: 128, Context: 256, RopeBase: 10000, NormEpsilon: 1e-5}
)

// Params is the number of weights of s.
func (s Shape) Params() int64 {
	hd := s.Embd / s.Heads
	kv := s.HeadsKV * hd
	per := int64(s.Embd)*int64(s.Embd)*2 + int64(s.Embd)*int64(kv)*2 + int64(s.Embd)*int64(s.FFN)*3 + int64(s.Embd)*2
	n := int64(s.Vocab)*int64(s.Embd) + int64(s.Layers)*per + int64(s.Embd)
	if !s.TiedOutput {
		n += int64(s.Vocab) * int64(s.Embd)
	}
	return n
}

// ftype is llama.cpp's general.file_type for a file mostly of type t.
func ftype(t Type) uint32 {
	switch t {
	case F32:
		return 0
	case F16:
		return 1
	case Q4_0:
		return 2
	case Q8_0:
		return 7
	}
	return 0
}

// Vocab returns a SentencePiece-style vocabulary of n tokens: <unk>, <s>,
// </s>, the 256 byte tokens, then generated pieces (so any text tokenizes).
func Vocab(n int) (tokens []string, scores []float32, types []int32) {
	tokens = []string{"<unk>", "<s>", "</s>"}
	types = []int32{2, 3, 3} // unknown, control, control
	for b := 0; b < 256; b++ {
		tokens = append(tokens, fmt.Sprintf("<0x%02X>", b))
		types = append(types, 6) // byte
	}
	const letters = "etaoinshrdlucmfwypvbgkqjxz"
	seen := map[string]bool{}
	add := func(s string) {
		if len(tokens) < n && !seen[s] {
			seen[s] = true
			tokens = append(tokens, s)
			types = append(types, 1)
		}
	}
	for c := byte(33); c < 127; c++ {
		add(string(c))
	}
	add("▁")
	// Then words over the alphabet, shortest first, each also with the
	// SentencePiece word-start marker.
	for l := 1; len(tokens) < n; l++ {
		idx := make([]int, l)
		for len(tokens) < n {
			b := make([]byte, l)
			for i, k := range idx {
				b[i] = letters[k]
			}
			add("▁" + string(b))
			add(string(b))
			i := l - 1
			for i >= 0 {
				idx[i]++
				if idx[i] < len(letters) {
					break
				}
				idx[i] = 0
				i--
			}
			if i < 0 {
				break
			}
		}
	}
	scores = make([]float32, len(tokens))
	for i := range scores {
		if types[i] == 1 {
			scores[i] = -float32(i)
		}
	}
	return tokens, scores, types
}

// WriteLlama writes a llama-architecture GGUF of shape s to path: weights
// are uniform random (deterministic for a seed) of type t (F32, Q8_0 or
// Q4_0; norms stay F32), with the vocabulary of Vocab.
func WriteLlama(path string, s Shape, t Type, seed uint64) error {
	return Fixture{Shape: s, Type: t, Seed: seed}.Write(path)
}

// Fixture is a llama-architecture model with random weights.
type Fixture struct {
	Shape Shape
	// Type of the matrices: F32, Q8_0 or Q4_0 (norms stay F32).
	Type Type
	// Seed makes the weights: the same seed, the same weights.
	Seed uint64
	// Vocab is the tokenizer; nil: SyntheticVocab's of Shape.Vocab tokens
	// (Shape.EOS its end of sequence). Shape.Vocab is ignored otherwise.
	Vocab *Vocabulary
	// SwapOutput, when its two token ids differ, exchanges their rows of
	// the output projection (the shape must not tie it to the embedding):
	// the model gives each the logit the other had, and reads every prompt
	// as before. Tests use it to make a model produce a chosen token.
	SwapOutput [2]int
}

// Write writes f to path (through a temporary file: a failed write leaves
// no partial model).
func (f Fixture) Write(path string) error {
	s, t := f.Shape, f.Type
	switch t {
	case F32, Q8_0, Q4_0:
	default:
		return fmt.Errorf("write llama fixture: weight type %s is not supported (F32, Q8_0, Q4_0)", t)
	}
	if s.Embd%s.Heads != 0 || s.Heads%s.HeadsKV != 0 {
		return fmt.Errorf("write llama fixture: shape %s: heads do not divide", s.Name)
	}
	v := f.Vocab
	if v == nil {
		syn := SyntheticVocab(s.Vocab, s.EOS)
		v = &syn
	}
	s.Vocab = len(v.Tokens)
	swap := f.SwapOutput[0] != f.SwapOutput[1]
	if swap && (s.TiedOutput || min(f.SwapOutput[0], f.SwapOutput[1]) < 0 || max(f.SwapOutput[0], f.SwapOutput[1]) >= s.Vocab) {
		return fmt.Errorf("write llama fixture: swap of output rows %v: needs an untied output and ids below %d", f.SwapOutput, s.Vocab)
	}
	kvs := append(llamaKVs(s, t), v.kvs()...)
	ts := f.tensors(s)
	return Write(path, kvs, ts)
}

// llamaKVs is the architecture's metadata of shape s.
func llamaKVs(s Shape, t Type) []KV {
	hd := s.Embd / s.Heads
	return []KV{
		{"general.architecture", "llama"},
		{"general.name", s.Name},
		{"general.file_type", ftype(t)},
		{"llama.context_length", uint32(s.Context)},
		{"llama.embedding_length", uint32(s.Embd)},
		{"llama.block_count", uint32(s.Layers)},
		{"llama.feed_forward_length", uint32(s.FFN)},
		{"llama.attention.head_count", uint32(s.Heads)},
		{"llama.attention.head_count_kv", uint32(s.HeadsKV)},
		{"llama.rope.dimension_count", uint32(hd)},
		{"llama.rope.freq_base", s.RopeBase},
		{"llama.attention.layer_norm_rms_epsilon", s.NormEpsilon},
		{"llama.vocab_size", uint32(s.Vocab)},
	}
}

// tensors are f's weights for shape s (whose Vocab is the vocabulary's).
func (f Fixture) tensors(s Shape) []TensorData {
	t, seed := f.Type, f.Seed
	hd := s.Embd / s.Heads
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	mat := func(name string, cols, rows int) TensorData {
		// The weights of each tensor come from their own stream so that a
		// tensor's values do not depend on the order they are written in.
		sub := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		scale := float32(math.Sqrt(3 / float64(cols)))
		write := func(w io.Writer) error { return writeRandom(w, sub, t, cols*rows, scale) }
		if a, b := f.SwapOutput[0], f.SwapOutput[1]; name == "output.weight" && a != b {
			write = func(w io.Writer) error { return writeSwapped(w, sub, t, cols, rows, scale, a, b) }
		}
		return TensorData{
			Tensor:    Tensor{Name: name, Dims: []uint64{uint64(cols), uint64(rows)}, Type: t},
			WriteData: write,
		}
	}
	norm := func(name string) TensorData {
		return TensorData{
			Tensor: Tensor{Name: name, Dims: []uint64{uint64(s.Embd)}, Type: F32},
			WriteData: func(w io.Writer) error {
				b := make([]byte, 4*s.Embd)
				for i := 0; i < s.Embd; i++ {
					binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(1))
				}
				_, err := w.Write(b)
				return err
			},
		}
	}
	emb := mat("token_embd.weight", s.Embd, s.Vocab)
	// Embeddings feed RMSNorm, so their scale does not matter; unit range
	// keeps quantization meaningful.
	emb.WriteData = func(w io.Writer) error {
		return writeRandom(w, rand.New(rand.NewPCG(seed+1, seed+2)), t, s.Embd*s.Vocab, 1)
	}
	ts := []TensorData{emb}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			norm(p+"attn_norm.weight"),
			mat(p+"attn_q.weight", s.Embd, s.Embd),
			mat(p+"attn_k.weight", s.Embd, s.HeadsKV*hd),
			mat(p+"attn_v.weight", s.Embd, s.HeadsKV*hd),
			mat(p+"attn_output.weight", s.Embd, s.Embd),
			norm(p+"ffn_norm.weight"),
			mat(p+"ffn_gate.weight", s.Embd, s.FFN),
			mat(p+"ffn_up.weight", s.Embd, s.FFN),
			mat(p+"ffn_down.weight", s.FFN, s.Embd),
		)
	}
	ts = append(ts, norm("output_norm.weight"))
	if !s.TiedOutput {
		ts = append(ts, mat("output.weight", s.Embd, s.Vocab))
	}
	return ts
}

// writeSwapped writes what writeRandom would for a rows×cols matrix, with
// rows a and b exchanged.
func writeSwapped(w io.Writer, rng *rand.Rand, t Type, cols, rows int, scale float32, a, b int) error {
	vals := make([]float32, cols*rows)
	for i := range vals {
		vals[i] = (rng.Float32()*2 - 1) * scale
	}
	ra, rb := vals[a*cols:(a+1)*cols], vals[b*cols:(b+1)*cols]
	for i := range ra {
		ra[i], rb[i] = rb[i], ra[i]
	}
	_, err := w.Write(encode(nil, t, vals))
	return err
}

// writeRandom writes n uniform values in [-scale, scale] encoded as t.
func writeRandom(w io.Writer, rng *rand.Rand, t Type, n int, scale float32) error {
	const chunk = 32 * 1024 // values per write, a multiple of every block
	vals := make([]float32, chunk)
	var out []byte
	for done := 0; done < n; done += chunk {
		m := min(chunk, n-done)
		for i := 0; i < m; i++ {
			vals[i] = (rng.Float32()*2 - 1) * scale
		}
		out = encode(out[:0], t, vals[:m])
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// encode appends vals as type t (len(vals) is whole blocks).
func encode(dst []byte, t Type, vals []float32) []byte {
	switch t {
	case Q8_0:
		for b := 0; b+32 <= len(vals); b += 32 {
			dst = appendQ8_0(dst, vals[b:b+32])
		}
	case Q4_0:
		for b := 0; b+32 <= len(vals); b += 32 {
			dst = appendQ4_0(dst, vals[b:b+32])
		}
	default:
		for _, v := range vals {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	}
	return dst
}

// appendQ8_0 quantizes one block like ggml's reference quantizer: an f16
// scale d = max|x|/127 and 32 int8 values round(x/d).
func appendQ8_0(dst []byte, x []float32) []byte {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	dst = binary.LittleEndian.AppendUint16(dst, float16.Fromfloat32(d).Bits())
	for _, v := range x {
		dst = append(dst, byte(int8(math.Round(float64(v*id)))))
	}
	return dst
}

// appendQ4_0 quantizes one block like ggml's reference quantizer: the
// value of largest magnitude maps to -8, d = max/-8, nibbles are
// round(x/d)+8 clamped to 0..15, element j and j+16 share byte j.
func appendQ4_0(dst []byte, x []float32) []byte {
	var amax, mx float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, mx = a, v
		}
	}
	d := mx / -8
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	dst = binary.LittleEndian.AppendUint16(dst, float16.Fromfloat32(d).Bits())
	q := func(v float32) byte {
		return byte(min(15, max(0, int(v*id+8.5))))
	}
	for j := 0; j < 16; j++ {
		dst = append(dst, q(x[j])|q(x[j+16])<<4)
	}
	return dst
}
