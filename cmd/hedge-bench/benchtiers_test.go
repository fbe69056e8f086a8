package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchTiers runs `hedge-bench tiers` as make bench does: the real
// binary with every tier on (the starter intents in ONNX Runtime, the real
// stories260K model, the loopback cloud), a few answers per tier. Every
// tier must be reached by the queries meant for it, and --from-json must
// redraw the same tables.
func TestBenchTiers(t *testing.T) {
	model, err := filepath.Abs("../../../shared/models/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	js, md, png := filepath.Join(dir, "tiers.json"), filepath.Join(dir, "tiers.md"), filepath.Join(dir, "tiers.png")
	var stdout, stderr bytes.Buffer
	code := benchTiers(context.Background(), []string{"--hedge", hedgeBinary(t), "--llm-model", model,
		"--samples", "6", "--warmup", "1", "--llm-max-tokens", "4", "--runtime-library", ortLibrary(t),
		"--json", js, "--out", md, "--plot", png}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	var r tiersResult
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Tiers) != 4 {
		t.Fatalf("%d tiers, want cache, slm, llm, cloud: %+v", len(r.Tiers), r.Tiers)
	}
	for _, s := range append(r.Tiers, r.Direct) {
		if s.N != 6 || len(s.Samples) != 6 || s.P50 <= 0 || s.P50 > s.P99 || s.P99 > s.Max {
			t.Errorf("%s: n %d, %d samples, p50 %v p99 %v max %v; want 6 ordered positive figures", s.Tier, s.N, len(s.Samples), s.P50, s.P99, s.Max)
		}
		if s.Tier != "cloud, direct HTTP" && s.HedgeP50 <= 0 {
			t.Errorf("%s: hedge's own latency missing", s.Tier)
		}
		if got := r.Routing[s.Tier][s.Tier]; s.Tier != "cloud, direct HTTP" && got != 6 {
			t.Errorf("queries meant for %s: %v, want all 6 answered by it", s.Tier, r.Routing[s.Tier])
		}
	}
	// The cache answers from bbolt, the LLM generates: orders of magnitude.
	if r.Tiers[0].Tier != "cache" || r.Tiers[2].Tier != "llm" || r.Tiers[0].P50 >= r.Tiers[2].P50 {
		t.Errorf("cache p50 %v ms is not below llm p50 %v ms", r.Tiers[0].P50, r.Tiers[2].P50)
	}
	img, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Fatalf("plot: %v, %d bytes", err, len(img))
	}
	table, _ := os.ReadFile(md)
	if stdout.String() != string(table) || !strings.Contains(string(table), "| llm | llm 6 |") {
		t.Fatalf("table on stdout and in --out differ or lack the routing:\n%s\n---\n%s", stdout.String(), table)
	}
	var again bytes.Buffer
	if code := benchTiers(context.Background(), []string{"--from-json", js}, &again, &stderr); code != 0 || again.String() != string(table) {
		t.Fatalf("--from-json: exit %d, table:\n%s\nwant:\n%s", code, again.String(), table)
	}
}

func TestBenchTiersUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{
		{}, // no model
		{"--llm-model", "m.gguf", "--samples", "0"}, // nothing to time
		{"--llm-model", "m.gguf", "extra"},
	} {
		if code := benchTiers(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code := benchTiers(context.Background(), []string{"--llm-model", filepath.Join(t.TempDir(), "missing.gguf")}, &stdout, &stderr); code != 1 {
		t.Errorf("a missing model: exit %d, want 1", code)
	}
}
