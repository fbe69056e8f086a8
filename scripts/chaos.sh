#!/usr/bin/env bash
# chaos.sh — `make test-chaos`: the chaos suite (cmd/hedge/chaos_test.go,
# build tag chaos). hedge runs under a steady mixed load over MQTT (a real
# mosquitto) and its socket while the suite restarts the broker, black-holes
# the cloud, SIGKILLs hedge, fills its state filesystem and jumps the clock.
# Root only (tmpfs mount, clock), and never beside other tests: the clock
# jump is felt by every process on the machine.
#   CHAOS_PHASE=8s   load per phase      CHAOS_RATE=10   q/s per transport
#   CHAOS_KILLS=3    SIGKILL cycles      CHAOS_ONLY=sigkill,clock-jump
# Logs of every hedge run and the summary go to bin/chaos/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null; then
		exec sudo -E env "PATH=$PATH" "$0" "$@"
	fi
	echo "chaos.sh: the chaos suite needs root (it mounts a tmpfs and sets the clock)" >&2
	exit 1
fi
eval "$(scripts/cgo-env.sh)"
rm -rf bin/chaos
mkdir -p bin/chaos

# The suite puts the clock back itself; should it die in the middle of a
# jump, the clock is put back here from the boot clock, which no jump moves.
boot_offset() { echo $(($(date +%s) - $(cut -d. -f1 /proc/uptime))); }
before=$(boot_offset)
restore_clock() {
	local drift=$(($(boot_offset) - before))
	if [ "${drift#-}" -gt 2 ]; then
		echo "chaos.sh: the clock is ${drift}s off after the suite; putting it back" >&2
		date -s "@$((before + $(cut -d. -f1 /proc/uptime)))" >/dev/null
	fi
}
trap restore_clock EXIT

go test -tags chaos -run '^TestChaos$' -count=1 -v -timeout 30m ./cmd/hedge/ 2>&1 | tee bin/chaos/test.log
