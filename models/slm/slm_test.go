package slm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// toyCorpus is a small home-automation intent set with an out-of-scope
// class.
func toyCorpus() Corpus {
	c := Corpus{Labels: []string{"greeting", "lights_on", "lights_off", "time", "oos"}, OutOfScope: "oos", Source: "toy"}
	add := func(l int, texts ...string) {
		for _, t := range texts {
			c.Examples = append(c.Examples, Example{Text: t, Label: l})
		}
	}
	add(0, "hello", "hi", "hey there", "good morning", "hi hedge", "hello there", "howdy", "hiya", "good evening", "hey")
	add(1, "turn on the lights", "lights on", "switch the light on", "light up the room", "put the lights on",
		"lights on please", "turn the lamp on", "switch on the lights", "can you turn the lights on", "lamp on")
	add(2, "turn off the lights", "lights off", "switch the light off", "kill the lights", "put the lights off",
		"lights off please", "turn the lamp off", "switch off the lights", "can you turn the lights off", "lamp off")
	add(3, "what time is it", "what's the time", "tell me the time", "time please", "current time",
		"do you have the time", "what is the time now", "time", "the time", "what hour is it")
	add(4, "what is the capital of france", "explain quantum physics", "write a poem", "who won the war",
		"how do vaccines work", "recommend a book", "what is bitcoin", "why is the sky blue", "tell me a joke", "plan a trip")
	return c
}

func smallOptions() BuildOptions {
	o := DefaultBuildOptions()
	o.Train.Feat.Buckets = 1 << 12
	o.Train.Dim, o.Train.Hidden, o.Train.Epochs = 16, 32, 30
	o.Train.Batch = 8
	return o
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Zürich":             "zurich",
		"Crème Brûlée":       "creme brulee",
		"ÉTÉ":                "ete",
		"naïve Café":         "naive cafe",
		"plain ascii":        "plain ascii",
		"Ångström İstanbul ": "angstrom i̇stanbul ",
		// An invalid byte must not keep the next letter's accent.
		"\xf7ӳ": "\ufffdу",
	} {
		if in == "Ångström İstanbul " {
			// İ lower-cases to i + combining dot, which accent stripping removes.
			want = "angstrom istanbul "
		}
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Words(Normalize("What's the time, hedge?")); strings.Join(got, "|") != "whats|the|time|hedge" {
		t.Errorf("Words = %q", got)
	}
}

func TestFeaturize(t *testing.T) {
	f := DefaultFeaturizer()
	a, b := f.Featurize("Turn ON the lights!"), f.Featurize("turn on the lights")
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("case and punctuation change the features: %v vs %v", a, b)
	}
	var norm float64
	for i, w := range a.Weight {
		norm += float64(w)
		if i > 0 && a.Index[i] <= a.Index[i-1] {
			t.Fatalf("indices not strictly sorted: %v", a.Index)
		}
		if a.Index[i] < 0 || int(a.Index[i]) >= f.Buckets {
			t.Fatalf("index %d outside %d buckets", a.Index[i], f.Buckets)
		}
	}
	if empty := f.Featurize("?!"); len(empty.Index) != 1 {
		t.Errorf("empty text has %d features, want 1", len(empty.Index))
	}
	if c := f.Featurize("lights"); len(c.Index) < 5 {
		t.Errorf("one word gives %d features; char n-grams missing", len(c.Index))
	}
	// With SplitNorm the views partition the features: same rows, same
	// weights (unless a word and a character n-gram share a bucket).
	all := f.Featurize("turn on the kitchen lights")
	w, c := f.FeaturizeView("turn on the kitchen lights", ViewWords), f.FeaturizeView("turn on the kitchen lights", ViewChars)
	got := map[int32]float32{}
	for i, r := range w.Index {
		got[r] += w.Weight[i]
	}
	for i, r := range c.Index {
		got[r] += c.Weight[i]
	}
	if len(got) != len(all.Index) {
		t.Errorf("views have %d rows, all %d", len(got), len(all.Index))
	}
	for i, r := range all.Index {
		if math.Abs(float64(got[r]-all.Weight[i])) > 1e-6 {
			t.Errorf("row %d: views %v, all %v", r, got[r], all.Weight[i])
		}
	}
	if len(w.Index) != 9 {
		t.Errorf("words view has %d features, want 5 words + 4 bigrams", len(w.Index))
	}
}

