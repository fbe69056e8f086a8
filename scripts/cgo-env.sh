#!/usr/bin/env bash
# cgo-env.sh [amd64|arm64] — the one place that holds llama.cpp's build
# flags. Prints the `export …` lines every cgo build of hedge needs, after
# making sure llama.cpp is built for them:
#
#   eval "$(scripts/cgo-env.sh)"          # host/GOARCH target
#   eval "$(scripts/cgo-env.sh arm64)"    # Raspberry Pi, Jetson (cross from amd64)
#
# llama.cpp (from the ollama module) is built by CMake, not by cgo
# (scripts/build-llama.sh, scripts/llama/CMakeLists.txt): its core, compiled
# for the architecture's baseline (x86-64; armv8-a, whose atomics gcc picks
# at run time), is a static library linked into hedge, and ggml's CPU
# backend is a set of shared libraries, one per CPU generation, of which
# hedge loads the best one the CPU runs (docs/edge.md):
#   amd64: x64 sse42 sandybridge haswell skylakex icelake alderlake
#   arm64: armv8.0_1 armv8.2_1 (dotprod) armv8.2_2 (dotprod, fp16)
# No -march names a board: one build runs on every CPU of its architecture.
# (arm64's SVE variants gave wrong text under qemu and no Pi or Jetson Orin
# has SVE; gcc 12 cannot build the armv9.2 ones.)
#
# The build is cached in ${HEDGE_CACHE:-~/.cache/hedge}/llama/KEY, KEY
# being the ollama version, the architecture and a hash of every flag and
# build file, so go build and go test never rebuild it and a change of
# either builds a new one. Cold: minutes; cached: instant. Besides the cgo
# variables it exports HEDGE_LLAMA_DIR (that folder; the variants are in its
# lib/) for the scripts that package or test the variants.
#
# Target selection: first argument, else $GOARCH, else `go env GOARCH`.
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
mod=$(cd "$repo" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}} {{.Version}}' github.com/ollama/ollama)
ollama=${mod% *} version=${mod#* }
if [ -z "$ollama" ] || [ ! -f "$ollama/llama/llama.cpp/include/llama.h" ]; then
	echo "cgo-env.sh: github.com/ollama/ollama sources not found (go list gave '$mod')" >&2
	exit 1
fi

case "$arch" in
amd64)
	base_march=x86-64
	variants="x64 sse42 sandybridge haswell skylakex icelake alderlake"
	cc=gcc cxx=g++
	;;
arm64)
	base_march=armv8-a
	variants="armv8.0_1 armv8.2_1 armv8.2_2"
	cc=aarch64-linux-gnu-gcc cxx=aarch64-linux-gnu-g++
	;;
*)
	echo "cgo-env.sh: unsupported GOARCH '$arch' (want amd64 or arm64)" >&2
	exit 1
	;;
esac
if [ "$arch" = "$hostarch" ]; then cc=${CC:-gcc} cxx=${CXX:-g++}; fi

# CMake flags. The GGML_* options (runtime dispatch, repack, llamafile, no
# OpenMP, never native) are in scripts/llama/CMakeLists.txt; Release is -O3
# -DNDEBUG, as ollama's own build.
cmake_flags=(-DCMAKE_BUILD_TYPE=Release -DOLLAMA_DIR="$ollama"
	-DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx"
	-DCMAKE_C_FLAGS="-march=$base_march" -DCMAKE_CXX_FLAGS="-march=$base_march")
if [ "$arch" != "$hostarch" ]; then
	cmake_flags+=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=$([ "$arch" = arm64 ] && echo aarch64 || echo x86_64))
fi

# The key: what was built from what, with which flags and compiler.
hash=$({
	echo "$arch $variants"
	printf '%s\n' "${cmake_flags[@]}" | sed "s|$ollama|OLLAMA|"
	"$cc" --version | head -1
	cat "$here/llama/CMakeLists.txt" "$here/build-llama.sh"
} | sha256sum | cut -c1-12)
key=$version-$arch-$hash
dir=${HEDGE_CACHE:-$HOME/.cache/hedge}/llama/$key
if [ ! -f "$dir/build.txt" ]; then
	"$here/build-llama.sh" "$arch" "$key" "$dir" "$variants" -- "${cmake_flags[@]}" >&2
fi

# Include folders for our binding's llama.h / ggml*.h; the static library
# and the list of symbols hedge exports to the variants it loads.
cppflags="-I$ollama/llama/llama.cpp/include -I$ollama/ml/backend/ggml/ggml/include"
ldflags="-L$dir -Wl,--dynamic-list=$dir/ggml.dynlist"

q() { printf "%q" "$1"; }
echo "export CGO_ENABLED=1"
echo "export CGO_CPPFLAGS=$(q "$cppflags")"
echo "export CGO_CFLAGS=$(q "-O2")"
echo "export CGO_CXXFLAGS=$(q "-O2")"
echo "export CGO_LDFLAGS=$(q "$ldflags")"
echo "export HEDGE_LLAMA_DIR=$(q "$dir")"
if [ "$arch" != "$hostarch" ]; then
	echo "export GOARCH=$(q "$arch")"
	if [ "$arch" = arm64 ]; then
		echo "export CC=aarch64-linux-gnu-gcc"
		echo "export CXX=aarch64-linux-gnu-g++"
	fi
fi
