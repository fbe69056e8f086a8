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
	// Variant is the llama.cpp CPU variant the implementation loaded
	// (libggml-cpu-NAME.so), as each reports it: hedge and the C program
	// choose among the same build's, node-llama-cpp among its prebuilt's.
	Variant string `json:"variant,omitempty"`
	// TokenBytes is what generating one token reads of the weights: the
	// GGUF's tensor data, less the token-embedding table when the model
	// has an output matrix of its own (generation looks up one row of it).
	TokenBytes int64 `json:"token_bytes,omitempty"`
	// CopyGBps is the memory copy bandwidth measured in the same run
	// (models/llm/cbench/membw.c, STREAM's copy: bytes read plus written),
	// the median over its rounds.
	CopyGBps float64 `json:"copy_gbps,omitempty"`
}

// BoundTPS is the generation speed that memory bandwidth allows: the
// copy bandwidth over the bytes read per token; 0 when either is unknown.
func (m BenchMedian) BoundTPS() float64 {
	if m.TokenBytes <= 0 || m.CopyGBps <= 0 {
		return 0
	}
	return m.CopyGBps * 1e9 / float64(m.TokenBytes)
}

// BoundFraction is the generation speed as a fraction of BoundTPS, 0
// when that is unknown.
func (m BenchMedian) BoundFraction() float64 {
	if b := m.BoundTPS(); b > 0 {
		return m.GenTPS / b
	}
	return 0
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
	b.WriteString("| model | implementation | CPU variant | prompt tok/s | generation tok/s | of the bandwidth bound | peak RSS MiB | hedge ÷ it (prompt / gen) | runs |\n" +
		"|---|---|---|---:|---:|---:|---:|---|---:|\n")
	for _, m := range ms {
		ratio := "—"
		if h, ok := hedge[m.Model]; ok && m.Impl != "hedge" {
			ratio = Ratio(h.PromptTPS/m.PromptTPS) + " / " + Ratio(h.GenTPS/m.GenTPS)
		}
		variant, bound := m.Variant, "—"
		if variant == "" {
			variant = "—"
		}
		if f := m.BoundFraction(); f > 0 {
			bound = fmt.Sprintf("%.0f %%", 100*f)
		}
		fmt.Fprintf(&b, "| %s (%d prompt, %d generated tokens) | %s | %s | %.1f | %.1f | %s | %.0f | %s | %d |\n",
			m.Model, m.PromptTokens, m.GenTokens, m.Impl, variant, m.PromptTPS, m.GenTPS, bound, m.PeakRSSMB, ratio, m.Runs)
	}
	return b.String()
}

// BandwidthNote says, below BenchTable, what the bandwidth bound of each
// model is and whether hedge and the C program ran the same CPU variant
// (a comparison of different kernels would say nothing of hedge's
// binding); "" when the medians carry neither.
func BandwidthNote(ms []BenchMedian) string {
	var b strings.Builder
	var bounds []string
	gbps := 0.0
	variants := map[string]map[string]string{} // model → impl → variant
	var models []string
	for _, m := range ms {
		if variants[m.Model] == nil {
			variants[m.Model] = map[string]string{}
			models = append(models, m.Model)
			if m.BoundTPS() > 0 {
				gbps = m.CopyGBps
				bounds = append(bounds, fmt.Sprintf("%s reads %.0f MB of weights per generated token, so at most %.0f tok/s",
					strings.TrimSuffix(m.Model, ".gguf"), float64(m.TokenBytes)/1e6, m.BoundTPS()))
			}
		}
		variants[m.Model][m.Impl] = m.Variant
	}
	if len(bounds) > 0 {
		fmt.Fprintf(&b, "Bandwidth bound: memory copies at %.1f GB/s here (STREAM-style copy by as many threads, bytes read plus written, "+
			"median of the run's probes between rounds); %s. \"Of the bandwidth bound\" is generation tok/s over that.\n",
			gbps, strings.Join(bounds, "; "))
	}
	var same, differ []string
	for _, model := range models {
		h, c := variants[model]["hedge"], variants[model]["c"]
		switch {
		case h == "" || c == "":
		case h == c:
			same = append(same, h)
		default:
			differ = append(differ, fmt.Sprintf("%s: hedge %s, the C program %s", strings.TrimSuffix(model, ".gguf"), h, c))
		}
	}
	if len(b.String()) > 0 && (len(same) > 0 || len(differ) > 0) {
		b.WriteString("\n")
	}
	switch {
	case len(differ) > 0:
		fmt.Fprintf(&b, "**hedge and the C program loaded different CPU variants** (%s): their ratio compares kernels, not hedge's binding.\n",
			strings.Join(differ, "; "))
	case len(same) > 0:
		fmt.Fprintf(&b, "hedge and the C program loaded the same CPU variant of the same llama.cpp build (%s) on every model.\n", same[0])
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
