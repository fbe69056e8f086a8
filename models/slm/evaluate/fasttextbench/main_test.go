package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/models/slm/evaluate"
)

// TestRun trains a small real fastText model and times it: one figure per
// query for fastText and for the pipe floor, both positive.
func TestRun(t *testing.T) {
	if out, err := exec.Command("../../../../scripts/apt-ensure.sh", "fasttext").CombinedOutput(); err != nil {
		t.Fatalf("apt-ensure fasttext: %v\n%s", err, out)
	}
	dir := t.TempDir()
	var train, test strings.Builder
	for i, s := range []string{"turn on the light", "switch the lamp on", "what time is it", "tell me the time"} {
		label := []string{"on", "on", "time", "time"}[i]
		for range 5 {
			train.WriteString("__label__" + label + " " + s + "\n")
		}
		test.WriteString(s + "\n")
	}
	os.WriteFile(filepath.Join(dir, "train.txt"), []byte(train.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "test.txt"), []byte(test.String()+"\n"), 0o644)
	model := filepath.Join(dir, "ft")
	if out, err := exec.Command("fasttext", "supervised", "-input", filepath.Join(dir, "train.txt"), "-output", model,
		"-epoch", "5", "-dim", "10", "-verbose", "0").CombinedOutput(); err != nil {
		t.Fatalf("fasttext supervised: %v\n%s", err, out)
	}
	js := filepath.Join(dir, "out.json")
	if err := run("fasttext", model+".bin", filepath.Join(dir, "test.txt"), js); err != nil {
		t.Fatal(err)
	}
	var r evaluate.FastTextLatency
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]evaluate.LatencyStats{"fasttext": r.FastText, "pipe floor": r.PipeFloor} {
		if s.N != 4 || s.P50us <= 0 || s.P99us < s.P50us || s.MeanUS <= 0 {
			t.Errorf("%s = %+v, want 4 queries (the blank line skipped) with positive ordered figures", name, s)
		}
	}
	if err := run("fasttext", filepath.Join(dir, "missing.bin"), filepath.Join(dir, "test.txt"), ""); err == nil {
		t.Error("a missing model timed without error")
	}
}
