// Command ggufgen writes llama-architecture GGUF fixtures of real shapes
// with random weights, for tests and benchmarks (scripts/bench-llm.sh):
//
//	go run ./models/gguf/ggufgen -shape smollm2-135m -type q8_0 -o smollm2.gguf
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/models/gguf"
)

func main() {
	shape := flag.String("shape", "tiny", "model shape: tiny, smollm2-135m, tinyllama-1.1b")
	typ := flag.String("type", "f32", "weight type: f32, q8_0, q4_0")
	out := flag.String("o", "", "output file")
	seed := flag.Uint64("seed", 1, "random seed of the weights")
	flag.Parse()
	shapes := map[string]gguf.Shape{"tiny": gguf.Tiny, "smollm2-135m": gguf.SmolLM2_135M, "tinyllama-1.1b": gguf.TinyLlama_1_1B}
	types := map[string]gguf.Type{"f32": gguf.F32, "q8_0": gguf.Q8_0, "q4_0": gguf.Q4_0}
	s, ok := shapes[strings.ToLower(*shape)]
	t, ok2 := types[strings.ToLower(*typ)]
	if !ok || !ok2 || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	start := time.Now()
	if err := gguf.WriteLlama(*out, s, t, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "ggufgen:", err)
		os.Exit(1)
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(os.Stderr, "ggufgen: wrote %s (%s, %s, %d params, %d bytes) in %s\n", *out, s.Name, t, s.Params(), st.Size(), time.Since(start).Round(time.Millisecond))
}
