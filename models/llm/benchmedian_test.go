package llm

import (
	"math"
	"strings"
	"testing"
)

// TestBandwidthBound: the bound is copy bandwidth over the bytes read per
// token, and a median without either has none (no 0 % or Inf in the table).
func TestBandwidthBound(t *testing.T) {
	m := BenchMedian{Model: "a.gguf", Impl: "hedge", GenTPS: 30, TokenBytes: 500e6, CopyGBps: 60}
	if got := m.BoundTPS(); math.Abs(got-120) > 1e-9 {
		t.Errorf("BoundTPS = %v, want 120", got)
	}
	if got := m.BoundFraction(); math.Abs(got-0.25) > 1e-9 {
		t.Errorf("BoundFraction = %v, want 0.25", got)
	}
	for _, m := range []BenchMedian{{GenTPS: 30, CopyGBps: 60}, {GenTPS: 30, TokenBytes: 500e6}} {
		if m.BoundTPS() != 0 || m.BoundFraction() != 0 {
			t.Errorf("%+v: a bound without the bytes or the bandwidth", m)
		}
	}
}

// TestBandwidthNote: the table gives each row's fraction and variant; the
// note says what the bound is and calls out hedge and the C program on
// different variants.
func TestBandwidthNote(t *testing.T) {
	ms := []BenchMedian{
		{Model: "a.gguf", Impl: "hedge", Variant: "icelake", PromptTPS: 100, GenTPS: 30, TokenBytes: 500e6, CopyGBps: 60},
		{Model: "a.gguf", Impl: "c", Variant: "icelake", PromptTPS: 100, GenTPS: 30, TokenBytes: 500e6, CopyGBps: 60},
		{Model: "a.gguf", Impl: "node-llama-cpp", Variant: "zen4", PromptTPS: 100, GenTPS: 15, TokenBytes: 500e6, CopyGBps: 60},
	}
	table := BenchTable(ms)
	for _, want := range []string{"| hedge | icelake | 100.0 | 30.0 | 25 % |", "| node-llama-cpp | zen4 | 100.0 | 15.0 | 12 % |"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	note := BandwidthNote(ms)
	for _, want := range []string{"60.0 GB/s", "a reads 500 MB of weights per generated token, so at most 120 tok/s",
		"the same CPU variant of the same llama.cpp build (icelake)"} {
		if !strings.Contains(note, want) {
			t.Errorf("note lacks %q:\n%s", want, note)
		}
	}
	ms[1].Variant = "haswell"
	if note := BandwidthNote(ms); !strings.Contains(note, "**hedge and the C program loaded different CPU variants** (a: hedge icelake, the C program haswell)") {
		t.Errorf("different variants not called out:\n%s", note)
	}
	if note := BandwidthNote([]BenchMedian{{Model: "a.gguf", Impl: "hedge"}}); note != "" {
		t.Errorf("a note without bandwidth or variants: %q", note)
	}
}
