#!/usr/bin/env bash
# bench-mqtt.sh — hedge's MQTT round trip through a real mosquitto on
# loopback at fixed rates, for the cache-hit path and the SLM path, beside
# two floors: mosquitto's own pub→sub (one hop) and a bare paho responder
# that republishes each request (two hops, like any request/reply).
# Part of `make bench`.
#
# Then two more runs of the slm path: a CPU profile of hedge while it runs
# at a steady PROFILE_RATE (`hedge-bench profile`: where a request's CPU
# goes, TABLE-profile.json and the profile itself, TABLE-profile.cpu.pprof,
# for go tool pprof), and a rate sweep over SWEEP_RATES that stops at the
# first rate hedge does not sustain (TABLE-sweep.json, .md, .png).
#
# Starts its own mosquitto (temp config, free loopback port) and `hedge run`
# with its defaults (state in a temp dir, MQTT pointed at that mosquitto,
# HTTP off, Go's profiles on a free loopback port through HEDGE_PPROF),
# runs `hedge-bench mqtt`, and stops both.
#
#   scripts/bench-mqtt.sh [TABLE.md] [PLOT.png]
#   HEDGE=bin/hedge RATES=500,1000,2000 DURATION=5s PATHS=cache scripts/bench-mqtt.sh
#   HEDGE_BENCH=bin/hedge-bench scripts/bench-mqtt.sh   # else it builds cmd/hedge-bench
#   PROFILE_RATE=2000 PROFILE_SECONDS=8 SWEEP_RATES=1000,2000,3000 scripts/bench-mqtt.sh
#
# PROFILE_RATE= or SWEEP_RATES= (empty) skips that run. hedge's own log is
# kept beside the table (TABLE.hedge.log).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hedge=${HEDGE:-$repo/bin/hedge}
table=${1:-$repo/bin/mqtt-bench.md}
plot=${2:-$repo/bin/mqtt-bench.png}
rates=${RATES:-500,1000,2000}
duration=${DURATION:-5s}
paths=${PATHS:-floor,echo,cache,slm}
profile_rate=${PROFILE_RATE-2000}
profile_seconds=${PROFILE_SECONDS:-8}
sweep_rates=${SWEEP_RATES-1000,2000,3000,4000,5000,6000,7000,8000}
base=${table%.md}
if [ ! -x "$hedge" ]; then
	echo "bench-mqtt: $hedge not found; run make build (or set HEDGE)" >&2
	exit 1
fi
"$repo/scripts/apt-ensure.sh" mosquitto mosquitto-clients
lib=$("$repo/scripts/fetch-ort.sh")
export HEDGE_SLM_RUNTIME_LIBRARY=${HEDGE_SLM_RUNTIME_LIBRARY:-$lib}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

tmp=$(mktemp -d)
mpid="" hpid=""
cleanup() {
	[ -n "$hpid" ] && kill "$hpid" 2>/dev/null && wait "$hpid" 2>/dev/null || true
	[ -f "$tmp/hedge.log" ] && cp "$tmp/hedge.log" "${table%.md}.hedge.log" 2>/dev/null || true
	[ -n "$mpid" ] && kill "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# A free loopback port: nothing answers on it.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "bench-mqtt: no free port found" >&2
	exit 1
}
port=$(free_port)
pprof_port=$(free_port)
while [ "$pprof_port" = "$port" ]; do pprof_port=$(free_port); done
# The load generator and the profile's reader are benchmark tooling, not
# part of the edge binary.
bench=${HEDGE_BENCH:-}
if [ -z "$bench" ]; then
	bench=$tmp/hedge-bench
	(cd "$repo" && eval "$(scripts/cgo-env.sh)" && "${GO:-go}" build -o "$bench" ./cmd/hedge-bench)
fi

cat >"$tmp/mosquitto.conf" <<EOF
user $(id -un)
listener $port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 100000
persistence false
log_dest stderr
log_type error
log_type warning
EOF
"$mosquitto" -c "$tmp/mosquitto.conf" 2>"$tmp/mosquitto.log" &
mpid=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

cat >"$tmp/hedge.yaml" <<EOF
version: 1
device: bench
state_dir: $tmp/state
socket: $tmp/hedge.sock
log:
  level: info
http:
  enabled: false
mqtt:
  broker: tcp://127.0.0.1:$port
EOF
HEDGE_PPROF=127.0.0.1:$pprof_port "$hedge" run --config "$tmp/hedge.yaml" 2>"$tmp/hedge.log" &
hpid=$!
# hedge says online (retained) once it is connected and subscribed; a first
# start trains the intent model, which takes a while.
deadline=$((SECONDS + 300))
until mosquitto_sub -h 127.0.0.1 -p "$port" -t hedge/bench/status -C 1 -W 5 2>/dev/null | grep -q online; do
	if ! kill -0 "$hpid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
		echo "bench-mqtt: hedge did not come online; its log:" >&2
		cat "$tmp/hedge.log" >&2
		exit 1
	fi
done

mkdir -p "$(dirname "$table")" "$(dirname "$plot")"
echo "bench-mqtt: $(nproc) CPU cores shared by mosquitto, hedge and the load generator" >&2
"$bench" mqtt --broker "tcp://127.0.0.1:$port" --device bench \
	--rates "$rates" --duration "$duration" --paths "$paths" --wait 20s \
	--out "$table" --plot "$plot" --json "${table%.md}.json"

if [ -n "$profile_rate" ]; then
	# The load runs a little longer than the profile, which starts once
	# the load is steady.
	echo "bench-mqtt: profiling hedge for ${profile_seconds}s of the slm path at $profile_rate q/s" >&2
	"$bench" mqtt --broker "tcp://127.0.0.1:$port" --device bench \
		--rates "$profile_rate" --duration "$((profile_seconds + 4))s" --paths slm --wait 20s \
		--json "$base-profile-load.json" >/dev/null &
	load=$!
	sleep 2
	"$bench" profile --url "http://127.0.0.1:$pprof_port" --seconds "$profile_seconds" \
		--rate "$profile_rate" --path slm --pid "$hpid" --json "$base-profile.json" --cpu "$base-profile.cpu.pprof"
	wait "$load"
fi

if [ -n "$sweep_rates" ]; then
	"$bench" mqtt --broker "tcp://127.0.0.1:$port" --device bench \
		--rates "$sweep_rates" --duration "$duration" --paths slm --wait 20s --stop-saturated --targets slm \
		--out "$base-sweep.md" --plot "$base-sweep.png" --json "$base-sweep.json"
fi
