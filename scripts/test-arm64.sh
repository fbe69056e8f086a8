#!/usr/bin/env bash
# test-arm64.sh — proves on an amd64 machine that the arm64 build of hedge
# works: the same steps run with bin/hedge (amd64, native) and with
# bin/hedge-linux-arm64 under qemu-user-static, each with its own
# architecture's libonnxruntime.so.1, and their results must agree.
#
# Steps, per architecture:
#   1. hedge version
#   2. hedge train --intents starter   (compact model, trained in Go)
#   3. hedge run: loads ONNX Runtime, trains/loads the intent model, loads
#      an f32 GGUF in llama.cpp, listens on a Unix socket
#   4. hedge ask --json over that socket: queries the intent model answers
#      (intent + calibrated confidence) and queries the local LLM answers
#      (greedy, temperature 0)
#   5. hedge doctor on the same config
# Then: same intents and tiers, confidences within $TOLERANCE, the same
# greedy text, the same training summary.
#
# qemu-user 7.2 (Debian 12) does not emulate /proc/cpuinfo for aarch64: the
# guest would read the x86 host's, on which ONNX Runtime's CPU detection
# (cpuinfo) crashes while the library loads. The arm64 steps therefore run
# in a private mount namespace where /proc/cpuinfo is a Raspberry Pi 5's
# (platform/testdata/pi5), as a real board would show it. That needs root or
# unprivileged user namespaces (unshare --map-root-user).
#
# Environment: HEDGE_TEST_GGUF (an f32 GGUF; default
# ../shared/models/stories260K.gguf, else a generated tiny llama fixture),
# TOLERANCE (default 0.02), KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
tolerance=${TOLERANCE:-0.02}

if [ "$(uname -m)" != x86_64 ]; then
	echo "test-arm64: runs on an x86_64 build machine (this is $(uname -m))" >&2
	exit 1
fi
scripts/apt-ensure.sh qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross jq util-linux
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu

