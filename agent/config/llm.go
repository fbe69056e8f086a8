package config

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// LLM configures the local llama.cpp tier (models/llm). Owned by the LLM work.
type LLM struct {
	// Model is a GGUF path or a name from the models manifest
	// (<state_dir>/models/manifest.json); "" turns the tier off.
	Model string `yaml:"model"`
	// ContextSize in tokens; 0 means min(2048, the model's training context).
	// A prompt that does not fit gets an error reply, never a silent cut.
	ContextSize int `yaml:"context_size"`
	// Threads for llama.cpp; 0 means one per CPU core.
	Threads int `yaml:"threads"`
	// BatchSize is how many prompt tokens are processed per step.
	BatchSize int `yaml:"batch_size"`
	// MaxTokens is the answer length when a query sets none (a query's
	// max_tokens is still bounded by limits.max_tokens).
	MaxTokens int `yaml:"max_tokens"`
	// SystemPrompt is the system message given to chat models.
	SystemPrompt string `yaml:"system_prompt"`
	// ChatTemplate overrides the template in the GGUF: a llama.cpp built-in
	// name (chatml, llama3, phi3, gemma, …) or "none" for a plain prompt.
	ChatTemplate string `yaml:"chat_template"`
	// Stop strings end an answer (end-of-generation tokens always do).
	Stop []string `yaml:"stop"`
	// Sampling: temperature 0 is greedy; seed -1 draws a seed per request.
	Temperature   float64 `yaml:"temperature"`
	TopK          int     `yaml:"top_k"`
	TopP          float64 `yaml:"top_p"`
	MinP          float64 `yaml:"min_p"`
	RepeatPenalty float64 `yaml:"repeat_penalty"`
	RepeatLastN   int     `yaml:"repeat_last_n"`
	Seed          int64   `yaml:"seed"`
	// QueueSize is how many requests may wait while one generates; more
	// get a busy reply at once.
	QueueSize int `yaml:"queue_size"`
	// KeepAlive frees the model's memory after this long without requests
	// (it loads again on the next); 0 keeps it loaded.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// MMap is auto, on or off (see docs/llm.md: auto avoids holding
	// repacked weights twice).
	MMap string `yaml:"mmap"`
	// Repack lets ggml re-lay Q4_0/Q4_K/IQ4_NL weights for faster CPU kernels.
	Repack bool `yaml:"repack"`
	// FlashAttention uses llama.cpp's flash attention kernel (docs/llm.md):
	// a little faster on a short prompt, far slower as the context fills,
	// so off by default, for conversations.
	FlashAttention bool `yaml:"flash_attention"`
	// KVReuse lets a conversation's follow-up turn evaluate only its new
	// tokens: the KV cache keeps what the last turn evaluated.
	KVReuse bool `yaml:"kv_reuse"`
	// KVCacheMB bounds the memory (MiB) that keeps the KV states of recent
	// conversations other than the last one; 0 keeps none.
	KVCacheMB int `yaml:"kv_cache_mb"`
	// CPULibraryDir is the folder of llama.cpp's CPU variants
	// (libggml-cpu-*.so); "" looks beside the hedge binary, then in
	// ../lib/hedge from it, then in the build cache (docs/edge.md).
	CPULibraryDir string `yaml:"cpu_library_dir"`
}

func defaultLLM() LLM {
	return LLM{
		BatchSize:     512,
		MaxTokens:     256,
		SystemPrompt:  "You are hedge, a helpful assistant on a small device. Answer briefly and plainly.",
		Temperature:   0.7,
		TopK:          40,
		TopP:          0.9,
		MinP:          0.05,
		RepeatPenalty: 1.1,
		RepeatLastN:   64,
		Seed:          -1,
		QueueSize:     4,
		MMap:          "auto",
		Repack:        true,
		KVReuse:       true,
		KVCacheMB:     64,
	}
}

func setLLMInt(p *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("not a whole number")
		}
		*p = n
		return nil
	}
}

func (l *LLM) env() []envOverride {
	return []envOverride{
		{"HEDGE_LLM_MODEL", setString(&l.Model)},
		{"HEDGE_LLM_THREADS", setLLMInt(&l.Threads)},
		{"HEDGE_LLM_CONTEXT_SIZE", setLLMInt(&l.ContextSize)},
		{"HEDGE_LLM_CPU_LIBRARY_DIR", setString(&l.CPULibraryDir)},
	}
}

func (l *LLM) validate() []string {
	var p []string
	if l.ContextSize < 0 || l.ContextSize > 1<<20 {
		p = append(p, Problem("llm.context_size", l.ContextSize, "must be 0 (from the model) or between 1 and 1048576"))
	}
	if l.Threads < 0 || l.Threads > 1024 {
		p = append(p, Problem("llm.threads", l.Threads, "must be 0 (one per core) or between 1 and 1024"))
	}
	if l.BatchSize < 1 || l.BatchSize > 1<<16 {
		p = append(p, Problem("llm.batch_size", l.BatchSize, "must be between 1 and 65536"))
	}
	if l.MaxTokens < 1 {
		p = append(p, Problem("llm.max_tokens", l.MaxTokens, "must be at least 1"))
	}
	if !within(l.Temperature, 0, 5) {
		p = append(p, Problem("llm.temperature", l.Temperature, "must be between 0 (greedy) and 5"))
	}
	if l.TopK < 0 {
		p = append(p, Problem("llm.top_k", l.TopK, "must not be negative (0 turns it off)"))
	}
	if !within(l.TopP, 0, 1) {
		p = append(p, Problem("llm.top_p", l.TopP, "must be between 0 and 1"))
	}
	if !within(l.MinP, 0, 1) {
		p = append(p, Problem("llm.min_p", l.MinP, "must be between 0 and 1"))
	}
	if !within(l.RepeatPenalty, 0, math.MaxFloat64) {
		p = append(p, Problem("llm.repeat_penalty", l.RepeatPenalty, "must not be negative (1 turns it off)"))
	}
	if l.RepeatLastN < -1 {
		p = append(p, Problem("llm.repeat_last_n", l.RepeatLastN, "must be -1 (whole context), 0 (off) or more"))
	}
	if l.Seed < -1 || l.Seed > 1<<32-1 {
		p = append(p, Problem("llm.seed", l.Seed, "must be -1 (random) or between 0 and 4294967295"))
	}
	if l.QueueSize < 0 {
		p = append(p, Problem("llm.queue_size", l.QueueSize, "must not be negative"))
	}
	if l.KeepAlive < 0 {
		p = append(p, Problem("llm.keep_alive", l.KeepAlive, "must not be negative (0 keeps the model loaded)"))
	}
	if l.KVCacheMB < 0 || l.KVCacheMB > 1<<20 {
		p = append(p, Problem("llm.kv_cache_mb", l.KVCacheMB, "must be between 0 (none saved) and 1048576"))
	}
	switch l.MMap {
	case "auto", "on", "off":
	default:
		p = append(p, Problem("llm.mmap", fmt.Sprintf("%q", l.MMap), "must be auto, on or off"))
	}
	for i, s := range l.Stop {
		if s == "" {
			p = append(p, Problem(fmt.Sprintf("llm.stop[%d]", i), `""`, "must not be empty"))
		}
	}
	return p
}
