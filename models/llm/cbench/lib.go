// Command cbench is not run: built with -buildmode=c-archive it is the very
// llama.cpp build hedge links (the ollama module's sources compiled by cgo
// with the flags of scripts/cgo-env.sh), so that the minimal C program
// bench.c measures llama.cpp itself, without hedge, on identical objects.
package main

import "C"

import (
	_ "github.com/ollama/ollama/llama/llama.cpp/src"
	_ "github.com/ollama/ollama/ml/backend/ggml/ggml/src"
)

func main() {}
