#!/usr/bin/env bash
# bench-cloud.sh — the cloud tier's benchmarks (called by `make bench`):
#   anonymizer throughput and p99 for a 200-character query, restore cost,
#   and the bridge's added latency over a loopback OpenAI-compatible server
#   compared with a direct go-openai call (ratio), with and without a budget.
# Everything runs on loopback; nothing reaches the internet.
# Usage: scripts/bench-cloud.sh [benchtime]   (default 3s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
benchtime=${1:-3s}
go=${GO:-go}
out=$("$go" test -run='^$' -bench='Anonymize200|Restore|BridgeOverhead' -benchtime="$benchtime" \
	./cloudbridge/anonymize/ ./cloudbridge/)
printf '%s\n' "$out" | grep -E '^(Benchmark|cpu:)'
# A compact table of the figures docs/cloud.md quotes.
printf '%s\n' "$out" | awk '
	/^BenchmarkAnonymize200/ { for (i = 1; i < NF; i++) { if ($(i+1) == "queries/s") q = $i; if ($(i+1) == "p99-µs") p = $i; if ($(i+1) == "ns/op") m = $i } }
	/^BenchmarkBridgeOverhead\/no-budget/ { for (i = 1; i < NF; i++) { if ($(i+1) == "added-µs") a = $i; if ($(i+1) == "ratio") r = $i; if ($(i+1) == "direct-µs") d = $i } }
	/^BenchmarkBridgeOverhead\/with-budget/ { for (i = 1; i < NF; i++) { if ($(i+1) == "added-µs") ab = $i; if ($(i+1) == "ratio") rb = $i } }
	END {
		printf "\n| cloud tier figure | value |\n| --- | --- |\n"
		printf "| anonymizer, 200-char query | %s queries/s, mean %.0f µs, p99 %s µs |\n", q, m / 1000, p
		printf "| bridge over a direct go-openai call (loopback server %s µs) | +%s µs, ratio %s |\n", d, a, r
		printf "| same with a daily budget (durable counters, fsync) | +%s µs, ratio %s |\n", ab, rb
	}'
# Latency against query length, 50 B to the default 16 KiB limit, as a plot.
plot=${PLOT:-bin/cloud-anonymizer.png}
mkdir -p "$(dirname "$plot")"
"$go" run ./cloudbridge/anonymize/anonbench -o "$plot"
echo "bench-cloud: wrote $plot"
