#!/usr/bin/env bash
# bench.sh — `make bench`: every benchmark of the README, one after another
# (never in parallel: they would measure each other). Tables go to stdout
# and to bin/bench/*.md, plots to bin/bench/*.png.
#   BENCH=slm,llm,cloud,mqtt,go scripts/bench.sh   # a subset
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/cgo-env.sh)"
out=bin/bench
mkdir -p "$out"
want=${BENCH:-go,slm,cloud,mqtt,llm}
has() { [[ ",$want," == *",$1,"* ]]; }

if has go; then
	echo "== Go benchmarks: store, socket, agent"
	go test -run='^$' -bench=. -benchmem -benchtime=2s ./agent/store/ ./agent/transport/local/ | tee "$out/go.txt"
fi
if has slm; then
	echo "== SLM: hedge eval on CLINC150 beside fastText"
	scripts/bench-slm.sh "$out/slm-clinc150.png" | tee "$out/slm.md"
fi
if has cloud; then
	echo "== cloud bridge: anonymizer and bridge overhead"
	PLOT="$out/cloud-anonymizer.png" scripts/bench-cloud.sh | tee "$out/cloud.md"
fi
if has mqtt; then
	echo "== MQTT round trips through mosquitto"
	scripts/bench-mqtt.sh "$out/mqtt.md" "$out/mqtt.png"
	cat "$out/mqtt.md"
fi
if has llm; then
	echo "== local LLM: hedge vs a C program vs node-llama-cpp"
	OUT="$out" scripts/bench-llm.sh | tee "$out/llm.md"
fi
