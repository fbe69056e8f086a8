#!/usr/bin/env bash
# deb.sh [OUTDIR] — builds hedge's .deb packages for amd64 and arm64 into
# OUTDIR (dist/): each holds the binary (/usr/bin/hedge), its architecture's
# llama.cpp CPU variants (/usr/lib/hedge/libggml-cpu-*.so, every one: hedge
# loads the best the CPU runs) and ONNX Runtime
# (/usr/lib/hedge/libonnxruntime.so.1), the systemd unit and a
# drop-in, sysusers.d/tmpfiles.d entries and /etc/hedge/config.yaml as a
# conffile. The version comes from git (packaging.DebVersion). The packager
# is Go (package packaging, nfpm as a library); docs/edge.md describes the
# package.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
version=${DEB_VERSION:-}

scripts/build-arm64.sh bin/hedge-linux-arm64
(eval "$(scripts/cgo-env.sh amd64)" && go build -trimpath -ldflags "-X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o bin/hedge ./cmd/hedge)
lib_amd64=$(scripts/fetch-ort.sh x64)
lib_arm64=$(scripts/fetch-ort.sh arm64)

for arch in amd64 arm64; do
	if [ "$arch" = amd64 ]; then bin=bin/hedge lib=$lib_amd64; else bin=bin/hedge-linux-arm64 lib=$lib_arm64; fi
	variants=$(eval "$(scripts/cgo-env.sh "$arch")" && echo "$HEDGE_LLAMA_DIR/lib")
	go run ./cmd/hedge-pkg --arch "$arch" --binary "$bin" --library "$lib" --variants "$variants" --out "$out" ${version:+--version "$version"}
done
