#!/usr/bin/env bash
# bench-edge.sh — the edge figures (part of `make bench`): the size of
# bin/hedge (and of bin/hedge-bench, for contrast), `hedge train`'s peak RSS
# on the starter intents, cold start to READY=1 with the intent model on
# disk (median of STARTS), and the idle RSS of `hedge run` with the SLM
# loaded, MQTT and HTTP on, after REQUESTS requests. `hedge-bench edge`
# measures; this script starts the real mosquitto (temp config, free
# loopback port) hedge connects to, and stops it.
#
#   scripts/bench-edge.sh [RESULT.json]
#   HEDGE=bin/hedge HEDGE_BENCH=bin/hedge-bench STARTS=7 REQUESTS=100 scripts/bench-edge.sh
#   BEFORE_REF= scripts/bench-edge.sh   # no build of the size before
#
# Without HEDGE_BENCH it builds cmd/hedge-bench into a temporary directory
# (its size is then that build's).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hedge=${HEDGE:-$repo/bin/hedge}
json=${1:-$repo/bin/bench/edge.json}
if [ ! -x "$hedge" ]; then
	echo "bench-edge: $hedge not found; run make build (or set HEDGE)" >&2
	exit 1
fi
"$repo/scripts/apt-ensure.sh" mosquitto
lib=$("$repo/scripts/fetch-ort.sh")
export HEDGE_SLM_RUNTIME_LIBRARY=${HEDGE_SLM_RUNTIME_LIBRARY:-$lib}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

tmp=$(mktemp -d)
mpid=""
cleanup() {
	[ -n "$mpid" ] && kill "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null || true
	rm -rf "$tmp"
	git -C "$repo" worktree prune 2>/dev/null || true
}
trap cleanup EXIT

bench=${HEDGE_BENCH:-}
if [ -z "$bench" ]; then
	bench=$tmp/hedge-bench
	(cd "$repo" && eval "$(scripts/cgo-env.sh)" && "${GO:-go}" build -trimpath -o "$bench" ./cmd/hedge-bench)
fi

port=""
for _ in $(seq 50); do
	p=$((20000 + RANDOM % 30000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		port=$p
		break
	fi
done
[ -n "$port" ] || { echo "bench-edge: no free port found" >&2; exit 1; }
cat >"$tmp/mosquitto.conf" <<CONF
user $(id -un)
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
CONF
"$mosquitto" -c "$tmp/mosquitto.conf" 2>"$tmp/mosquitto.log" &
mpid=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

# The size before: cmd/hedge at BEFORE_REF (the last commit whose hedge
# linked the benchmark, report and plot tooling), built like make build.
before_ref=${BEFORE_REF-fe88ff6}
before=()
if [ -n "$before_ref" ] && git -C "$repo" cat-file -e "$before_ref^{commit}" 2>/dev/null; then
	echo "bench-edge: building cmd/hedge at $before_ref for the size before" >&2
	git -C "$repo" worktree add -q --detach "$tmp/before" "$before_ref"
	(cd "$tmp/before" && eval "$(scripts/cgo-env.sh)" && "${GO:-go}" build -trimpath -o "$tmp/hedge-before" ./cmd/hedge) &&
		before=(--before "$tmp/hedge-before" --before-ref "$before_ref")
	git -C "$repo" worktree remove --force "$tmp/before"
fi

mkdir -p "$(dirname "$json")"
"$bench" edge --hedge "$hedge" --broker "tcp://127.0.0.1:$port" \
	--starts "${STARTS:-7}" --requests "${REQUESTS:-100}" --json "$json" "${before[@]}"
