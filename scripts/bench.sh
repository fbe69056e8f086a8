#!/usr/bin/env bash
# bench.sh — `make bench`: every benchmark, one after another (never in
# parallel: they would measure each other), then the report.
#
# Each benchmark writes its results as JSON, with the peers it is compared
# with measured in the same run, and its plots as PNG to bin/bench/;
# bin/bench/run.jsonl records what ran, when, under what load and whether
# it failed; NAME.log keeps each one's own console tables. `hedge-bench report` then writes BENCHMARKS.md from those
# files (plots copied to docs/bench/) and rewrites the headline block of
# README.md; a section not run this time is copied from the BENCHMARKS.md
# of the run before, marked so. A benchmark that fails is reported as
# failed; the others run.
#
#   BENCH=go,slm,cloud,mqtt,llm,tiers,edge scripts/bench.sh   # a subset (default: all)
#
# Env: HEDGE (bin/hedge), HEDGE_BENCH (bin/hedge-bench), BENCH_DIR (fixtures, builds, npm packages and the
# trained intent model kept between runs; ~/.cache/hedge-bench), GO_BENCHTIME
# (2s), GO_COUNT (1), CLOUD_BENCHTIME (3s), LLM_MODEL (../shared/models/stories260K.gguf, the tiers
# benchmark's local LLM), TIERS_SAMPLES (500 answers per tier), and those of
# the scripts it runs (scripts/bench-*.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/cgo-env.sh)"
out=bin/bench
hedge=${HEDGE:-bin/hedge}
bench=${HEDGE_BENCH:-bin/hedge-bench}
all=go,slm,cloud,mqtt,llm,tiers,edge
want=${BENCH:-$all}
for b in ${want//,/ }; do
	if [[ ",$all," != *",$b,"* ]]; then
		echo "bench: unknown benchmark \"$b\" in BENCH (known: $all)" >&2
		exit 2
	fi
done
if [ ! -x "$hedge" ]; then
	echo "bench: $hedge not found; run make build (or set HEDGE)" >&2
	exit 1
fi
if [ ! -x "$bench" ]; then
	echo "bench: $bench not found; run make build-bench (or set HEDGE_BENCH)" >&2
	exit 1
fi
export HEDGE=$hedge HEDGE_BENCH=$bench
export BENCH_DIR=${BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hedge-bench}
mkdir -p "$out" "$BENCH_DIR"

bench_go() {
	go test -json -run='^$' -bench=. -benchmem -benchtime="${GO_BENCHTIME:-2s}" -count="${GO_COUNT:-1}" \
		./agent/store/ ./agent/transport/local/ >"$out/go.json"
}
bench_slm() { scripts/bench-slm.sh "$out/slm-clinc150.png" "$out/slm.json"; }
bench_cloud() { OUT=$out scripts/bench-cloud.sh "${CLOUD_BENCHTIME:-3s}"; }
bench_mqtt() { scripts/bench-mqtt.sh "$out/mqtt.md" "$out/mqtt.png"; }
bench_llm() { OUT=$out scripts/bench-llm.sh; }
bench_tiers() {
	HEDGE_SLM_RUNTIME_LIBRARY=${HEDGE_SLM_RUNTIME_LIBRARY:-$(scripts/fetch-ort.sh)} \
		"$bench" tiers --hedge "$hedge" --llm-model "${LLM_MODEL:-../shared/models/stories260K.gguf}" \
		--samples "${TIERS_SAMPLES:-500}" --slm-model-dir "$BENCH_DIR/tiers-slm" \
		--json "$out/tiers.json" --out "$out/tiers.md" --plot "$out/tiers.png" --log "$out/tiers.hedge.log"
}
bench_edge() { scripts/bench-edge.sh "$out/edge.json"; }

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=false
# The report's own outputs are not changes to what is measured.
if [ -n "$(git status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md' ':!docs/bench' ':!README.md' 2>/dev/null)" ]; then
	dirty=true
fi
printf '{"event":"start","time":"%s","bench":"%s","commit":"%s","dirty":%s,"load":"%s"}\n' \
	"$(now)" "$want" "$commit" "$dirty" "$(load)" >"$out/run.jsonl"

failed=()
for name in ${all//,/ }; do
	[[ ",$want," == *",$name,"* ]] || continue
	echo "== $name (load average $(load))"
	# Results of an earlier run must not pass for this one's.
	rm -f "$out/$name".* "$out/$name"-*
	start=$(now) l0=$(load) s0=$SECONDS
	# set -e holds inside the subshell only outside an || list. Its
	# stdout (tables the report repeats) goes to NAME.log, progress to stderr.
	set +e
	(
		set -e
		"bench_$name"
	) >"$out/$name.log"
	rc=$?
	set -e
	printf '{"event":"section","section":"%s","start":"%s","end":"%s","seconds":%d,"load_before":"%s","load_after":"%s","exit":%d}\n' \
		"$name" "$start" "$(now)" $((SECONDS - s0)) "$l0" "$(load)" "$rc" >>"$out/run.jsonl"
	if [ "$rc" = 0 ]; then
		"$bench" report --dir "$out" --only "$name" || failed+=("$name")
	else
		echo "bench: $name failed (exit $rc)" >&2
		failed+=("$name")
	fi
done
printf '{"event":"end","time":"%s","load":"%s"}\n' "$(now)" "$(load)" >>"$out/run.jsonl"

readme=()
if grep -q '<!-- bench:begin -->' README.md; then
	readme=(--readme README.md)
fi
# Sections not run this time (BENCH=mqtt) keep what the committed report
# shows of them, marked with the run that measured them.
"$bench" report --dir "$out" --out BENCHMARKS.md --images docs/bench --previous BENCHMARKS.md "${readme[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "bench: failed: ${failed[*]} (BENCHMARKS.md says so)" >&2
	exit 1
fi
