package llm

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/gguf"
)

// refModel is a plain-Go llama forward pass over an F32 GGUF, written from
// the architecture's definition (RMSNorm, rotary positions on adjacent
// pairs, grouped-query causal attention, SwiGLU). It is slow and exact
// enough to check that the binding feeds llama.cpp the right tokens at the
// right positions and reads the right logits.
type refModel struct {
	s     gguf.Shape
	w     map[string][]float32
	kc    [][][]float64 // [layer][pos] keys (all kv heads)
	vc    [][][]float64
	embdW string
}

func loadRef(t *testing.T, path string, s gguf.Shape) *refModel {
	info, err := gguf.Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &refModel{s: s, w: map[string][]float32{}, kc: make([][][]float64, s.Layers), vc: make([][][]float64, s.Layers)}
	for _, tn := range info.Tensors {
		if tn.Type != gguf.F32 {
			t.Fatalf("reference needs F32, %s is %s", tn.Name, tn.Type)
		}
		off := info.DataOffset + tn.Offset
		v := make([]float32, tn.Elements())
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off+uint64(4*i):]))
		}
		r.w[tn.Name] = v
	}
	r.embdW = "output.weight"
	if _, ok := r.w[r.embdW]; !ok {
		r.embdW = "token_embd.weight"
	}
	return r
}

// matvec computes W x for W stored as rows of len(x).
func matvec(w []float32, x []float64) []float64 {
	n := len(x)
	out := make([]float64, len(w)/n)
	for r := range out {
		row := w[r*n : (r+1)*n]
		var s float64
		for c, v := range row {
			s += float64(v) * x[c]
		}
		out[r] = s
	}
	return out
}

func (r *refModel) rmsnorm(x []float64, w []float32) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	k := 1 / math.Sqrt(ss/float64(len(x))+float64(r.s.NormEpsilon))
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * k * float64(w[i])
	}
	return out
}

func (r *refModel) rope(x []float64, pos, hd int) {
	for h := 0; h < len(x)/hd; h++ {
		for i := 0; i < hd/2; i++ {
			theta := float64(pos) * math.Pow(float64(r.s.RopeBase), -2*float64(i)/float64(hd))
			c, s := math.Cos(theta), math.Sin(theta)
			a, b := x[h*hd+2*i], x[h*hd+2*i+1]
			x[h*hd+2*i] = a*c - b*s
			x[h*hd+2*i+1] = a*s + b*c
		}
	}
}

