#!/usr/bin/env bash
# build-arm64.sh [OUT] — cross-builds hedge for linux/arm64 (Raspberry Pi
# 4/5, Jetson) on an amd64 Debian machine, cgo on: the ONNX Runtime loader
# and llama.cpp, compiled by Debian's aarch64-linux-gnu gcc/g++ with the
# flags of scripts/cgo-env.sh arm64. Writes OUT (bin/hedge-linux-arm64) and
# prints what the binary needs from the board (glibc, libstdc++) and where
# its llama.cpp CPU variants are: hedge loads them from beside itself,
# ../lib/hedge or llm.cpu_library_dir (make deb packages both).
#
# One build for every board: the binary is armv8-a, and of the variants
# (armv8.0_1, armv8.2_1, armv8.2_2) hedge loads the best one the CPU runs,
# armv8.0_1 on a Pi 4, armv8.2_2 on a Pi 5 or a Jetson Orin (docs/edge.md).
#
# llama.cpp's cross build takes minutes the first time; it is cached by the
# ollama version and the flags (scripts/cgo-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/hedge-linux-arm64}

scripts/apt-ensure.sh gcc-aarch64-linux-gnu g++-aarch64-linux-gnu binutils-aarch64-linux-gnu
eval "$(scripts/cgo-env.sh arm64)"
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
mkdir -p "$(dirname "$out")"
echo "build-arm64: $out ($version, llama.cpp $HEDGE_LLAMA_DIR)" >&2
go build -trimpath -ldflags "-X main.version=$version" -o "$out" ./cmd/hedge

# What the board's loader must provide: the newest symbol version of each
# library the binary links against.
syms=$(aarch64-linux-gnu-objdump -T "$out")
newest() { grep -o "$1[0-9.]*" <<<"$syms" | sort -uV | tail -1; }
echo "build-arm64: wrote $out: $(stat -c %s "$out") bytes; needs $(newest 'GLIBC_2\.'), $(newest 'GLIBCXX_3\.'), $(newest 'GCC_[0-9]')" >&2
echo "build-arm64: NEEDED: $(aarch64-linux-gnu-objdump -p "$out" | awk '/NEEDED/ {print $2}' | tr '\n' ' ')" >&2
echo "build-arm64: CPU variants: $HEDGE_LLAMA_DIR/lib: $(cd "$HEDGE_LLAMA_DIR/lib" && echo libggml-cpu-*.so)" >&2
