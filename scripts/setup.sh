#!/usr/bin/env bash
# setup.sh [build|test] — installs what a fresh Debian machine lacks.
#   build: the C toolchain for cgo and CMake, Go modules, the ONNX Runtime
#          library, and llama.cpp built for this machine's architecture.
#   test:  the above plus the real components the tests run against (and
#          the real tokenizers the chat-template tests build models with,
#          the official Ollama JavaScript client the Ollama API test drives),
#          and llama.cpp built for arm64 too.
# Safe to run again: every step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}
# cmake, ninja-build and patchelf build llama.cpp (scripts/build-llama.sh).
pkgs=(gcc g++ make ca-certificates cmake ninja-build patchelf binutils)
if [ "$what" = test ]; then
	# Everything the tests start or call, installed once here so that test
	# packages running in parallel never race for apt's lock.
	pkgs+=(mosquitto mosquitto-clients systemd chromium dpkg jq util-linux
		qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross
		gcc-aarch64-linux-gnu g++-aarch64-linux-gnu binutils-aarch64-linux-gnu)
fi
scripts/apt-ensure.sh "${pkgs[@]}"
go mod download
scripts/fetch-ort.sh >/dev/null
# llama.cpp, cached by the ollama version and the flags: a no-op once built
# (minutes the first time), done here so that no test has to build it.
scripts/cgo-env.sh >/dev/null
if [ "$what" = test ]; then
	scripts/fetch-tokenizers.sh >/dev/null
	scripts/fetch-ollama-js.sh >/dev/null
	scripts/cgo-env.sh arm64 >/dev/null
fi
