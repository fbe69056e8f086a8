package llm

import (
	"fmt"
	"math"
	"strings"
)

// BenchMedian is one implementation's figures on one model in the LLM
// benchmark (scripts/bench-llm.sh), the medians over its runs: what
// llmbench -report -json writes and hedge-bench report reads, so that the
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
// each peer's on the same model. llmbench prints it and hedge-bench report
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

// BenchConversation is the conversation benchmark's result (llmbench
// -turns, in scripts/bench-llm.sh): the time to first token of a
// conversation's first and last turn, with the KV cache reused between
// turns and with every prompt evaluated whole, medians over Runs. llmbench
// writes it and hedge-bench report reads it.
type BenchConversation struct {
	Model    string `json:"model"`
	Threads  int    `json:"threads"`
	Template string `json:"template"`
	Turns    int    `json:"turns"`
	// AnswerTokens bounds each answer (max_tokens).
	AnswerTokens int `json:"answer_tokens"`
	Runs         int `json:"runs"`
	// LoadBefore and LoadAfter are /proc/loadavg's three load averages.
	LoadBefore string    `json:"load_before"`
	LoadAfter  string    `json:"load_after"`
	Reuse      BenchTTFT `json:"reuse"`
	Whole      BenchTTFT `json:"whole"`
}

// BenchTTFT is one way of answering a conversation: its first and last
// turn's time to first token (medians, and every run's), prompt tokens and
// the prompt tokens the KV cache held already.
type BenchTTFT struct {
	FirstMS           float64   `json:"first_ms"`
	LastMS            float64   `json:"last_ms"`
	FirstRunsMS       []float64 `json:"first_runs_ms"`
	LastRunsMS        []float64 `json:"last_runs_ms"`
	FirstPromptTokens int       `json:"first_prompt_tokens"`
	LastPromptTokens  int       `json:"last_prompt_tokens"`
	LastReusedTokens  int       `json:"last_reused_tokens"`
}

// Ratio is the last turn's time to first token over the first's.
func (t BenchTTFT) Ratio() float64 {
	if t.FirstMS <= 0 {
		return 0
	}
	return t.LastMS / t.FirstMS
}

// ConversationTable renders c as Markdown, one row per way; llmbench
// prints it and hedge-bench report repeats it.
func ConversationTable(c BenchConversation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| KV cache | turn 1 TTFT | turn %d TTFT | turn %d ÷ turn 1 | turn 1 prompt tokens | turn %d prompt tokens (reused) | runs |\n"+
		"|---|---:|---:|---|---:|---:|---:|\n", c.Turns, c.Turns, c.Turns)
	for _, w := range []struct {
		name string
		t    BenchTTFT
	}{{"reused between turns", c.Reuse}, {"every prompt whole", c.Whole}} {
		fmt.Fprintf(&b, "| %s | %.0f ms | %.0f ms | %s | %d | %d (%d) | %d |\n", w.name, w.t.FirstMS, w.t.LastMS,
			RatioUp(w.t.Ratio()), w.t.FirstPromptTokens, w.t.LastPromptTokens, w.t.LastReusedTokens, c.Runs)
	}
	return b.String()
}

// RatioUp writes a ratio held to an upper bound with three decimals,
// rounded up: a ratio a hair over its bound must not read as on it.
func RatioUp(r float64) string {
	return fmt.Sprintf("%.3f×", math.Ceil(r*1000)/1000)
}
