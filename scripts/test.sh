#!/usr/bin/env bash
# test.sh — `make test`: every test, in the order CI runs them, each step
# timed; a table of where the time went is printed at the end (also when a
# step fails), so what the suite costs is always on record.
#
# The Go tests run under the race detector (-race) in every package but
# one: the cgo packages (llama.cpp, ONNX Runtime) included, since the race
# runtime only instruments Go code and their C runs at full speed. The
# exception is agent/transport/mqtt, which runs without it: there paho's
# client races with itself when it resumes a session with a publish in
# flight (resume() sets the Dup flag of a stored packet while its writer
# encodes it; paho.mqtt.golang issue 703, open), which the race detector
# reports at random, failing a run on none of hedge's code. The fuzz
# targets, the chaos suite and the qemu runs build without it: fuzzing
# instruments for coverage instead, the chaos suite measures a real hedge
# binary as shipped, and qemu runs the .debs' binaries as shipped.
#
# The setup step builds llama.cpp for amd64 and arm64 when the cache lacks
# them (minutes, once per ollama version and flags; scripts/cgo-env.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

steps=()
started=$(date +%s)
summary() {
	local rc=$?
	echo
	echo "make test: where the time went"
	printf '  %-34s %6s\n' step seconds
	for s in "${steps[@]}"; do printf '  %-34s %6s\n' ${s}; done
	printf '  %-34s %6s\n' total $(($(date +%s) - started))
	exit $rc
}
trap summary EXIT

# step NAME CMD...: runs CMD, recording how long it took under NAME.
step() {
	local name=$1 t0
	shift
	t0=$(date +%s)
	"$@"
	steps+=("$name $(($(date +%s) - t0))")
}

step setup scripts/setup.sh test
step vet make --no-print-directory vet
step go-test-race bash -c 'eval "$(scripts/cgo-env.sh)" && go test -race -count=1 -timeout 45m $(go list ./... | grep -v "/agent/transport/mqtt$")'
step go-test-mqtt bash -c 'eval "$(scripts/cgo-env.sh)" && go test -count=1 -timeout 15m ./agent/transport/mqtt/'
step fuzz env FUZZTIME=10s scripts/fuzz.sh
# After the other tests, never beside them: the suite jumps the clock.
step chaos env CHAOS_PHASE=5s scripts/chaos.sh
step qemu scripts/test-qemu.sh
step service scripts/test-service.sh
