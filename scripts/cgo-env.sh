#!/usr/bin/env bash
# cgo-env.sh [amd64|arm64] — prints the `export …` lines every cgo build of
# hedge needs, so that the Makefile, CI, tests and benchmarks compile
# llama.cpp (from the ollama module) with exactly the same flags:
#
#   eval "$(scripts/cgo-env.sh)"          # host/GOARCH target
#   eval "$(scripts/cgo-env.sh arm64)"    # Raspberry Pi (cross from amd64)
#
# Why one script: the Go build cache keys cgo objects on these variables;
# identical flags everywhere mean llama.cpp (~80 s cold) is compiled once
# and shared by `go build`, `go test` and `go test -bench`.
#
# Target selection: first argument, else $GOARCH, else `go env GOARCH`.
# Overrides: HEDGE_AMD64_MARCH (default x86-64-v3: AVX2+FMA+F16C+BMI2, every
# x86 CPU since Haswell/Zen1), HEDGE_ARM64_MARCH (default armv8.2-a+fp16+dotprod:
# Cortex-A76 / Raspberry Pi 5; a Pi 4 (Cortex-A72) needs armv8-a+crc), or
# HEDGE_ARM64_CPU (one board's core as -mcpu=, e.g. cortex-a72 for a Pi 4).
# -march=native is never used: the binary must run on the fleet, not on the
# build machine.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

arch=${1:-${GOARCH:-}}
if [ -z "$arch" ]; then
	arch=$(cd "$repo" && go env GOARCH)
fi
hostarch=$(cd "$repo" && GOARCH= go env GOHOSTARCH)

# The ollama module (llama.cpp + ggml sources) as resolved by go.mod. Run from
# the repo so the version in go.mod wins (and the module cache is filled by
# the normal Go client when missing).
ollama=$(cd "$repo" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/ollama/ollama)
if [ -z "$ollama" ] || [ ! -f "$ollama/llama/llama.cpp/include/llama.h" ]; then
	echo "cgo-env.sh: github.com/ollama/ollama sources not found (go list gave '$ollama')" >&2
	exit 1
fi

# Include folders our binding (models/llm) needs for llama.h / ggml*.h; the
# ollama packages carry their own -I flags in #cgo lines.
cppflags="-I$ollama/llama/llama.cpp/include -I$ollama/ml/backend/ggml/ggml/include"
# CPU repack: ggml-cpu re-lays Q4_0/IQ4_NL weights into interleaved blocks for
# the AVX2/NEON GEMM kernels (ollama's CMake defines this for its CPU backend).
cppflags="$cppflags -DGGML_USE_CPU_REPACK"
# Same as ollama's CMake build: release asserts off.
cppflags="$cppflags -DNDEBUG"

case "$arch" in
amd64)
	march=${HEDGE_AMD64_MARCH:-x86-64-v3}
	cflags="-O3 -march=$march"
	;;
arm64)
	march=${HEDGE_ARM64_MARCH:-armv8.2-a+fp16+dotprod}
	cflags="-O3 -march=$march"
	# HEDGE_ARM64_CPU=cortex-a72|cortex-a76|cortex-a78ae: one board's core,
	# -mcpu= (its architecture and tuning) instead of -march (docs/edge.md).
	if [ -n "${HEDGE_ARM64_CPU:-}" ]; then
		cflags="-O3 -mcpu=$HEDGE_ARM64_CPU"
	fi
	;;
*)
	echo "cgo-env.sh: unsupported GOARCH '$arch' (want amd64 or arm64)" >&2
	exit 1
	;;
esac

q() { printf "%q" "$1"; }
echo "export CGO_ENABLED=1"
echo "export CGO_CPPFLAGS=$(q "$cppflags")"
echo "export CGO_CFLAGS=$(q "$cflags")"
echo "export CGO_CXXFLAGS=$(q "$cflags")"
if [ "$arch" != "$hostarch" ]; then
	echo "export GOARCH=$(q "$arch")"
	if [ "$arch" = arm64 ]; then
		echo "export CC=aarch64-linux-gnu-gcc"
		echo "export CXX=aarch64-linux-gnu-g++"
	fi
fi
