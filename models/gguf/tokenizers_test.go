package gguf

import (
	"os"
	"path/filepath"
	"testing"
)

// realTokenizer is the folder of npm package pkg, unpacked by
// scripts/fetch-tokenizers.sh (scripts/setup.sh test runs it).
func realTokenizer(t *testing.T, pkg string) string {
	t.Helper()
	dir := TokenizerDir(pkg)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("%s is needed: run scripts/fetch-tokenizers.sh (%v)", pkg, err)
	}
	return dir
}

// TestLlama3Vocab: the package holds Llama 3's vocabulary as its
// tokenizer.json lists it: 128,000 tokens and 280,147 merges, then the 256
// special tokens at their ids.
func TestLlama3Vocab(t *testing.T) {
	v, err := Llama3Vocab(realTokenizer(t, Llama3TokenizerJS))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Tokens) != 128256 || len(v.Merges) != 280147 || len(v.Types) != len(v.Tokens) {
		t.Fatalf("%d tokens, %d merges, %d types", len(v.Tokens), len(v.Merges), len(v.Types))
	}
	for id, tok := range map[int]string{0: "!", 9906: "Hello", 1917: "Ġworld", 128000: "<|begin_of_text|>", 128001: "<|end_of_text|>",
		128006: "<|start_header_id|>", 128007: "<|end_header_id|>", 128009: "<|eot_id|>", 128255: "<|reserved_special_token_247|>"} {
		if v.Tokens[id] != tok {
			t.Errorf("token %d = %q, want %q", id, v.Tokens[id], tok)
		}
	}
	if v.Merges[0] != "Ġ Ġ" || v.BOS != 128000 || v.EOS != 128001 || v.Types[128009] != TokenControl || v.Types[9906] != TokenNormal {
		t.Errorf("first merge %q, bos %d, eos %d, types %d %d", v.Merges[0], v.BOS, v.EOS, v.Types[128009], v.Types[9906])
	}
}

// TestLlama2Vocab: Llama 2's 32,000 pieces, and scores that rank every
// merged piece above every piece no merge makes.
func TestLlama2Vocab(t *testing.T) {
	v, err := Llama2Vocab(realTokenizer(t, Llama2TokenizerJS))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Tokens) != 32000 || len(v.Scores) != 32000 {
		t.Fatalf("%d tokens, %d scores", len(v.Tokens), len(v.Scores))
	}
	for id, tok := range map[int]string{1: "<s>", 2: "</s>", 13: "<0x0A>", 15043: "▁Hello", 3186: "▁world", 29871: "▁"} {
		if v.Tokens[id] != tok {
			t.Errorf("token %d = %q, want %q", id, v.Tokens[id], tok)
		}
	}
	if v.Types[13] != TokenByte || v.Types[2] != TokenControl || v.Scores[15043] <= v.Scores[29871] {
		t.Errorf("types %d %d, scores ▁Hello %v ▁ %v", v.Types[13], v.Types[2], v.Scores[15043], v.Scores[29871])
	}
	chatml := v.WithChatML(TokenControl)
	if chatml.ID("<|im_end|>") != 32000 || chatml.ID("<|im_start|>") != 32001 || len(v.Tokens) != 32000 || chatml.ChatTemplate != ChatMLTemplate {
		t.Errorf("ChatML tokens %d %d; the base vocabulary now has %d", chatml.ID("<|im_end|>"), chatml.ID("<|im_start|>"), len(v.Tokens))
	}
}

// TestFixtureSwapOutput: swapping two output rows changes only them.
func TestFixtureSwapOutput(t *testing.T) {
	dir := t.TempDir()
	s := Tiny
	a, b := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf")
	if err := (Fixture{Shape: s, Type: F32, Seed: 4}).Write(a); err != nil {
		t.Fatal(err)
	}
	if err := (Fixture{Shape: s, Type: F32, Seed: 4, SwapOutput: [2]int{5, 300}}).Write(b); err != nil {
		t.Fatal(err)
	}
	row := func(path string, r int) string {
		info, err := Inspect(path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		for _, tn := range info.Tensors {
			if tn.Name == "output.weight" {
				off := int(info.DataOffset + tn.Offset)
				return string(data[off+4*s.Embd*r : off+4*s.Embd*(r+1)])
			}
		}
		t.Fatal("no output.weight")
		return ""
	}
	if row(a, 5) != row(b, 300) || row(a, 300) != row(b, 5) || row(a, 6) != row(b, 6) || row(a, 5) == row(a, 300) {
		t.Fatal("rows 5 and 300 are not exactly exchanged")
	}
	tied := s
	tied.TiedOutput = true
	if err := (Fixture{Shape: tied, Type: F32, SwapOutput: [2]int{1, 2}}).Write(filepath.Join(dir, "c.gguf")); err == nil {
		t.Fatal("a swap of a tied output was written")
	}
}
