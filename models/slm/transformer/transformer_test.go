package transformer

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hedge-edge/hedge/models/slm"
	"github.com/hedge-edge/hedge/models/slm/transformer/testbert"
)

var rtOnce struct {
	sync.Once
	rt  *slm.Runtime
	err error
}

func testRuntime(t *testing.T) *slm.Runtime {
	t.Helper()
	rtOnce.Do(func() {
		var out, errb bytes.Buffer
		cmd := exec.Command("bash", "../../../scripts/fetch-ort.sh")
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			rtOnce.err = fmt.Errorf("fetch-ort.sh: %v: %s", err, errb.String())
			return
		}
		rtOnce.rt, rtOnce.err = slm.OpenRuntime(strings.TrimSpace(out.String()), 1)
	})
	if rtOnce.err != nil {
		t.Fatal(rtOnce.err)
	}
	return rtOnce.rt
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rtOnce.rt != nil {
		rtOnce.rt.Close()
	}
	os.Exit(code)
}

func TestTokenizer(t *testing.T) {
	tok, err := ParseTokenizer(testbert.TokenizerJSON())
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"Zürich":                "zurich",
		"ZÜRICH weather?":       "zurich weather ?",
		"Hello, there!":         "hello , there !",
		"turn on the lights":    "turn on the light ##s",
		"  hi\tthere\n":         "hi there",
		"unable":                "un ##able",
		"it's":                  "it ' s",
		"xylophone":             "[UNK]",
		"lightx":                "[UNK]",
		"what time is it in 東京": "what time is it in [UNK] [UNK]",
		"hi\x00\u200b there":    "hi there",
		"":                      "",
	} {
		if got := strings.Join(tok.Tokens(in), " "); got != want {
			t.Errorf("Tokens(%q) = %q, want %q", in, got, want)
		}
	}
	ids := tok.Encode("hello there", 64)
	if fmt.Sprint(ids) != "[2 10 13 3]" {
		t.Errorf("Encode = %v, want [CLS] hello there [SEP] = [2 10 13 3]", ids)
	}
	if ids := tok.Encode("hi hi hi hi hi hi", 5); len(ids) != 5 || ids[0] != 2 || ids[4] != 3 {
		t.Errorf("truncated Encode = %v", ids)
	}
	for _, bad := range []string{`{"model":{"type":"BPE","vocab":{"a":0}}}`, `{"model":{"type":"WordPiece","vocab":{"a":0}}}`, `not json`,
		`{"normalizer":{"type":"NFC"},"model":{"type":"WordPiece","vocab":{"[CLS]":0,"[SEP]":1,"[PAD]":2,"[UNK]":3}}}`,
		`{"model":{"type":"WordPiece","vocab":{"[CLS]":0,"[SEP]":1,"[PAD]":2,"[UNK]":3,"x":-1}}}`} {
		if _, err := ParseTokenizer([]byte(bad)); err == nil {
			t.Errorf("ParseTokenizer(%s) accepted", bad)
		}
	}
	if _, err := LoadTokenizer("/nonexistent/tokenizer.json"); err == nil {
		t.Error("missing tokenizer.json accepted")
	}
}

func TestMeanPool(t *testing.T) {
	states := []float32{1, 2, 3, 4, 100, 100}
	got := MeanPool(states, []int64{1, 1, 0}, 2)
	if got[0] != 2 || got[1] != 3 {
		t.Errorf("MeanPool = %v, want [2 3] (masked row ignored)", got)
	}
}