// step feeds token tok at position pos (positions in order) and returns
// the logits.
func (r *refModel) step(tok, pos int) []float64 {
	s := r.s
	hd := s.Embd / s.Heads
	group := s.Heads / s.HeadsKV
	x := make([]float64, s.Embd)
	for i := range x {
		x[i] = float64(r.w["token_embd.weight"][tok*s.Embd+i])
	}
	for l := 0; l < s.Layers; l++ {
		p := "blk." + itoa(l) + "."
		h := r.rmsnorm(x, r.w[p+"attn_norm.weight"])
		q := matvec(r.w[p+"attn_q.weight"], h)
		k := matvec(r.w[p+"attn_k.weight"], h)
		v := matvec(r.w[p+"attn_v.weight"], h)
		r.rope(q, pos, hd)
		r.rope(k, pos, hd)
		r.kc[l] = append(r.kc[l], k)
		r.vc[l] = append(r.vc[l], v)
		att := make([]float64, s.Embd)
		for head := 0; head < s.Heads; head++ {
			kvh := head / group
			scores := make([]float64, pos+1)
			mx := math.Inf(-1)
			for j := 0; j <= pos; j++ {
				var d float64
				for i := 0; i < hd; i++ {
					d += q[head*hd+i] * r.kc[l][j][kvh*hd+i]
				}
				scores[j] = d / math.Sqrt(float64(hd))
				mx = math.Max(mx, scores[j])
			}
			var sum float64
			for j := range scores {
				scores[j] = math.Exp(scores[j] - mx)
				sum += scores[j]
			}
			for j := range scores {
				for i := 0; i < hd; i++ {
					att[head*hd+i] += scores[j] / sum * r.vc[l][j][kvh*hd+i]
				}
			}
		}
		o := matvec(r.w[p+"attn_output.weight"], att)
		for i := range x {
			x[i] += o[i]
		}
		h = r.rmsnorm(x, r.w[p+"ffn_norm.weight"])
		g := matvec(r.w[p+"ffn_gate.weight"], h)
		u := matvec(r.w[p+"ffn_up.weight"], h)
		for i := range g {
			g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
		}
		d := matvec(r.w[p+"ffn_down.weight"], g)
		for i := range x {
			x[i] += d[i]
		}
	}
	x = r.rmsnorm(x, r.w["output_norm.weight"])
	return matvec(r.w[r.embdW], x)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func top2(v []float64) (best int, margin float64) {
	b, s := 0, math.Inf(-1)
	for i := range v {
		if v[i] > v[b] {
			b = i
		}
	}
	for i := range v {
		if i != b && v[i] > s {
			s = v[i]
		}
	}
	return b, v[b] - s
}

// TestGreedyMatchesGoReference generates an F32 fixture and checks that
// greedy decoding through llama.cpp picks, at every step, the token a
// plain-Go forward pass picks (ties within float error excepted).
func TestGreedyMatchesGoReference(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny-f32.gguf")
	if err := gguf.WriteLlama(path, gguf.Tiny, gguf.F32, 7); err != nil {
		t.Fatal(err)
	}
	g, err := New(context.Background(), Options{Path: path, Threads: 1, Temperature: 0, ContextSize: 256, BatchSize: 4, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// BatchSize 4 makes the prompt go through llama_decode in chunks.
	prompt, err := g.m.tokenize("the cat sat on a mat", true, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(prompt) < 6 {
		t.Fatalf("prompt tokens %v", prompt)
	}
	ref := loadRef(t, path, gguf.Tiny)
	var logits []float64
	for i, tok := range prompt {
		logits = ref.step(int(tok), i)
	}
	g.c.clear()
	if err := g.c.decode(prompt, 0); err != nil {
		t.Fatal(err)
	}
	smp := newSampler(sampling{Temperature: 0})
	defer smp.free()
	pos := len(prompt)
	checked := 0
	for step := 0; step < 24; step++ {
		want, margin := top2(logits)
		got := smp.sample(g.c)
		if int(got) != want {
			if margin > 1e-3 {
				t.Fatalf("step %d: llama.cpp picked %d, the reference %d (margin %.4g)", step, got, want, margin)
			}
			t.Logf("step %d: near tie (margin %.2g), following llama.cpp", step, margin)
		} else {
			checked++
		}
		if err := g.c.decode([]int32{got}, pos); err != nil {
			t.Fatal(err)
		}
		logits = ref.step(int(got), pos)
		pos++
	}
	if checked < 20 {
		t.Fatalf("only %d of 24 steps agreed exactly", checked)
	}
}

// TestStopsOnEndOfGeneration writes the same fixture twice, the second
// time naming as end-of-sequence the token greedy decoding produces
// fourth: generation must stop right before it.
func TestStopsOnEndOfGeneration(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "a.gguf")
	if err := gguf.WriteLlama(first, gguf.Tiny, gguf.F32, 11); err != nil {
		t.Fatal(err)
	}
	var toks []int32
	g, err := New(context.Background(), Options{Path: first, Threads: 1, Temperature: 0, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	prompt, _ := g.m.tokenize("a b c", true, false)
	g.c.clear()
	if err := g.c.decode(prompt, 0); err != nil {
		t.Fatal(err)
	}
	smp := newSampler(sampling{})
	for pos := len(prompt); len(toks) < 6; pos++ {
		tok := smp.sample(g.c)
		toks = append(toks, tok)
		g.c.decode([]int32{tok}, pos)
	}
	smp.free()
	g.Close()
	stopAt := -1
	for i := 1; i < len(toks); i++ {
		seen := false
		for _, p := range toks[:i] {
			seen = seen || p == toks[i]
		}
		if !seen && toks[i] > 2 {
			stopAt = i
			break
		}
	}
	if stopAt < 0 {
		t.Fatalf("greedy tokens %v repeat from the start; pick another seed", toks)
	}
	shape := gguf.Tiny
	shape.EOS = uint32(toks[stopAt])
	second := filepath.Join(dir, "b.gguf")
	if err := gguf.WriteLlama(second, shape, gguf.F32, 11); err != nil {
		t.Fatal(err)
	}
	var st Stats
	g2, err := New(context.Background(), Options{Path: second, Threads: 1, Temperature: 0, MaxTokens: 50, Log: testLog(t), OnStats: func(s Stats) { st = s }})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	ans, err := g2.Generate(context.Background(), agent.Query{Text: "a b c"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tokens != stopAt {
		t.Fatalf("generated %d tokens, want %d (stopping at the end-of-generation token %d of %v)", st.Tokens, stopAt, toks[stopAt], toks)
	}
	if ans.Truncated {
		t.Error("an answer the model ended is marked truncated")
	}
	// max_tokens one short of the end: the limit stopped it, so truncated
	// (as OpenAI's "length": the end-of-generation token was not sampled).
	ans, err = g2.Generate(context.Background(), agent.Query{Text: "a b c", MaxTokens: stopAt}, nil)
	if err != nil || st.Tokens != stopAt || !ans.Truncated {
		t.Errorf("max_tokens %d: %d tokens, truncated %v, %v; want truncated", stopAt, st.Tokens, ans.Truncated, err)
	}
}

// TestQuantizedFixturesLoadAndGenerate loads Q8_0 and Q4_0 fixtures (the
// types of the benchmark) and checks the mmap choice: a file with Q4_0
// matrices is read, not mapped, because CPU repacking copies them.
func TestQuantizedFixturesLoadAndGenerate(t *testing.T) {
	for _, c := range []struct {
		typ      gguf.Type
		wantMmap bool
	}{{gguf.Q8_0, true}, {gguf.Q4_0, false}} {
		t.Run(c.typ.String(), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "m.gguf")
			if err := gguf.WriteLlama(p, gguf.Tiny, c.typ, 2); err != nil {
				t.Fatal(err)
			}
			var st Stats
			g, err := New(context.Background(), Options{Path: p, Threads: 1, Temperature: 0, MaxTokens: 8, Log: testLog(t), OnStats: func(s Stats) { st = s }})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.mmapped != c.wantMmap {
				t.Errorf("mmap = %v, want %v", g.mmapped, c.wantMmap)
			}
			if _, err := g.Generate(context.Background(), agent.Query{Text: "hello world"}, nil); err != nil {
				t.Fatal(err)
			}
			if st.PromptTokens < 2 || st.Tokens == 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}
