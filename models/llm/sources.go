//go:build tools

package llm

// The ollama module is where scripts/cgo-env.sh takes llama.cpp's sources
// from (built by CMake); no hedge package compiles its Go or cgo code. This
// file, which no build compiles, keeps the module in go.mod through
// go mod tidy.
import _ "github.com/ollama/ollama/llama/llama.cpp/src"
