package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/models/slm/transformer/testbert"
)

// ortLibrary runs scripts/fetch-ort.sh (a fresh machine downloads the
// library once) and returns the library's path.
func ortLibrary(t *testing.T) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("bash", "../../scripts/fetch-ort.sh")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("fetch-ort.sh: %v\n%s", err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// slmConfig is a config whose SLM uses the starter intents and a model
// directory in dir.
func slmConfig(t *testing.T, dir string) config.Config {
	cfg := config.Default()
	cfg.StateDir = dir
	cfg.SLM.RuntimeLibrary = ortLibrary(t)
	cfg.SLM.Threads = 1
	return cfg
}

func TestWireSLM(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := slmConfig(t, dir)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	clf, sk, version, closeFn, err := wireSLM(ctx, cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "training intent model") || !strings.HasPrefix(version, "compact-") {
		t.Errorf("first start did not train (version %q):\n%s", version, logs.String())
	}
	a := agent.New(agent.Options{Classifier: clf, Skills: sk, SLMModel: version})
	for text, wantSLM := range map[string]bool{
		"hello":                         true,
		"turn on the kitchen lights":    false, // an action, and no MQTT: error reply
		"what is the capital of France": false,
		"explain quantum entanglement":  false,
	} {
		ans := a.Handle(ctx, agent.Query{ID: "1", Text: text}, nil)
		switch {
		case wantSLM && (ans.Tier != agent.TierSLM || ans.Intent != "greeting" || ans.Answer == ""):
			t.Errorf("%q: tier %q intent %q answer %q error %v; want the greeting from the slm", text, ans.Tier, ans.Intent, ans.Answer, ans.Error)
		case !wantSLM && ans.Tier == agent.TierSLM:
			t.Errorf("%q: answered by the slm (%s at %.2f)", text, ans.Intent, ans.Confidence)
		}
		if text == "turn on the kitchen lights" && (ans.Error == nil || !strings.Contains(ans.Error.Message, "MQTT is not configured")) {
			t.Errorf("action without MQTT: %+v", ans.Error)
		}
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	var model string
	matches, _ := filepath.Glob(filepath.Join(dir, "slm", "*", "model.onnx"))
	if len(matches) != 1 {
		t.Fatalf("model files %v", matches)
	}
	model = matches[0]

	// Second start: the saved model is loaded, not retrained.
	logs.Reset()
	_, _, v2, closeFn, err := wireSLM(ctx, cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeFn()
	if strings.Contains(logs.String(), "training intent model") || v2 != version {
		t.Errorf("second start retrained or changed version %q → %q:\n%s", version, v2, logs.String())
	}

	// A corrupt model is a clear startup error naming the file.
	data, _ := os.ReadFile(model)
	data[len(data)-10] ^= 0x55
	os.WriteFile(model, data, 0o644)
	_, _, _, _, err = wireSLM(ctx, cfg, log, nil)
	if err == nil || !strings.Contains(err.Error(), "model.onnx") || !strings.Contains(err.Error(), "delete") {
		t.Errorf("corrupt model: %v", err)
	}

	// A missing library is a clear startup error naming the path.
	cfg.SLM.RuntimeLibrary = filepath.Join(dir, "nope", "libonnxruntime.so.1")
	_, _, _, _, err = wireSLM(ctx, cfg, log, nil)
	if err == nil || !strings.Contains(err.Error(), cfg.SLM.RuntimeLibrary) {
		t.Errorf("missing library: %v", err)
	}

	// Disabled: no tier, no error.
	cfg.SLM.Enabled = false
	c, s, _, closeFn, err := wireSLM(ctx, cfg, log, nil)
	if err != nil || c != nil || s != nil || closeFn() != nil {
		t.Errorf("disabled: %v %v %v", c, s, err)
	}
}

func TestWireSLMBadIntents(t *testing.T) {
	dir := t.TempDir()
	cfg := slmConfig(t, dir)
	cfg.SLM.Intents = filepath.Join(dir, "intents.yaml")
	os.WriteFile(cfg.SLM.Intents, []byte("version: 1\nintents:\n  - {name: a, examples: [hi], answer: x}\n"), 0o644)
	_, _, _, _, err := wireSLM(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), `intent "a": examples`) {
		t.Errorf("bad intents: %v", err)
	}
}

func TestTrainCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "intents.yaml")
	os.WriteFile(file, []byte(`version: 1
intents:
  - {name: hi, answer: Hello., examples: [hello, hi, hey there, good morning, hiya, howdy]}
  - {name: bye, answer: Bye., examples: [bye, goodbye, see you, later, good night, farewell]}
  - {name: time, answer: "{{.time}}", examples: [what time is it, time please, the time, current time, tell me the time]}
out_of_scope: [what is the capital of france, write a poem, tell me a joke, how do vaccines work]
`), 0o644)
	var runs [2]string
	for i := range runs {
		out := filepath.Join(dir, "m", string(rune('a'+i)))
		var stdout, stderr bytes.Buffer
		if code := train(context.Background(), []string{"--intents", file, "--out", out, "--seed", "5"}, &stdout, &stderr); code != 0 {
			t.Fatalf("train exit %d: %s", code, stderr.String())
		}
		for _, w := range []string{"trained 3 intents", "validation:", "threshold:", "bytes"} {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("report lacks %q:\n%s", w, stdout.String())
			}
		}
		if !strings.Contains(stderr.String(), "100%") {
			t.Errorf("no progress bar on stderr: %q", stderr.String())
		}
		data, err := os.ReadFile(filepath.Join(out, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = string(data)
	}
	if runs[0] != runs[1] {
		t.Error("same intents and seed gave different model.onnx bytes")
	}
	var stderr bytes.Buffer
	os.WriteFile(file, []byte("version: 1\nintents:\n  - {name: x, examples: [a, b], escalate: maybe, answer: y}\n"), 0o644)
	if code := train(context.Background(), []string{"--intents", file, "--out", dir}, &bytes.Buffer{}, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), `intent "x": escalate: maybe`) {
		t.Errorf("bad intents: exit %d, %s", code, stderr.String())
	}
	if code := train(context.Background(), []string{"--intents", file}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("missing --out: exit %d", code)
	}
}

