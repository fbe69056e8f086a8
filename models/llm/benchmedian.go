package llm

import (
	"fmt"
	"math"
	"strings"
)

// BenchMedian is one implementation's figures on one model in the LLM
// benchmark (scripts/bench-llm.sh), the medians over its runs: what
// llmbench -report -json writes and hedge bench report reads, so that the
// two agree on one schema.
type BenchMedian struct {
	Model string `json:"model"`
	// Impl is hedge, c (the C program over the same llama.cpp build) or
	// node-llama-cpp.
	Impl         string  `json:"impl"`
	Threads      int     `json:"threads"`
	PromptTokens int     `json:"prompt_tokens"`
	GenTokens    int     `json:"gen_tokens"`
	PromptTPS    float64 `json:"prompt_tps"`
	GenTPS       float64 `json:"gen_tps"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	Runs         int     `json:"runs"`
}

// BenchTable renders medians as the LLM benchmark's Markdown table, one
// row each in the order given, with hedge's tokens per second divided by
// each peer's on the same model. llmbench prints it and hedge bench report
// repeats it, so the console and BENCHMARKS.md show the same ratios, with
// three decimals (see Ratio).
func BenchTable(ms []BenchMedian) string {
	hedge := map[string]BenchMedian{}
	for _, m := range ms {
		if m.Impl == "hedge" {
			hedge[m.Model] = m
		}
	}
	var b strings.Builder
	b.WriteString("| model | implementation | prompt tok/s | generation tok/s | peak RSS MiB | hedge ÷ it (prompt / gen) | runs |\n" +
		"|---|---|---:|---:|---:|---|---:|\n")
	for _, m := range ms {
		ratio := "—"
		if h, ok := hedge[m.Model]; ok && m.Impl != "hedge" {
			ratio = Ratio(h.PromptTPS/m.PromptTPS) + " / " + Ratio(h.GenTPS/m.GenTPS)
		}
		fmt.Fprintf(&b, "| %s (%d prompt, %d generated tokens) | %s | %.1f | %.1f | %.0f | %s | %d |\n",
			m.Model, m.PromptTokens, m.GenTokens, m.Impl, m.PromptTPS, m.GenTPS, m.PeakRSSMB, ratio, m.Runs)
	}
	return b.String()
}

// Ratio writes hedge's speed over a peer's with three decimals, cut rather
// than rounded: a ratio a hair under its target must not read as on it, in
// the table or in the targets.
func Ratio(r float64) string {
	return fmt.Sprintf("%.3f×", math.Floor(r*1000)/1000)
}
