#!/usr/bin/env bash
# bench-mqtt.sh — hedge's MQTT round trip through a real mosquitto on
# loopback at fixed rates, for the cache-hit path and the SLM path, beside
# two floors: mosquitto's own pub→sub (one hop) and a bare paho responder
# that republishes each request (two hops, like any request/reply).
# Part of `make bench`.
#
# Starts its own mosquitto (temp config, free loopback port) and `hedge run`
# with its defaults (state in a temp dir, MQTT pointed at that mosquitto,
# HTTP off), runs `hedge bench mqtt`, and stops both.
#
#   scripts/bench-mqtt.sh [TABLE.md] [PLOT.png]
#   HEDGE=bin/hedge RATES=500,1000,2000 DURATION=5s PATHS=cache scripts/bench-mqtt.sh
#
# hedge's own log is kept beside the table (TABLE.hedge.log).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hedge=${HEDGE:-$repo/bin/hedge}
table=${1:-$repo/bin/mqtt-bench.md}
plot=${2:-$repo/bin/mqtt-bench.png}
rates=${RATES:-500,1000,2000}
duration=${DURATION:-5s}
paths=${PATHS:-floor,echo,cache,slm}
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
port=""
for _ in $(seq 50); do
	p=$((20000 + RANDOM % 30000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		port=$p
		break
	fi
done
[ -n "$port" ] || { echo "bench-mqtt: no free port found" >&2; exit 1; }

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
"$hedge" run --config "$tmp/hedge.yaml" 2>"$tmp/hedge.log" &
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
"$hedge" bench mqtt --broker "tcp://127.0.0.1:$port" --device bench \
	--rates "$rates" --duration "$duration" --paths "$paths" --wait 20s \
	--out "$table" --plot "$plot" --json "${table%.md}.json"
