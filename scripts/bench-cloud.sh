#!/usr/bin/env bash
# bench-cloud.sh — the cloud tier's benchmarks (called by `make bench`):
#   anonymizer throughput and p99 for a 200-character query, restore cost,
#   and the bridge's added latency over a loopback OpenAI-compatible server
#   compared with a direct go-openai call (ratio), with and without a budget.
# Everything runs on loopback; nothing reaches the internet.
# Usage: scripts/bench-cloud.sh [benchtime]   (default 3s)
# Writes to OUT (default bin/bench): cloud.json (go test -json),
# cloud-anonymizer.json and cloud-anonymizer.png (latency against length).
# `hedge-bench report --dir OUT --only cloud` prints the table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
benchtime=${1:-3s}
go=${GO:-go}
out=${OUT:-bin/bench}
mkdir -p "$out"
"$go" test -json -run='^$' -bench='Anonymize200|Restore|BridgeOverhead' -benchtime="$benchtime" \
	./cloudbridge/anonymize/ ./cloudbridge/ >"$out/cloud.json"
echo "bench-cloud: wrote $out/cloud.json" >&2
# Latency against query length, 50 B to the default 16 KiB limit.
"$go" run ./cloudbridge/anonymize/anonbench -o "$out/cloud-anonymizer.png" -json "$out/cloud-anonymizer.json"
echo "bench-cloud: wrote $out/cloud-anonymizer.json and .png" >&2
