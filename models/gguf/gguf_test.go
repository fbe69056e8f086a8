package gguf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteThenInspect(t *testing.T) {
	for _, typ := range []Type{F32, Q8_0, Q4_0} {
		t.Run(typ.String(), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "m.gguf")
			if err := WriteLlama(p, Tiny, typ, 3); err != nil {
				t.Fatal(err)
			}
			info, err := Inspect(p)
			if err != nil {
				t.Fatal(err)
			}
			if info.String("general.architecture") != "llama" || info.KV["llama.block_count"] != uint32(Tiny.Layers) {
				t.Fatalf("metadata = %v", info.KV)
			}
			if tok, ok := info.KV["tokenizer.ggml.tokens"].(ArrayInfo); !ok || tok.Len != uint64(Tiny.Vocab) {
				t.Fatalf("tokens = %#v", info.KV["tokenizer.ggml.tokens"])
			}
			want := 1 + 9*Tiny.Layers + 1 + 1
			if len(info.Tensors) != want {
				t.Fatalf("%d tensors, want %d", len(info.Tensors), want)
			}
			var params uint64
			for _, tn := range info.Tensors {
				params += tn.Elements()
				if len(tn.Dims) == 2 && tn.Type != typ || len(tn.Dims) == 1 && tn.Type != F32 {
					t.Errorf("%s is %s", tn.Name, tn.Type)
				}
			}
			if int64(params) != Tiny.Params() {
				t.Errorf("params %d, Shape.Params %d", params, Tiny.Params())
			}
			// Same seed, same bytes; another seed, other bytes.
			p2 := filepath.Join(t.TempDir(), "m2.gguf")
			WriteLlama(p2, Tiny, typ, 3)
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(p2)
			if string(a) != string(b) {
				t.Error("same seed wrote different files")
			}
			WriteLlama(p2, Tiny, typ, 4)
			b, _ = os.ReadFile(p2)
			if string(a) == string(b) {
				t.Error("another seed wrote the same file")
			}
		})
	}
}

func TestInspectRejectsDamage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.gguf")
	if err := WriteLlama(good, Tiny, Q8_0, 1); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	info, _ := Inspect(good)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	hugeKV := append([]byte{}, data...)
	copy(hugeKV[16:24], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	badVersion := append([]byte{}, data...)
	badVersion[4] = 9
	cases := []struct {
		name string
		path string
		want error
	}{
		{"empty", write("empty", nil), ErrNotGGUF},
		{"text", write("text", []byte("hello world, not a model")), ErrNotGGUF},
		{"header cut", write("cut1", data[:200]), ErrCorrupt},
		{"data cut", write("cut2", data[:info.DataOffset+100]), ErrCorrupt},
		{"last byte missing", write("cut3", data[:len(data)-40]), ErrCorrupt},
		{"absurd kv count", write("huge", hugeKV), ErrCorrupt},
		{"unknown version", write("ver", badVersion), ErrCorrupt},
	}
	for _, c := range cases {
		if _, err := Inspect(c.path); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestVocabIsUniqueAndSized(t *testing.T) {
	for _, n := range []int{512, 32000} {
		toks, scores, types := Vocab(n)
		if len(toks) != n || len(scores) != n || len(types) != n {
			t.Fatalf("Vocab(%d) sizes %d %d %d", n, len(toks), len(scores), len(types))
		}
		seen := map[string]bool{}
		for _, s := range toks {
			if seen[s] {
				t.Fatalf("duplicate token %q", s)
			}
			seen[s] = true
		}
	}
}
