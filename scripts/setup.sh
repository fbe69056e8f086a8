#!/usr/bin/env bash
# setup.sh [build|test] — installs what a fresh Debian machine lacks.
#   build: the C toolchain for cgo, Go modules, the ONNX Runtime library.
#   test:  the above plus the real components the tests run against.
# Safe to run again: every step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}
pkgs=(gcc g++ make ca-certificates)
if [ "$what" = test ]; then
	pkgs+=(mosquitto mosquitto-clients systemd chromium fasttext)
fi
scripts/apt-ensure.sh "${pkgs[@]}"
go mod download
if [ -x scripts/fetch-ort.sh ]; then
	scripts/fetch-ort.sh >/dev/null
fi
