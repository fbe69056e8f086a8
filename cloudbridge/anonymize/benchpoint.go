package anonymize

// BenchPoint is one query length's figures in the anonymizer's latency
// benchmark: what anonbench -json writes and hedge-bench report reads, so
// that the two agree on one schema.
type BenchPoint struct {
	Bytes int     `json:"bytes"`
	Runs  int     `json:"runs"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	// MBps is the throughput at the median: bytes over p50.
	MBps float64 `json:"mb_per_s"`
}
