#!/usr/bin/env bash
# bench-llm.sh — the local LLM tier's benchmark (part of `make bench`):
# prompt and generation tokens/s and peak RSS of hedge (models/llm), of a
# minimal C program over the same llama.cpp build (models/llm/cbench), and
# of node-llama-cpp@3.21.1 from npm, on generated GGUF fixtures of real
# shapes (SmolLM2-135M as Q8_0, TinyLlama-1.1B as Q4_0), 2 threads.
#
# Runs are interleaved (hedge, C, node, hedge, …) so that the load of a
# shared machine hits all three alike; each run is one warm-up plus the
# median of REPS requests; the table shows the median over ROUNDS runs.
# hedge and the C program load their CPU variant from the same folder (the
# build's, $HEDGE_LLAMA_DIR/lib) and each reports the one it chose, as
# node-llama-cpp's run reports the one of its prebuilt it mapped.
#
# Before each round a memory-bandwidth probe (models/llm/cbench/membw.c,
# STREAM-style copy on THREADS threads) measures what bounds generation:
# the table gives each generation speed as a fraction of copy bandwidth
# over the bytes of weights read per token.
#
# Then, on the TinyLlama-shaped file, a conversation (llmbench -turns):
# the time to first token of turn 1 and of turn TURNS, with the KV cache
# reused between turns and with every prompt evaluated whole, medians of
# CONV_RUNS conversations, into llm-conversation.json.
#
# Env: ROUNDS (5), REPS (3), GEN (32 tokens), THREADS (2), TURNS (6),
#      CONV_RUNS (3), CONV_ANSWER (150 tokens per answer at most),
#      BENCH_DIR (fixtures, builds, npm install; default ~/.cache/hedge-bench),
#      OUT (folder of llm-bench.md, .png, .json (the medians),
#      -raw.jsonl (every run's line) and llm-conversation.json; default docs).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
eval "$(scripts/cgo-env.sh)"
ROUNDS=${ROUNDS:-5} REPS=${REPS:-3} GEN=${GEN:-32} THREADS=${THREADS:-2}
TURNS=${TURNS:-6} CONV_RUNS=${CONV_RUNS:-3} CONV_ANSWER=${CONV_ANSWER:-150}
BENCH_DIR=${BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hedge-bench}
OUT=${OUT:-$repo/docs}
mkdir -p "$BENCH_DIR" "$OUT"
log() { echo "bench-llm: $*" >&2; }

PROMPT="The little robot walked along the quiet river at dawn, counting the stones and listening to the birds. It wondered where the water went after the bend, and whether the fish ever slept. The village bells began to ring as the sun rose over the hills."

log "building hedge's llmbench and the C baseline (first build compiles llama.cpp)"
go build -o "$BENCH_DIR/llmbench" ./models/llm/llmbench
# shellcheck disable=SC2086 # CGO_* are lists of flags
${CC:-gcc} $CGO_CFLAGS $CGO_CPPFLAGS -o "$BENCH_DIR/cbench" models/llm/cbench/bench.c $CGO_LDFLAGS -lhedge-llama -lstdc++ -lm -lpthread -ldl
${CC:-gcc} -O2 -pthread -o "$BENCH_DIR/membw" models/llm/cbench/membw.c
export CBENCH_CPU_DIR=$HEDGE_LLAMA_DIR/lib

fixtures=("smollm2-135m:q8_0" "tinyllama-1.1b:q4_0")
files=()
for f in "${fixtures[@]}"; do
	shape=${f%%:*} typ=${f##*:}
	file="$BENCH_DIR/$shape-shaped-$typ.gguf"
	if [ ! -s "$file" ]; then
		log "generating fixture $file"
		go run ./models/gguf/ggufgen -shape "$shape" -type "$typ" -o "$file"
	fi
	files+=("$file")
done

node_ok=0
nodedir="$BENCH_DIR/node"
if command -v node >/dev/null && command -v npm >/dev/null; then
	if [ ! -d "$nodedir/node_modules/node-llama-cpp" ]; then
		log "installing node-llama-cpp@3.21.1 from npm into $nodedir"
		mkdir -p "$nodedir"
		(cd "$nodedir" && [ -f package.json ] || echo '{"name":"hedge-bench","private":true,"type":"module"}' >"$nodedir/package.json")
		(cd "$nodedir" && npm install --no-audit --no-fund --loglevel=error node-llama-cpp@3.21.1 >&2) || log "npm install of node-llama-cpp failed"
	fi
	if [ -d "$nodedir/node_modules/node-llama-cpp" ]; then
		cp models/llm/nodebench/bench.mjs "$nodedir/bench.mjs"
		node_ok=1
	fi
else
	log "node/npm not found: node-llama-cpp is left out (install nodejs and npm)"
fi

raw="$BENCH_DIR/llm-bench-raw.jsonl"
: >"$raw"
run_impl() { # impl file
	case "$1" in
	hedge) "$BENCH_DIR/llmbench" -model "$2" -cpu-dir "$CBENCH_CPU_DIR" -threads "$THREADS" -gen "$GEN" -reps "$REPS" -prompt "$PROMPT" ;;
	c) "$BENCH_DIR/cbench" "$2" "$THREADS" "$GEN" "$REPS" 1 "$PROMPT" ;;
	node) (cd "$nodedir" && node bench.mjs "$2" "$THREADS" "$GEN" "$REPS" "$PROMPT") || log "node-llama-cpp run failed" ;;
	esac
}
impls=(hedge c)
[ "$node_ok" = 1 ] && impls+=(node)
for round in $(seq 1 "$ROUNDS"); do
	"$BENCH_DIR/membw" "$THREADS" | tee -a "$raw"
	for file in "${files[@]}"; do
		log "round $round/$ROUNDS: $(basename "$file") (load average $(cut -d' ' -f1-3 /proc/loadavg))"
		# The order rotates each round so that no implementation always runs
		# first (or last) after a model switch.
		n=${#impls[@]}
		for k in $(seq 0 $((n - 1))); do
			run_impl "${impls[$(((k + round) % n))]}" "$file" | tee -a "$raw"
		done
	done
done
log "conversation of $TURNS turns on $(basename "${files[1]}") (load average $(cut -d' ' -f1-3 /proc/loadavg))"
"$BENCH_DIR/llmbench" -model "${files[1]}" -threads "$THREADS" -turns "$TURNS" -runs "$CONV_RUNS" -answer "$CONV_ANSWER" \
	-json "$OUT/llm-conversation.json"
cp "$raw" "$OUT/llm-bench-raw.jsonl"
"$BENCH_DIR/llmbench" -report "$raw" -png "$OUT/llm-bench.png" -json "$OUT/llm-bench.json" | tee "$OUT/llm-bench.md"
log "table in $OUT/llm-bench.md, chart in $OUT/llm-bench.png, medians in $OUT/llm-bench.json, raw lines in $OUT/llm-bench-raw.jsonl"