func TestEncoder(t *testing.T) {
	rt := testRuntime(t)
	tok, _ := ParseTokenizer(testbert.TokenizerJSON())
	for _, types := range []bool{true, false} {
		enc, err := NewEncoder(rt, testbert.Encoder(32, types, 1), tok, 64)
		if err != nil {
			t.Fatalf("token types %v: %v", types, err)
		}
		v, err := enc.Embed(context.Background(), "Hello there, turn on the lights!")
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 32 || enc.Hidden() != 32 {
			t.Errorf("pooled size %d", len(v))
		}
		w, _ := enc.Embed(context.Background(), "hello there, turn on the lights")
		var diff float64
		for i := range v {
			diff += math.Abs(float64(v[i] - w[i]))
		}
		if diff == 0 {
			t.Error("punctuation changed nothing: the tokens are not reaching the encoder")
		}
		z, _ := enc.Embed(context.Background(), "ZÜRICH")
		z2, _ := enc.Embed(context.Background(), "zurich")
		if fmt.Sprint(z) != fmt.Sprint(z2) {
			t.Error("ZÜRICH and zurich embed differently")
		}
		enc.Close()
	}
	// Not an encoder: the compact head graph lacks the inputs.
	head := (&Head{Mean: []float32{0}, Std: []float32{1}, W: []float32{1}, B: []float32{0}, Temperature: 1, hidden: 1, cls: 1}).Export()
	if _, err := NewEncoder(rt, head, tok, 64); err == nil || !strings.Contains(err.Error(), "input_ids") {
		t.Errorf("a non-encoder: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "model.onnx"), testbert.Encoder(16, true, 2), 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), testbert.TokenizerJSON(), 0o644)
	enc, err := LoadEncoder(rt, filepath.Join(dir, "model.onnx"), filepath.Join(dir, "tokenizer.json"), 32)
	if err != nil {
		t.Fatal(err)
	}
	enc.Close()
}

func toyCorpus() slm.Corpus {
	c := slm.Corpus{Labels: []string{"greeting", "lights_on", "lights_off", "time", "oos"}, OutOfScope: "oos"}
	add := func(l int, texts ...string) {
		for _, s := range texts {
			c.Examples = append(c.Examples, slm.Example{Text: s, Label: l})
		}
	}
	add(0, "hello", "hi", "hey there", "good morning", "hello there", "hi there", "hey", "good morning there")
	add(1, "turn on the lights", "lights on", "switch on the lamp", "turn the lamp on", "lights on please", "switch the lights on now", "lamp on", "turn on the kitchen light")
	add(2, "turn off the lights", "lights off", "switch off the lamp", "turn the lamp off", "lights off please", "switch the lights off now", "lamp off", "turn off the kitchen light")
	add(3, "what time is it", "tell me the time", "time please", "what is the time", "the time now", "time", "what time is it now", "tell me what time it is")
	add(4, "what is the capital of france", "write a poem", "zurich weather", "capital of zurich", "write me a poem", "weather in france", "the capital", "poem")
	return c
}

func TestTransformerClassifier(t *testing.T) {
	rt := testRuntime(t)
	tok, _ := ParseTokenizer(testbert.TokenizerJSON())
	enc, err := NewEncoder(rt, testbert.Encoder(48, true, 3), tok, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	b, hd, r, err := Build(context.Background(), enc, toyCorpus(), 0.25, DefaultHeadConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("head: validation accuracy %.2f, threshold %.2f, %d bytes", r.Accuracy, r.Threshold, r.ModelBytes)
	dir := t.TempDir()
	if err := b.Save(dir); err != nil {
		t.Fatal(err)
	}
	b, err = slm.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	clf, err := LoadClassifier(rt, enc, b)
	if err != nil {
		t.Fatal(err)
	}
	defer clf.Close()
	right := 0
	var worst float64
	for _, e := range toyCorpus().Examples {
		probs, pooled, err := clf.Run(context.Background(), e.Text)
		if err != nil {
			t.Fatal(err)
		}
		want := hd.Probs(pooled)
		for i := range probs {
			worst = math.Max(worst, math.Abs(float64(probs[i]-want[i])))
		}
		in, _ := clf.Classify(context.Background(), e.Text)
		label := in.Name
		if label == "" {
			label = "oos"
		}
		if label == toyCorpus().Labels[e.Label] {
			right++
		}
	}
	if worst > 1e-4 {
		t.Errorf("head in ORT and Go differ by %.2e", worst)
	}
	if n := len(toyCorpus().Examples); right < n*8/10 {
		t.Errorf("%d of %d training examples right; want ≥ 80%%", right, n)
	}
	var wg sync.WaitGroup
	want, _ := clf.Classify(context.Background(), "hello there")
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				got, err := clf.Classify(context.Background(), "hello there")
				if err != nil || got.Name != want.Name || got.Confidence != want.Confidence {
					t.Errorf("concurrent: %v %v, want %v", got.Name, err, want.Name)
					return
				}
			}
		}()
	}
	wg.Wait()
}