// TestEvalCommand runs hedge eval on a 12-intent slice of CLINC150 (written
// to a temporary directory, never the repository) and checks the JSON keys
// and the table.
func TestEvalCommand(t *testing.T) {
	raw, err := os.ReadFile("../../../shared/datasets/clinc150/data_full.json")
	if err != nil {
		t.Fatalf("CLINC150: %v", err)
	}
	var full map[string][][2]string
	if err := json.Unmarshal(raw, &full); err != nil {
		t.Fatal(err)
	}
	keep := map[string]bool{}
	small := map[string][][2]string{}
	for _, split := range []string{"train", "val", "test"} {
		for _, it := range full[split] {
			if len(keep) < 12 {
				keep[it[1]] = true
			}
			if keep[it[1]] {
				small[split] = append(small[split], it)
			}
		}
		small["oos_"+split] = full["oos_"+split]
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "clinc_small.json")
	b, _ := json.Marshal(small)
	os.WriteFile(data, b, 0o644)
	t.Setenv("HEDGE_SLM_RUNTIME_LIBRARY", ortLibrary(t))
	var stdout, stderr bytes.Buffer
	code := eval(context.Background(), []string{"--data", data, "--format", "clinc150", "--members", "1", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("eval exit %d: %s", code, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, stdout.String())
	}
	for _, k := range []string{"in_scope_accuracy", "oos_recall", "threshold", "model_bytes", "classify_p50_us"} {
		if _, ok := got[k]; !ok {
			t.Errorf("eval --json lacks %q: %s", k, stdout.String())
		}
	}
	if acc, _ := got["in_scope_accuracy"].(float64); acc < 0.8 {
		t.Errorf("in-scope accuracy %.3f on 12 intents; want ≥ 0.8", acc)
	}
	if r, _ := got["oos_recall"].(float64); r < 0.5 {
		t.Errorf("oos recall %.3f at the R=0.75 threshold; want ≥ 0.5", r)
	}
	// The plot and the fastText baseline are benchmark tooling, not hedge's.
	for _, flag := range []string{"--plot", "--baseline-val", "--json-file", "--write-fasttext"} {
		if code := eval(context.Background(), []string{"--data", data, flag, filepath.Join(dir, "x")}, &stdout, &stderr); code != 2 {
			t.Errorf("hedge eval %s: exit %d, want 2 (hedge-bench eval has it)", flag, code)
		}
	}
	stdout.Reset()
	if code := eval(context.Background(), []string{"--data", data}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Larson") {
		t.Errorf("table output: exit %d\n%s", code, stdout.String())
	}
	if code := eval(context.Background(), []string{"--data", data, "--format", "csv"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad format: exit %d", code)
	}
	if code := eval(context.Background(), []string{"--data", data, "--encoder", "transformer"}, &stdout, &stderr); code != 2 {
		t.Errorf("transformer without a model: exit %d", code)
	}

	// The transformer path end to end, with the generated test encoder.
	enc, tok := filepath.Join(dir, "encoder.onnx"), filepath.Join(dir, "tokenizer.json")
	os.WriteFile(enc, testbert.Encoder(32, true, 1), 0o644)
	os.WriteFile(tok, testbert.TokenizerJSON(), 0o644)
	stdout.Reset()
	code = eval(context.Background(), []string{"--data", data, "--encoder", "transformer", "--encoder-model", enc, "--tokenizer", tok, "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("eval transformer: exit %d: %s", code, stderr.String())
	}
	got = nil
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || got["encoder"] != "transformer" {
		t.Errorf("eval transformer --json: %v %s", err, stdout.String())
	}
}

// TestWireSLMTransformer wires the transformer path with the generated
// BERT-like test encoder (random weights, Hugging Face names and shapes).
func TestWireSLMTransformer(t *testing.T) {
	dir := t.TempDir()
	cfg := slmConfig(t, dir)
	cfg.SLM.Encoder = "transformer"
	cfg.SLM.Transformer.Model = filepath.Join(dir, "encoder.onnx")
	cfg.SLM.Transformer.Tokenizer = filepath.Join(dir, "tokenizer.json")
	os.WriteFile(cfg.SLM.Transformer.Model, testbert.Encoder(32, true, 1), 0o644)
	os.WriteFile(cfg.SLM.Transformer.Tokenizer, testbert.TokenizerJSON(), 0o644)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	clf, sk, version, closeFn, err := wireSLM(context.Background(), cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := clf.Classify(context.Background(), "hello there")
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Top) != 3 || len(in.Vector) != 32 || !strings.HasPrefix(version, "tf-") {
		t.Errorf("intent %+v version %q", in, version)
	}
	if _, ok := sk.Spec(in.Top[0].Intent); !ok && in.Top[0].Intent != "out_of_scope" {
		t.Errorf("top intent %q is not in the intents file", in.Top[0].Intent)
	}
	closeFn()
	if !strings.Contains(logs.String(), "training intent head") {
		t.Errorf("no head training logged:\n%s", logs.String())
	}
	logs.Reset()
	_, _, v2, closeFn, err := wireSLM(context.Background(), cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeFn()
	if v2 != version || strings.Contains(logs.String(), "training") {
		t.Errorf("second start retrained (%q → %q)", version, v2)
	}
	cfg.SLM.Transformer.Tokenizer = filepath.Join(dir, "missing.json")
	if _, _, _, _, err := wireSLM(context.Background(), cfg, log, nil); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing tokenizer: %v", err)
	}
}
