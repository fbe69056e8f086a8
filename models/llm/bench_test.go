package llm

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/gguf"
)

// benchGenerate measures whole requests (prompt + 32 greedy tokens) and
// reports prompt and generation tokens per second. The same prompt every
// time: it is evaluated whole (NoKVReuse), not taken from the KV cache.
func benchGenerate(b *testing.B, path string, threads int) {
	var st Stats
	var promptS, genS float64
	var promptN, genN int
	g, err := New(context.Background(), Options{Path: path, Threads: threads, Temperature: 0, MaxTokens: 32, NoKVReuse: true, OnStats: func(s Stats) { st = s }})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	q := agent.Query{Text: "Once upon a time, there was a little dog named Max who loved to run in the park with his friends."}
	b.ResetTimer()
	for range b.N {
		if _, err := g.Generate(context.Background(), q, nil); err != nil {
			b.Fatal(err)
		}
		promptN += st.PromptTokens
		promptS += st.PromptTime.Seconds()
		genN += st.Tokens - 1
		genS += st.GenTime.Seconds()
	}
	b.ReportMetric(float64(promptN)/promptS, "prompt-tok/s")
	if genS > 0 {
		b.ReportMetric(float64(genN)/genS, "gen-tok/s")
	}
}

func BenchmarkGenerateStories260K(b *testing.B) {
	p, err := filepath.Abs(storiesPath)
	if err != nil {
		b.Fatal(err)
	}
	benchGenerate(b, p, 1)
}

func BenchmarkGenerateTinyQ4_0(b *testing.B) {
	p := filepath.Join(b.TempDir(), "tiny-q4_0.gguf")
	if err := gguf.WriteLlama(p, gguf.Tiny, gguf.Q4_0, 5); err != nil {
		b.Fatal(err)
	}
	benchGenerate(b, p, 1)
}
