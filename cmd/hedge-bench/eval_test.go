package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/models/slm/evaluate"
)

// clincSlice writes a 12-intent slice of CLINC150 (with all of its
// out-of-scope items) to dir, never to the repository, and returns its path.
func clincSlice(t *testing.T, dir string) string {
	t.Helper()
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
	data := filepath.Join(dir, "clinc_small.json")
	b, _ := json.Marshal(small)
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestBenchEval runs hedge-bench eval as scripts/bench-slm.sh does: the
// splits written in fastText's format, a baseline's predictions read back
// (here a perfect one, written from the test's own labels), the plot and
// the whole result as JSON for the report.
func TestBenchEval(t *testing.T) {
	dir := t.TempDir()
	data := clincSlice(t, dir)
	t.Setenv("HEDGE_SLM_RUNTIME_LIBRARY", ortLibrary(t))
	var stdout, stderr bytes.Buffer
	ft := filepath.Join(dir, "ft")
	os.Mkdir(ft, 0o755) // bench-slm.sh hands it mktemp -d
	if code := evalCmd(context.Background(), []string{"--data", data, "--write-fasttext", ft}, &stdout, &stderr); code != 0 {
		t.Fatalf("--write-fasttext: exit %d: %s", code, stderr.String())
	}
	// predict-prob's output for a classifier that is always right.
	ds, err := evaluate.LoadCLINC150(data)
	if err != nil {
		t.Fatal(err)
	}
	for split, items := range map[string][]evaluate.Item{"val": ds.Val, "test": ds.Test} {
		if _, err := os.Stat(filepath.Join(ft, split+".txt")); err != nil {
			t.Fatalf("--write-fasttext: %v", err)
		}
		var pred strings.Builder
		for _, it := range items {
			fmt.Fprintf(&pred, "__label__%s 0.9\n", it.Label)
		}
		os.WriteFile(filepath.Join(dir, split+".pred"), []byte(pred.String()), 0o644)
	}
	plot, jsonFile := filepath.Join(dir, "curve.png"), filepath.Join(dir, "slm.json")
	code := evalCmd(context.Background(), []string{"--data", data, "--members", "1", "--plot", plot, "--json-file", jsonFile,
		"--baseline-val", filepath.Join(dir, "val.pred"), "--baseline-test", filepath.Join(dir, "test.pred"), "--baseline-bytes", "1234567"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("eval exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"hedge compact: ", "Larson", "fastText", "baseline model 1.23 MB", "plot: " + plot} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	var ej evalJSON
	if b, err := os.ReadFile(jsonFile); err != nil || json.Unmarshal(b, &ej) != nil ||
		ej.Hedge.ModelBytes == 0 || ej.Hedge.Target.InScopeAccuracy < 0.8 || ej.Hedge.Larson.Name == "" || ej.BaselineBytes != 1234567 {
		t.Errorf("--json-file %s does not hold the evaluation: %v %+v", jsonFile, err, ej.Hedge)
	}
	if len(ej.Baseline) == 0 || ej.Baseline[0].InScopeAccuracy != 1 {
		t.Errorf("baseline rows %+v; want the perfect classifier's accuracy 1", ej.Baseline)
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("plot is not a PNG: %v", err)
	}
	for _, args := range [][]string{
		{},
		{"--data", data, "--format", "csv"},
		{"--data", data, "--baseline-val", "v.pred"},
	} {
		if code := evalCmd(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