func TestTrainingIsDeterministic(t *testing.T) {
	ctx := context.Background()
	dir1, dir2, dir3 := t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []struct {
		dir  string
		seed uint64
	}{{dir1, 7}, {dir2, 7}, {dir3, 8}} {
		o := smallOptions()
		o.Train.Seed = d.seed
		b, _, _, err := Build(ctx, toyCorpus(), o)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Save(d.dir); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{FileModel, FileLabels, FileFeaturizer, FileCalib, FileManifest} {
		a, _ := os.ReadFile(filepath.Join(dir1, name))
		b, _ := os.ReadFile(filepath.Join(dir2, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two trainings with the same seed", name)
		}
	}
	a, _ := os.ReadFile(filepath.Join(dir1, FileModel))
	c, _ := os.ReadFile(filepath.Join(dir3, FileModel))
	if bytes.Equal(a, c) {
		t.Error("model.onnx is the same for seeds 7 and 8: the seed is not used")
	}
}

// TestParityORTAndGo checks that the exported graph in ONNX Runtime
// computes what the Go forward pass computes, for float and int8 tables
// and for an ensemble.
func TestParityORTAndGo(t *testing.T) {
	rt := testRuntime(t)
	for _, tc := range []struct {
		name     string
		quantize bool
		members  int
	}{{"float", false, 1}, {"int8", true, 1}, {"int8-ensemble", true, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			o := smallOptions()
			o.Quantize = tc.quantize
			o.Train.Members = tc.members
			o.Train.Views = []View{ViewAll, ViewWords, ViewChars}
			b, m, _, err := Build(context.Background(), toyCorpus(), o)
			if err != nil {
				t.Fatal(err)
			}
			if m.Temperature == 1 {
				t.Fatalf("temperature was not fitted")
			}
			b.Dir = t.TempDir()
			clf, err := rt.LoadClassifier(b)
			if err != nil {
				t.Fatal(err)
			}
			defer clf.Close()
			texts := []string{"hello", "turn the lights on now", "what time is it", "Zürich weather", "", "lamp", "a b c d e f g h i j k l m n o p"}
			for _, c := range toyCorpus().Examples {
				texts = append(texts, c.Text)
			}
			var worst float64
			for _, text := range texts {
				want := m.Predict(o.Train.Feat.Featurize(text))
				probs, hidden, err := clf.Run(text)
				if err != nil {
					t.Fatal(err)
				}
				if len(probs) != len(want.Probs) || len(hidden) != len(want.Hidden) {
					t.Fatalf("%q: shapes %d/%d, want %d/%d", text, len(probs), len(hidden), len(want.Probs), len(want.Hidden))
				}
				for i := range probs {
					worst = math.Max(worst, math.Abs(float64(probs[i]-want.Probs[i])))
				}
				for i := range hidden {
					worst = math.Max(worst, math.Abs(float64(hidden[i]-want.Hidden[i])))
				}
			}
			t.Logf("largest |ORT - Go| over %d texts: %.2e", len(texts), worst)
			if worst > 1e-4 {
				t.Errorf("ORT and Go differ by %.2e > 1e-4", worst)
			}
		})
	}
}

// TestCalibration trains on a synthetic set where the right answer is
// genuinely uncertain (shared words between classes) and checks that the
// temperature-scaled confidence matches accuracy on fresh samples.
func TestCalibration(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const classes = 6
	vocab := func(c, i int) string { return fmt.Sprintf("w%dx%d", c, i) }
	sample := func(c int) string {
		var words []string
		for range 5 {
			switch r := rng.Float64(); {
			case r < 0.45: // own words
				words = append(words, vocab(c, rng.IntN(8)))
			case r < 0.7: // a neighbour's words: ambiguity
				words = append(words, vocab((c+1)%classes, rng.IntN(8)))
			default: // words of every class
				words = append(words, vocab(classes, rng.IntN(30)))
			}
		}
		return strings.Join(words, " ")
	}
	c := Corpus{Source: "synthetic"}
	for k := range classes {
		c.Labels = append(c.Labels, fmt.Sprintf("c%d", k))
	}
	for range 150 {
		for k := range classes {
			c.Examples = append(c.Examples, Example{Text: sample(k), Label: k})
		}
	}
	o := smallOptions()
	o.Refit = false
	o.ValFraction = 0.3
	o.Train.Epochs = 10
	_, m, r, err := Build(context.Background(), c, o)
	if err != nil {
		t.Fatal(err)
	}
	var conf []float64
	var correct []bool
	var raw []float64
	for range 300 {
		for k := range classes {
			f := o.Train.Feat.Featurize(sample(k))
			p := m.Predict(f)
			b := argmax(p.Probs)
			conf = append(conf, float64(p.Probs[b]))
			correct = append(correct, b == k)
			l := m.Logits(f, nil)
			s := make([]float32, len(l))
			Softmax(s, l)
			raw = append(raw, float64(s[argmax(s)]))
		}
	}
	ece := ECE(conf, correct, 10)
	eceRaw := ECE(raw, correct, 10)
	var acc float64
	for _, ok := range correct {
		if ok {
			acc++
		}
	}
	t.Logf("synthetic test: accuracy %.3f, ECE %.4f calibrated (T=%.3f), %.4f uncalibrated; validation ECE %.4f",
		acc/float64(len(correct)), ece, m.Temperature, eceRaw, r.ECE)
	if ece > 0.05 {
		t.Errorf("expected calibration error %.4f > 0.05", ece)
	}
}

func TestClassifyConcurrently(t *testing.T) {
	rt := testRuntime(t)
	b, _, _, err := Build(context.Background(), toyCorpus(), smallOptions())
	if err != nil {
		t.Fatal(err)
	}
	clf, err := rt.LoadClassifier(b)
	if err != nil {
		t.Fatal(err)
	}
	defer clf.Close()
	texts := []string{"hello", "lights on", "what time is it", "write me a poem", "turn off the lamp", "good morning hedge"}
	want := map[string]string{}
	for _, s := range texts {
		in, err := clf.Classify(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		want[s] = fmt.Sprintf("%s %.6f %v", in.Name, in.Confidence, in.Top)
	}
	if want["hello"][:8] != "greeting" {
		t.Errorf("hello classified as %s", want["hello"])
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				s := texts[(g+i)%len(texts)]
				in, err := clf.Classify(context.Background(), s)
				if err != nil {
					errs <- err
					return
				}
				if got := fmt.Sprintf("%s %.6f %v", in.Name, in.Confidence, in.Top); got != want[s] {
					errs <- fmt.Errorf("%q: concurrent %s, sequential %s", s, got, want[s])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClassifyIntent(t *testing.T) {
	rt := testRuntime(t)
	b, _, _, err := Build(context.Background(), toyCorpus(), smallOptions())
	if err != nil {
		t.Fatal(err)
	}
	clf, err := rt.LoadClassifier(b)
	if err != nil {
		t.Fatal(err)
	}
	defer clf.Close()
	in, err := clf.Classify(context.Background(), "write a poem about the sea")
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != "" || len(in.Top) != 3 || in.Top[0].Intent != "oos" {
		t.Errorf("out-of-scope text: name %q top %v; want no intent and oos first", in.Name, in.Top)
	}
	in, _ = clf.Classify(context.Background(), "hello")
	if in.Name != "greeting" || in.Confidence < in.Threshold || in.Threshold <= 0 {
		t.Errorf("hello: %q at %.3f (threshold %.3f)", in.Name, in.Confidence, in.Threshold)
	}
	var n float64
	for _, v := range in.Vector {
		n += float64(v) * float64(v)
	}
	if math.Abs(n-1) > 1e-4 {
		t.Errorf("vector norm² %v, want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := clf.Classify(ctx, "hello"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	rt := testRuntime(t)
	if _, err := LoadBundle(t.TempDir()); !errors.Is(err, ErrNoModel) {
		t.Errorf("empty dir: %v, want ErrNoModel", err)
	}
	b, _, _, err := Build(context.Background(), toyCorpus(), smallOptions())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.Save(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBundle(dir); err != nil {
		t.Fatalf("fresh model: %v", err)
	}
	// A flipped byte: the checksum catches it and names the file.
	data, _ := os.ReadFile(filepath.Join(dir, FileModel))
	data[len(data)/2] ^= 0xff
	os.WriteFile(filepath.Join(dir, FileModel), data, 0o644)
	_, err = LoadBundle(dir)
	if !errors.Is(err, ErrCorruptModel) || !strings.Contains(err.Error(), FileModel) {
		t.Errorf("flipped byte: %v, want ErrCorruptModel naming %s", err, FileModel)
	}
	// Garbage that matches its checksum: ONNX Runtime refuses it at load.
	b.Model = []byte("this is not an onnx model")
	if _, err := rt.LoadClassifier(b); err == nil || !strings.Contains(err.Error(), "load onnx model") {
		t.Errorf("garbage model: %v", err)
	}
	// Labels of another model: caught by the startup probe.
	good, _, _, _ := Build(context.Background(), toyCorpus(), smallOptions())
	good.Labels.Labels = good.Labels.Labels[:3]
	if _, err := rt.LoadClassifier(good); !errors.Is(err, ErrCorruptModel) {
		t.Errorf("labels mismatch: %v, want ErrCorruptModel", err)
	}
}

func TestFindLibrary(t *testing.T) {
	t.Setenv("HEDGE_CACHE", t.TempDir())
	_, err := FindLibrary("")
	if !errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), CacheDir(HostArch())) || !strings.Contains(err.Error(), "fetch-ort.sh") {
		t.Errorf("no library: %v; want ErrNoLibrary listing the cache path", err)
	}
	if _, err := FindLibrary("/nonexistent/libonnxruntime.so.1"); !errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), "slm.runtime_library") {
		t.Errorf("configured path missing: %v", err)
	}
	lib := filepath.Join(CacheDir(HostArch()), LibraryName)
	os.MkdirAll(filepath.Dir(lib), 0o755)
	os.WriteFile(lib, []byte("x"), 0o644)
	if got, err := FindLibrary(""); err != nil || got != lib {
		t.Errorf("cache: %q %v, want %q", got, err, lib)
	}
}

// TestCorruptLibrary loads a file that is not a shared library in a fresh
// process (a process has one runtime, and this one's is open).
func TestCorruptLibrary(t *testing.T) {
	if lib := os.Getenv("HEDGE_TEST_CORRUPT_LIB"); lib != "" {
		_, err := OpenRuntime(lib, 1)
		fmt.Printf("RESULT: %v\n", err)
		return
	}
	lib := filepath.Join(t.TempDir(), LibraryName)
	os.WriteFile(lib, []byte("not an ELF file"), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCorruptLibrary$")
	cmd.Env = append(os.Environ(), "HEDGE_TEST_CORRUPT_LIB="+lib)
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "RESULT: open onnx runtime "+lib) {
		t.Errorf("corrupt library: want an error naming it, got:\n%s", out)
	}
}
