#!/usr/bin/env bash
# fuzz.sh — runs every Go fuzz target of hedge, one after another, for
# FUZZTIME each (docs/fuzz.md). The targets are found, not listed: every
# `func FuzzXxx(f *testing.F)` in a *_test.go file, so a new target is
# fuzzed from the day it is written. `go test -fuzz` takes one target of one
# package at a time, hence the loop.
#
#   scripts/fuzz.sh                      # 10 s per target (what make test runs)
#   FUZZTIME=2m scripts/fuzz.sh          # make fuzz
#   FUZZ='Config|Tokenizer' scripts/fuzz.sh   # only targets whose package
#                                        # path or name matches the regexp
#
# Env: FUZZTIME (10s; a duration, or Nx for N inputs), FUZZ (a regexp over
# "package FuzzName"), FUZZPARALLEL (fuzzing workers; Go's default is one per
# CPU), FUZZMINIMIZE (-fuzzminimizetime, 2000x: minimizing each new input by
# time stalls the fuzzer for the whole limit on a busy machine, see
# docs/fuzz.md).
#
# A failure prints go test's output, which names the failing input Go wrote
# to the package's testdata/fuzz/FuzzXxx/: fix the code, keep the file (it
# is a regression seed from then on, run by every plain go test), commit both.
# The exit status is 1 when any target failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/cgo-env.sh)"

fuzztime=${FUZZTIME:-10s}
minimize=${FUZZMINIMIZE:-2000x}
filter=${FUZZ:-.}
args=(-run '^$' -fuzztime "$fuzztime" -fuzzminimizetime "$minimize")
if [ -n "${FUZZPARALLEL:-}" ]; then
	args+=(-parallel "$FUZZPARALLEL")
fi
# go test's own 10 m timeout would end a long run; leave it 10 m beyond
# the fuzzing time. A duration is whole hours, minutes and seconds in any
# mix (1h30m, 90s); Nx, a count of inputs, keeps go test's timeout.
secs=0 rest=$fuzztime
while [[ $rest =~ ^([0-9]+)([hms])(.*)$ ]]; do
	case ${BASH_REMATCH[2]} in
	h) secs=$((secs + 10#${BASH_REMATCH[1]} * 3600)) ;;
	m) secs=$((secs + 10#${BASH_REMATCH[1]} * 60)) ;;
	s) secs=$((secs + 10#${BASH_REMATCH[1]})) ;;
	esac
	rest=${BASH_REMATCH[3]}
done
if [ -z "$rest" ] && [ "$secs" -gt 0 ]; then
	args+=(-timeout "$((secs + 600))s")
fi

# "./pkg FuzzName" for every target, in a stable order.
mapfile -t targets < <(
	grep -r -H -o -E --include='*_test.go' --exclude-dir=testdata --exclude-dir=vendor --exclude-dir=.git \
		'^func Fuzz[A-Za-z0-9_]+\(' . |
		sed -E 's#^(\./.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+)\($#\1 \2#; s#^\./[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+)\($#. \1#' |
		sort -u | grep -E -- "$filter" || true
)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no fuzz target matches FUZZ='$filter'" >&2
	exit 1
fi

echo "fuzz: ${#targets[@]} targets, $fuzztime each"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
start=$SECONDS
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	t0=$SECONDS
	if go test "${args[@]}" -fuzz "^${name}\$" "$pkg" >"$log" 2>&1; then
		status=ok
	else
		status=FAIL
		failed+=("$t")
	fi
	# The last progress line carries the number of inputs tried.
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
	printf '%-4s %-30s %-22s %4ds %10s inputs\n' "$status" "$pkg" "$name" $((SECONDS - t0)) "${execs:-?}"
	if [ "$status" = FAIL ]; then
		sed 's/^/    /' "$log" | grep -v '^    fuzz: elapsed' | tail -40
	fi
done
echo "fuzz: ${#targets[@]} targets, ${#failed[@]} failed, $((SECONDS - start))s in all"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: FAILED %s\n' "${failed[@]}"
	exit 1
fi
