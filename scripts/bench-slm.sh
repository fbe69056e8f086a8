#!/usr/bin/env bash
# bench-slm.sh — hedge's intent model against fastText on CLINC150, same
# splits, same threshold rules, one table (part of `make bench`).
#
# fastText: Debian's package, word bigrams, char 3–5-grams, dim 100, 50
# epochs, out-of-scope training items as a class like hedge's. The data set
# is converted in a temporary directory, never in the repository.
# fastText's latency is timed one query at a time through a pipe, beside
# the pipe's own floor (models/slm/evaluate/fasttextbench).
#
# `hedge-bench eval` evaluates hedge's model with hedge eval's own code (the
# pipeline hedge train uses) and adds the fastText rows and the plot.
#
#   scripts/bench-slm.sh [PLOT.png [RESULT.json]]   # RESULT-fasttext.json beside it
#   HEDGE_BENCH=bin/hedge-bench CLINC150=path/to/data_full.json scripts/bench-slm.sh
#
# Without HEDGE_BENCH it builds cmd/hedge-bench into a temporary directory.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=${CLINC150:-$repo/../shared/datasets/clinc150/data_full.json}
plot=${1:-$repo/bin/slm-clinc150.png}
json=${2:-}
[ -f "$data" ] || { echo "bench-slm: CLINC150 not found at $data (set CLINC150)" >&2; exit 1; }
"$repo/scripts/apt-ensure.sh" fasttext
lib=$("$repo/scripts/fetch-ort.sh")
export HEDGE_SLM_RUNTIME_LIBRARY=${HEDGE_SLM_RUNTIME_LIBRARY:-$lib}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bench=${HEDGE_BENCH:-}
if [ -z "$bench" ]; then
	bench=$tmp/hedge-bench
	(cd "$repo" && eval "$(scripts/cgo-env.sh)" && "${GO:-go}" build -o "$bench" ./cmd/hedge-bench)
fi
"$bench" eval --data "$data" --format clinc150 --write-fasttext "$tmp"
echo "bench-slm: training fastText (-minn 3 -maxn 5 -wordNgrams 2 -dim 100 -epoch 50)" >&2
fasttext supervised -input "$tmp/train.txt" -output "$tmp/ft" \
	-minn 3 -maxn 5 -wordNgrams 2 -dim 100 -epoch 50 -thread "$(nproc)" -verbose 0
fasttext predict-prob "$tmp/ft.bin" "$tmp/val.txt" 1 >"$tmp/val.pred"
fasttext predict-prob "$tmp/ft.bin" "$tmp/test.txt" 1 >"$tmp/test.pred"
mkdir -p "$(dirname "$plot")"
extra=()
if [ -n "$json" ]; then
	mkdir -p "$(dirname "$json")"
	extra=(--json-file "$json")
fi
"$bench" eval --data "$data" --format clinc150 --plot "$plot" "${extra[@]}" \
	--baseline-val "$tmp/val.pred" --baseline-test "$tmp/test.pred" \
	--baseline-bytes "$(stat -c %s "$tmp/ft.bin")"
ftjson=()
[ -n "$json" ] && ftjson=(-json "${json%.json}-fasttext.json")
(cd "$repo" && go run ./models/slm/evaluate/fasttextbench -model "$tmp/ft.bin" -input "$tmp/test.txt" "${ftjson[@]}")
