// Command llmbench measures hedge's local LLM tier on one GGUF file:
// prompt and generation tokens per second and the process's peak RSS. It
// prints one JSON line; scripts/bench-llm.sh runs it beside the C baseline
// (models/llm/cbench) and node-llama-cpp on the same files. Every prompt is
// evaluated whole there, as the peers do.
//
// With -turns N it measures a conversation instead: the time to first
// token of turn 1 and turn N, with the KV cache reused between turns and
// without (conversation.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/gguf"
	"github.com/hedge-edge/hedge/models/llm"
)

func main() {
	model := flag.String("model", "", "GGUF file")
	threads := flag.Int("threads", 2, "threads")
	prompt := flag.String("prompt", "", "prompt text")
	gen := flag.Int("gen", 32, "tokens to generate")
	reps := flag.Int("reps", 3, "measured runs (after one warm-up)")
	mmap := flag.String("mmap", "auto", "auto, on or off")
	cpuDir := flag.String("cpu-dir", "", "folder of llama.cpp's CPU variants (default: hedge's own search, llm.CPUFolders)")
	rep := flag.String("report", "", "summarize this file of result lines as a markdown table (stdout)")
	png := flag.String("png", "", "with -report: also draw the table as a bar chart PNG")
	jsonOut := flag.String("json", "", "with -report: also write the medians as JSON to this file; with -turns: the result")
	turns := flag.Int("turns", 0, "measure a conversation of this many turns (time to first token of the first and the last)")
	answer := flag.Int("answer", 150, "with -turns: tokens per answer at most")
	runs := flag.Int("runs", 3, "with -turns: conversations measured (after one warm-up request)")
	template := flag.String("template", "zephyr", "with -turns: chat template (a llama.cpp built-in name)")
	flag.Parse()
	if *turns > 0 {
		if *model == "" {
			flag.Usage()
			os.Exit(2)
		}
		o := convOptions{model: *model, template: *template, jsonOut: *jsonOut, threads: *threads, turns: *turns, answer: *answer, runs: *runs}
		if err := conversation(o); err != nil {
			fmt.Fprintln(os.Stderr, "llmbench:", err)
			os.Exit(1)
		}
		return
	}
	if *rep != "" {
		f, err := os.Open(*rep)
		if err != nil {
			fmt.Fprintln(os.Stderr, "llmbench:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := report(f, os.Stdout, *png, *jsonOut); err != nil {
			fmt.Fprintln(os.Stderr, "llmbench:", err)
			os.Exit(1)
		}
		return
	}
	if *model == "" {
		flag.Usage()
		os.Exit(2)
	}
	start := time.Now()
	var last llm.Stats
	g, err := llm.New(context.Background(), llm.Options{
		Path: *model, Threads: *threads, Temperature: 0, ContextSize: 1024, BatchSize: 512,
		MaxTokens: *gen, MMap: *mmap, NoKVReuse: true, CPULibraryDir: *cpuDir, Log: slog.New(slog.DiscardHandler),
		OnStats: func(s llm.Stats) { last = s },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "llmbench:", err)
		os.Exit(1)
	}
	defer g.Close()
	load := time.Since(start)
	var pps, gps []float64
	for i := 0; i <= *reps; i++ {
		if _, err := g.Generate(context.Background(), agent.Query{Text: *prompt}, nil); err != nil {
			fmt.Fprintln(os.Stderr, "llmbench:", err)
			os.Exit(1)
		}
		if i == 0 {
			continue // warm-up: page faults, first-touch allocations
		}
		pps = append(pps, float64(last.PromptTokens)/last.PromptTime.Seconds())
		gps = append(gps, float64(last.Tokens-1)/last.GenTime.Seconds())
	}
	variant := "unknown"
	if b, err := llm.LoadCPU("", nil); err == nil {
		variant = b.Variant.Name // the one New loaded: the first load holds for the process
	}
	tokenBytes, err := tokenBytes(*model)
	if err != nil {
		fmt.Fprintln(os.Stderr, "llmbench:", err)
		os.Exit(1)
	}
	out := map[string]any{
		"impl": "hedge", "model": *model, "threads": *threads, "variant": variant, "token_bytes": tokenBytes,
		"prompt_tokens": last.PromptTokens, "prompt_tps": median(pps),
		"gen_tokens": last.Tokens, "gen_tps": median(gps),
		"peak_rss_mb": peakRSSMB(), "load_s": load.Seconds(),
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

// tokenBytes is what generating one token reads of the model's weights:
// every tensor's data, except the token-embedding table when the model has
// an output matrix of its own, since generation then reads one row of it
// (with tied embeddings the output product reads it whole).
func tokenBytes(path string) (int64, error) {
	info, err := gguf.Inspect(path)
	if err != nil {
		return 0, err
	}
	var total, embd uint64
	output := false
	for _, t := range info.Tensors {
		n, ok := t.Type.Bytes(t.Elements())
		if !ok {
			return 0, fmt.Errorf("%s: tensor %s: size of type %s unknown", path, t.Name, t.Type)
		}
		total += n
		switch t.Name {
		case "token_embd.weight":
			embd = n
		case "output.weight":
			output = true
		}
	}
	if output {
		total -= embd
	}
	return int64(total), nil
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

// peakRSSMB is VmHWM of this process in MiB.
func peakRSSMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}
