package mqtt

// CPUBreakdown is where a running hedge's CPU went per MQTT request while
// a steady load ran: what `hedge-bench profile` writes from a CPU profile
// and two allocation profiles of `hedge run`, and what hedge-bench report
// reads, so that the two agree on one schema.
type CPUBreakdown struct {
	// Path and Rate are the load during the profile: a path of hedge
	// bench mqtt ("slm") at Rate requests a second, open loop.
	Path string `json:"path"`
	Rate int    `json:"rate"`
	// Seconds is how long the CPU profile ran; Requests the requests
	// the load sent meanwhile (Rate × Seconds).
	Seconds  float64 `json:"seconds"`
	Requests float64 `json:"requests"`
	// CPUus is the profile's CPU time per request, user and system, in
	// µs; ProcessCPUus the same from /proc (utime + stime of the whole
	// process, threads the Go profiler does not see included).
	CPUus        float64 `json:"cpu_us_per_request"`
	ProcessCPUus float64 `json:"process_cpu_us_per_request"`
	// AllocBytes and Allocs are the heap allocations per request.
	AllocBytes float64 `json:"alloc_bytes_per_request"`
	Allocs     float64 `json:"allocs_per_request"`
	// Parts split the CPU and the allocations by where they happen, the
	// largest share first. When /proc counts more than the profile, the
	// difference is a part of its own and the shares are of ProcessCPUus.
	Parts []CPUPart `json:"parts"`
	// Load is the load average (1, 5, 15 min) when the profile ended.
	Load string `json:"load"`
}

// CPUPart is one part of a CPUBreakdown.
type CPUPart struct {
	Name string `json:"name"`
	// Share is the part's fraction of the CPU time (0 to 1).
	Share      float64 `json:"share"`
	CPUus      float64 `json:"cpu_us_per_request"`
	AllocBytes float64 `json:"alloc_bytes_per_request"`
	Allocs     float64 `json:"allocs_per_request"`
}
