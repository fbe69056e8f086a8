package llm

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
