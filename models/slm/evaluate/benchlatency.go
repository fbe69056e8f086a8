package evaluate

// FastTextLatency is fastText's time per query in the SLM benchmark, beside
// that of the pipe it is timed through: what fasttextbench -json writes and
// hedge-bench report reads, so that the two agree on one schema.
type FastTextLatency struct {
	FastText LatencyStats `json:"fasttext"`
	// PipeFloor is the same round trip through cat: what fastText's
	// figure holds that is not fastText's.
	PipeFloor LatencyStats `json:"pipe_floor"`
}

// LatencyStats are one loop's per-query round trips in µs, with the
// quantile rule of Run's latency (the value at index ⌊q·n⌋).
type LatencyStats struct {
	N      int     `json:"n"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	MeanUS float64 `json:"mean_us"`
}
