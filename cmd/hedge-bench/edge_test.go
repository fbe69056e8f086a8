package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

// TestBenchEdge measures the real hedge binary against a real mosquitto,
// as scripts/bench-edge.sh does, with fewer starts and requests, and
// renders the report's section from its JSON.
func TestBenchEdge(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Config{})
	dir := t.TempDir()
	js := filepath.Join(dir, "edge.json")
	var stdout, stderr bytes.Buffer
	code := benchEdge(context.Background(), []string{"--hedge", hedgeBinary(t), "--broker", broker.URL, "--runtime-library", ortLibrary(t),
		"--starts", "2", "--requests", "4", "--settle", "100ms", "--json", js}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	var r edgeResult
	b, err := os.ReadFile(js)
	if err != nil || json.Unmarshal(b, &r) != nil {
		t.Fatalf("edge.json: %v\n%s", err, b)
	}
	if r.HedgeBytes < 1e6 || r.BenchBytes < 1e6 || len(r.ColdStartMS) != 2 || r.ColdStartMedianMS <= 0 ||
		r.IdleRSS < 10e6 || r.ReadyRSS < 10e6 || r.IdleHWM < r.IdleRSS || r.TrainPeakRSS < r.IdleRSS/2 || r.Requests != 4 {
		t.Errorf("implausible figures: %+v", r)
	}
	for _, want := range []string{"| idle RSS of hedge run after 4 requests (VmRSS) |", "| cold start to READY=1", "≤ 300 ms"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	rc := &reportCtx{dir: dir, imgLink: dir}
	body, err := renderEdgeSection(rc)
	if err != nil || !strings.Contains(body, edgeTable(r)) {
		t.Fatalf("section: %v\n%s", err, body)
	}
	if len(rc.heads) != 4 {
		t.Errorf("headlines %+v; want the binary size and the three targets", rc.heads)
	}
	if code := benchEdge(context.Background(), []string{"--starts", "0"}, &stdout, &stderr); code != 2 {
		t.Errorf("no broker: exit %d, want 2", code)
	}
}

func TestEdgeVerdicts(t *testing.T) {
	r := edgeResult{HedgeBytes: 26e6, BenchBytes: 23e6, IdleRSS: 46e6, ColdStartMS: []float64{250, 310, 290}, ColdStartMedianMS: 290, TrainPeakRSS: 150e6, Requests: 100}
	got := map[string]bool{}
	for _, f := range edgeFigures(r) {
		if f.target != "" {
			got[strings.SplitN(f.name, " ", 2)[0]] = f.met
		}
	}
	want := map[string]bool{"idle": false, "cold": true, "peak": true}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: met %v, want %v (%v)", k, got[k], v, got)
		}
	}
	// Nothing measured is never a target met.
	for _, f := range edgeFigures(edgeResult{}) {
		if f.met {
			t.Errorf("%s: met with no measurement", f.name)
		}
	}
}
