#!/usr/bin/env bash
# build-arm64.sh [OUT] — cross-builds hedge for linux/arm64 (Raspberry Pi
# 4/5, Jetson) on an amd64 Debian machine, cgo on: the ONNX Runtime loader
# and llama.cpp, compiled by Debian's aarch64-linux-gnu gcc/g++ with the
# flags of scripts/cgo-env.sh arm64. Writes OUT (bin/hedge-linux-arm64) and
# prints what the binary needs from the board (glibc, libstdc++).
#
# Target CPU (docs/edge.md):
#   default                          -march=armv8.2-a+fp16+dotprod: Pi 5, Orin
#   HEDGE_ARM64_CPU=cortex-a72       Pi 4 (armv8.0: no dot product, no LSE)
#   HEDGE_ARM64_CPU=cortex-a76       Pi 5
#   HEDGE_ARM64_CPU=cortex-a78ae     Jetson Orin
#
# llama.cpp's cross build takes minutes the first time; the Go build cache
# keeps it for every later build with the same flags.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/hedge-linux-arm64}

scripts/apt-ensure.sh gcc-aarch64-linux-gnu g++-aarch64-linux-gnu binutils-aarch64-linux-gnu
eval "$(scripts/cgo-env.sh arm64)"
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
mkdir -p "$(dirname "$out")"
echo "build-arm64: $out ($version, CGO_CFLAGS=$CGO_CFLAGS)" >&2
go build -trimpath -ldflags "-X main.version=$version" -o "$out" ./cmd/hedge

# What the board's loader must provide: the newest symbol version of each
# library the binary links against.
syms=$(aarch64-linux-gnu-objdump -T "$out")
newest() { grep -o "$1[0-9.]*" <<<"$syms" | sort -uV | tail -1; }
echo "build-arm64: wrote $out: $(stat -c %s "$out") bytes; needs $(newest 'GLIBC_2\.'), $(newest 'GLIBCXX_3\.'), $(newest 'GCC_[0-9]')" >&2
echo "build-arm64: NEEDED: $(aarch64-linux-gnu-objdump -p "$out" | awk '/NEEDED/ {print $2}' | tr '\n' ' ')" >&2