work=$(mktemp -d /tmp/hedge-arm64.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	if [ "${KEEP:-}" = 1 ]; then echo "test-arm64: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
log() { echo "test-arm64: $*" >&2; }

# Builds: the arm64 cross build (cached after the first run) and the
# native one, both with scripts/cgo-env.sh's flags.
scripts/build-arm64.sh bin/hedge-linux-arm64
(eval "$(scripts/cgo-env.sh amd64)" && go build -trimpath -ldflags "-X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o bin/hedge ./cmd/hedge)
lib_amd64=$(scripts/fetch-ort.sh x64)
lib_arm64=$(scripts/fetch-ort.sh arm64)

gguf=${HEDGE_TEST_GGUF:-$repo/../shared/models/stories260K.gguf}
if [ ! -f "$gguf" ]; then
	gguf=$work/tiny-f32.gguf
	go run ./models/gguf/ggufgen -shape tiny -type f32 -seed 1 -o "$gguf"
fi
log "GGUF fixture: $gguf"

# Queries: three the starter intents answer, two that fall through to the
# local LLM (prefer local: no cloud is configured anyway).
queries=("hello" "what time is it" "thank you so much" "Lily and Tom went to the park" "The little bird")

# The arm64 runner: qemu in a mount namespace with a Pi 5's /proc/cpuinfo.
cpuinfo=$repo/platform/testdata/pi5/proc/cpuinfo
ns=(unshare --mount)
[ "$(id -u)" -eq 0 ] || ns=(unshare --mount --map-root-user)
# shellcheck disable=SC2016 # $0 and $@ belong to the inner shell
arm64=("${ns[@]}" sh -c 'mount --bind "$0" /proc/cpuinfo && exec qemu-aarch64-static "$@"' "$cpuinfo")

# steps ARCH LIBRARY RUNNER... — runs every step with one build, results in
# $work/ARCH.
steps() {
	local arch=$1 lib=$2
	shift 2
	local run=("$@") dir=$work/$arch
	mkdir -p "$dir"
	local t0=$SECONDS
	"${run[@]}" version | tee "$dir/version" >&2
	"${run[@]}" train --intents starter --out "$dir/trained" >"$dir/train.txt" 2>"$dir/train.err"
	log "$arch: trained in $((SECONDS - t0)) s: $(head -1 "$dir/train.txt")"
	cat >"$dir/config.yaml" <<-EOF
		version: 1
		device: arm64-proof
		state_dir: $dir/state
		socket: $dir/hedge.sock
		http:
		  enabled: false
		mqtt:
		  enabled: false
		cache:
		  enabled: false
		slm:
		  runtime_library: $lib
		  threads: 1
		llm:
		  model: $gguf
		  chat_template: none
		  temperature: 0
		  max_tokens: 24
		  threads: 1
		  seed: 1
	EOF
	t0=$SECONDS
	"${run[@]}" run --config "$dir/config.yaml" >"$dir/run.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	# A first start trains the intent model: minutes under emulation.
	while [ ! -S "$dir/hedge.sock" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$arch: hedge run exited before listening:"
			cat "$dir/run.log" >&2
			return 1
		fi
		if [ $((SECONDS - t0)) -gt 900 ]; then
			log "$arch: hedge run did not listen within 900 s"
			cat "$dir/run.log" >&2
			return 1
		fi
		sleep 1
	done
	log "$arch: hedge run listening after $((SECONDS - t0)) s"
	: >"$dir/answers.jsonl"
	for q in "${queries[@]}"; do
		"${run[@]}" ask --socket "$dir/hedge.sock" --prefer local --json "$q" >>"$dir/answers.jsonl"
	done
	kill -TERM "$pid"
	wait "$pid" || { log "$arch: hedge run failed on SIGTERM"; cat "$dir/run.log" >&2; return 1; }
	# doctor: the library loads, the trained model's checksums match.
	local rc=0
	"${run[@]}" doctor --config "$dir/config.yaml" --timeout 2s >"$dir/doctor.txt" || rc=$?
	sed "s/^/  $arch doctor: /" "$dir/doctor.txt" >&2
	if [ "$rc" -ne 0 ]; then
		log "$arch: hedge doctor exited $rc"
		return 1
	fi
}

steps amd64 "$lib_amd64" bin/hedge
steps arm64 "$lib_arm64" "${arm64[@]}" bin/hedge-linux-arm64

# On a Raspberry Pi 4 (Cortex-A72: no dot product, no LSE atomics) this
# armv8.2-a build's llama.cpp dies with SIGILL; doctor must say so.
pi4=("${ns[@]}" sh -c 'mount --bind "$0" /proc/cpuinfo && exec qemu-aarch64-static "$@"' "$repo/platform/testdata/pi4/proc/cpuinfo")
rc=0
"${pi4[@]}" bin/hedge-linux-arm64 doctor --config "$work/arm64/config.yaml" --timeout 2s >"$work/doctor-pi4.txt" || rc=$?
if [ "$rc" -ne 1 ] || ! grep -q '^✗ cpu .*lacks .*asimddp' "$work/doctor-pi4.txt"; then
	log "doctor on a Pi 4's cpuinfo (exit $rc) did not flag the missing dot product:"
	cat "$work/doctor-pi4.txt" >&2
	exit 1
fi
log "Pi 4 cpuinfo: $(grep '^✗ cpu' "$work/doctor-pi4.txt")"

# Compare.
fail=0
a=$work/amd64 b=$work/arm64
if ! diff <(grep -o '^trained .* examples' "$a/train.txt") <(grep -o '^trained .* examples' "$b/train.txt") >/dev/null; then
	log "training differs:"; diff "$a/train.txt" "$b/train.txt" >&2 || true; fail=1
fi
log "training amd64: $(sed -n 2p "$a/train.txt")"
log "training arm64: $(sed -n 2p "$b/train.txt")"
i=0
while IFS= read -r ja && IFS= read -r jb <&3; do
	q=${queries[$i]}
	i=$((i + 1))
	verdict=$(jq -rn --argjson a "$ja" --argjson b "$jb" --argjson tol "$tolerance" '
		def d: (($a.confidence // 0) - ($b.confidence // 0)) | fabs;
		if $a.error or $b.error then "error reply: \($a.error // $b.error)"
		elif $a.tier != $b.tier then "tier \($a.tier) vs \($b.tier)"
		elif ($a.intent // "") != ($b.intent // "") then "intent \($a.intent) vs \($b.intent)"
		elif d > $tol then "confidence \($a.confidence) vs \($b.confidence)"
		elif $a.tier == "llm" and $a.answer != $b.answer then "text \($a.answer | @json) vs \($b.answer | @json)"
		else "ok" end')
	summary=$(jq -rn --argjson a "$ja" --argjson b "$jb" '
		if $a.tier == "llm" then "llm: \($a.answer | @json)"
		else "\($a.tier): \($a.intent) \($a.confidence * 1e6 | round / 1e6) / \($b.confidence * 1e6 | round / 1e6)" end')
	if [ "$verdict" = ok ]; then
		log "same   \"$q\" → $summary"
	else
		log "DIFFER \"$q\" → $verdict"
		fail=1
	fi
done <"$a/answers.jsonl" 3<"$b/answers.jsonl"
if [ "$i" -ne "${#queries[@]}" ]; then
	log "only $i of ${#queries[@]} answers to compare"; fail=1
fi
if [ "$fail" -ne 0 ]; then
	KEEP=1
	log "FAIL: the arm64 build does not match the amd64 build"
	exit 1
fi
log "PASS: arm64 under qemu matches amd64 (${#queries[@]} queries, tolerance $tolerance)"
