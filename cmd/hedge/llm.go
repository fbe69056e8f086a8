package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/telemetry"
	"github.com/hedge-edge/hedge/models"
	"github.com/hedge-edge/hedge/models/llm"
	"github.com/hedge-edge/hedge/platform"
)

// modelStore is the models folder of a configuration.
func modelStore(cfg config.Config) *models.Store {
	return models.Open(filepath.Join(cfg.StateDir, "models"))
}

// wireLLM opens the local LLM tier: it resolves llm.model (a GGUF path or
// a name in the models manifest) and loads it. With llm.model "" the tier
// is off: the generator is nil and closeFn does nothing. tel, when set,
// gets each answer's speed from llama.cpp's own token counts. An error that
// wraps llm.ErrNoCPUVariant means this CPU runs none of the llama.cpp
// variants found: run keeps serving without the tier.
func wireLLM(ctx context.Context, cfg config.Config, log *slog.Logger, tel *telemetry.Telemetry) (gen agent.Generator, closeFn func() error, err error) {
	noop := func() error { return nil }
	c := cfg.LLM
	if c.Model == "" {
		return nil, noop, nil
	}
	log = log.With("component", "llm")
	path, name, err := modelStore(cfg).Resolve(c.Model)
	if err != nil {
		return nil, noop, fmt.Errorf("llm.model: %w", err)
	}
	threads := c.Threads
	if threads == 0 {
		f, _ := platform.Detect("/") // partial facts still give a core count
		threads = f.DefaultThreads()
	}
	queue := c.QueueSize
	if queue == 0 {
		queue = -1 // llm.Options: 0 is "default", negative is "none may wait"
	}
	kvBytes := int64(c.KVCacheMB) << 20
	if kvBytes == 0 {
		kvBytes = -1 // llm.Options: 0 is "default", negative is "none saved"
	}
	g, err := llm.New(ctx, llm.Options{
		Path: path, Name: name,
		ContextSize: c.ContextSize, Threads: threads, BatchSize: c.BatchSize, MaxTokens: c.MaxTokens,
		SystemPrompt: c.SystemPrompt, ChatTemplate: c.ChatTemplate, Stop: c.Stop,
		Temperature: c.Temperature, TopK: c.TopK, TopP: c.TopP, MinP: c.MinP,
		RepeatPenalty: c.RepeatPenalty, RepeatLastN: c.RepeatLastN, Seed: c.Seed,
		QueueSize: queue, KeepAlive: c.KeepAlive, MMap: c.MMap, NoRepack: !c.Repack, FlashAttention: c.FlashAttention,
		NoKVReuse: !c.KVReuse, KVCacheBytes: kvBytes, CPULibraryDir: c.CPULibraryDir,
		Log: log, OnStats: llmStats(tel),
	})
	if err != nil {
		return nil, noop, fmt.Errorf("llm: %w", err)
	}
	return g, g.Close, nil
}

// llmStats feeds hedge_llm_tokens_per_second from the generator's counts of
// each answer; nil without telemetry.
func llmStats(tel *telemetry.Telemetry) func(llm.Stats) {
	if tel == nil {
		return nil
	}
	return func(s llm.Stats) { tel.ObserveLLMGeneration(s.Tokens, s.GenTime) }
}
