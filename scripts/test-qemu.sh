#!/usr/bin/env bash
# test-qemu.sh — proves on an amd64 machine that one hedge package runs on
# every CPU of its architecture, each at its best llama.cpp variant: the
# amd64 and arm64 .debs (scripts/deb.sh) are unpacked as a board installs
# them (/usr/bin/hedge, /usr/lib/hedge/libggml-cpu-*.so, ONNX Runtime), and
# the same steps run with
#
#   run            CPU (qemu -cpu)                  variant it must choose
#   amd64          this machine, native             the best it has
#   amd64-nehalem  qemu-x86_64 -cpu Nehalem         sse42 (no AVX)
#   amd64-haswell  qemu-x86_64 -cpu Haswell         haswell (AVX2, FMA)
#   arm64-a72      qemu-aarch64 -cpu cortex-a72     armv8.0_1 (Raspberry Pi 4)
#   arm64-a76      qemu-aarch64 -cpu cortex-a76     armv8.2_2 (Raspberry Pi 5)
#
# Steps of a run: hedge version; hedge train --intents starter (the native
# and the a72 runs; the others reuse their architecture's model); hedge run
# with an f32 GGUF in llama.cpp, on a Unix socket; hedge ask --json for
# queries the intent model answers and queries the local LLM answers
# (greedy); hedge doctor. Every run must give the native run's intents and
# tiers (confidences within $TOLERANCE) and the same greedy text, and log
# and report the variant it must choose. hedge finds the variants the way
# the package installs them, in ../lib/hedge from its binary: the build
# cache is out of reach (HEDGE_CACHE is an empty folder).
#
# Then two refusals, natively: llm.cpu_library_dir is an empty folder, then
# the arm64 package's variants. hedge run must say that no variant runs,
# with the CPU's features and the folder, keep serving the intent model
# (the same answers) without the LLM tier, and doctor must fail its cpu
# check.
#
# qemu-user 7.2 (Debian 12) does not emulate /proc/cpuinfo for aarch64: the
# guest would read the x86 host's, on which ONNX Runtime's CPU detection
# (cpuinfo) crashes while the library loads. The arm64 runs therefore see
# a Raspberry Pi 4's or 5's /proc/cpuinfo (platform/testdata) in a private
# mount namespace, as the board would show it. That needs root or
# unprivileged user namespaces (unshare --map-root-user). ggml itself reads
# the emulated CPU (HWCAP on Arm, CPUID on x86).
#
# Environment: HEDGE_TEST_GGUF (an f32 GGUF; default
# ../shared/models/stories260K.gguf, else a generated tiny llama fixture),
# TOLERANCE (default 0.02), KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
tolerance=${TOLERANCE:-0.02}

if [ "$(uname -m)" != x86_64 ]; then
	echo "test-qemu: runs on an x86_64 build machine (this is $(uname -m))" >&2
	exit 1
fi
scripts/apt-ensure.sh qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross jq util-linux dpkg

work=$(mktemp -d /tmp/hedge-qemu.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	if [ "${KEEP:-}" = 1 ]; then echo "test-qemu: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
log() { echo "test-qemu: $*" >&2; }
started=$SECONDS

# The packages, built as make deb builds them, unpacked as dpkg would.
DEB_VERSION=0.0.0~qemu scripts/deb.sh "$work/dist" >/dev/null
for arch in amd64 arm64; do
	dpkg-deb -x "$work/dist/hedge_0.0.0~qemu_$arch.deb" "$work/root-$arch"
	log "$arch package: $(stat -c %s "$work/dist/hedge_0.0.0~qemu_$arch.deb") bytes, variants: $(cd "$work/root-$arch/usr/lib/hedge" && echo libggml-cpu-*.so)"
done
export HEDGE_CACHE=$work/no-cache

gguf=${HEDGE_TEST_GGUF:-$repo/../shared/models/stories260K.gguf}
if [ ! -f "$gguf" ]; then
	gguf=$work/tiny-f32.gguf
	go run ./models/gguf/ggufgen -shape tiny -type f32 -seed 1 -o "$gguf"
fi
log "GGUF fixture: $gguf"

# Queries: three the starter intents answer, two that fall through to the
# local LLM (prefer local: no cloud is configured anyway).
queries=("hello" "what time is it" "thank you so much" "Lily and Tom went to the park" "The little bird")

# Runners. qemu's -cpu sets the CPU that both ggml and ONNX Runtime see.
ns=(unshare --mount)
[ "$(id -u)" -eq 0 ] || ns=(unshare --mount --map-root-user)
# qemu-aarch64 in a mount namespace with a board's cpuinfo.
# shellcheck disable=SC2016 # $0 and $@ belong to the inner shell
inner='mount --bind "$0" /proc/cpuinfo && exec qemu-aarch64-static "$@"'
a72=(env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu "${ns[@]}" sh -c "$inner"
	"$repo/platform/testdata/pi4/proc/cpuinfo" -cpu cortex-a72 "$work/root-arm64/usr/bin/hedge")
a76=(env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu "${ns[@]}" sh -c "$inner"
	"$repo/platform/testdata/pi5/proc/cpuinfo" -cpu cortex-a76 "$work/root-arm64/usr/bin/hedge")

# config DIR ARCH [EXTRA] — writes DIR/config.yaml for a run.
config() {
	local dir=$1 arch=$2
	cat >"$dir/config.yaml" <<-EOF
		version: 1
		device: qemu-proof
		state_dir: $dir/state
		socket: $dir/hedge.sock
		http:
		  enabled: false
		mqtt:
		  enabled: false
		cache:
		  enabled: false
		slm:
		  runtime_library: $work/root-$arch/usr/lib/hedge/libonnxruntime.so.1
		  threads: 1
		llm:
		  model: $gguf
		  chat_template: none
		  temperature: 0
		  max_tokens: 24
		  threads: 1
		  seed: 1
		${3:-}
	EOF
}

# serve NAME RUNNER... — hedge run with NAME's config, every query asked
# over the socket into NAME/answers.jsonl, then SIGTERM.
serve() {
	local name=$1
	shift
	local run=("$@") dir=$work/$name t0=$SECONDS
	"${run[@]}" run --config "$dir/config.yaml" >"$dir/run.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	# A first start trains the intent model: minutes under emulation.
	while [ ! -S "$dir/hedge.sock" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$name: hedge run exited before listening:"
			cat "$dir/run.log" >&2
			return 1
		fi
		if [ $((SECONDS - t0)) -gt 900 ]; then
			log "$name: hedge run did not listen within 900 s"
			cat "$dir/run.log" >&2
			return 1
		fi
		sleep 1
	done
	log "$name: hedge run listening after $((SECONDS - t0)) s"
	: >"$dir/answers.jsonl"
	# An error reply (exit 1) is an answer too; the comparison judges it.
	for q in "${queries[@]}"; do
		"${run[@]}" ask --socket "$dir/hedge.sock" --prefer local --json "$q" >>"$dir/answers.jsonl" 2>/dev/null || true
	done
	kill -TERM "$pid"
	wait "$pid" || { log "$name: hedge run failed on SIGTERM"; cat "$dir/run.log" >&2; return 1; }
}

# steps NAME ARCH WANT TRAIN-FROM RUNNER... — one run: version, training
# (TRAIN-FROM "": here; else copy that run's model), serving, doctor, and
# the variant chosen, which must be WANT ("" : any).
steps() {
	local name=$1 arch=$2 want=$3 from=$4
	shift 4
	local run=("$@") dir=$work/$name t0=$SECONDS
	mkdir -p "$dir"
	"${run[@]}" version >"$dir/version"
	config "$dir" "$arch"
	if [ -z "$from" ]; then
		"${run[@]}" train --intents starter --out "$dir/trained" >"$dir/train.txt" 2>"$dir/train.err"
		log "$name: trained in $((SECONDS - t0)) s: $(head -1 "$dir/train.txt")"
	else
		mkdir -p "$dir/state" && cp -r "$work/$from/state/slm" "$dir/state/"
	fi
	serve "$name" "${run[@]}"
	local rc=0
	"${run[@]}" doctor --config "$dir/config.yaml" --timeout 2s >"$dir/doctor.txt" || rc=$?
	if [ "$rc" -ne 0 ]; then
		sed "s/^/  $name doctor: /" "$dir/doctor.txt" >&2
		log "$name: hedge doctor exited $rc"
		return 1
	fi
	local cpu logged
	cpu=$(grep '^✓ cpu ' "$dir/doctor.txt" | sed -n 's/.*llama\.cpp CPU variant \([^ ]*\) (.*/\1/p')
	logged=$(grep 'msg="llama.cpp CPU variant"' "$dir/run.log" | grep -o ' variant=[^ ]*' | cut -d= -f2 | head -1)
	if [ -z "$cpu" ] || [ "$cpu" != "$logged" ] || { [ -n "$want" ] && [ "$cpu" != "$want" ]; }; then
		log "$name: variant: doctor $cpu, hedge run ${logged:-none}, want ${want:-any}"
		sed "s/^/  $name doctor: /" "$dir/doctor.txt" >&2
		grep -i 'variant\|llm' "$dir/run.log" | sed "s/^/  $name run: /" >&2
		return 1
	fi
	echo "$cpu" >"$dir/variant"
	log "$name: variant $cpu ($(grep '^✓ cpu ' "$dir/doctor.txt" | sed 's/.*: \([^;]*\);.*/\1/')), $((SECONDS - t0)) s in all"
}

steps amd64 amd64 "" "" "$work/root-amd64/usr/bin/hedge"
steps amd64-nehalem amd64 sse42 amd64 qemu-x86_64-static -cpu Nehalem "$work/root-amd64/usr/bin/hedge"
# Haswell without what qemu's TCG does not emulate (it warns per process).
steps amd64-haswell amd64 haswell amd64 qemu-x86_64-static -cpu Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-invpcid,-rtm "$work/root-amd64/usr/bin/hedge"
steps arm64-a72 arm64 armv8.0_1 "" "${a72[@]}"
steps arm64-a76 arm64 armv8.2_2 arm64-a72 "${a76[@]}"

# The refusals: no usable variant, natively. The LLM tier is off, hedge
# says why and keeps answering from the intent model.
refuse() {
	local name=$1 libdir=$2 reason=$3 dir=$work/$1
	mkdir -p "$dir/state"
	cp -r "$work/amd64/state/slm" "$dir/state/"
	config "$dir" amd64 "  cpu_library_dir: $libdir"
	serve "$name" "$work/root-amd64/usr/bin/hedge"
	local line
	line=$(grep 'the local LLM tier is off' "$dir/run.log" || true)
	local ok=1
	for w in "no llama.cpp CPU variant runs on this CPU" "this CPU has " "$libdir" "$reason"; do
		[[ "$line" == *"$w"* ]] || { log "$name: the refusal lacks \"$w\""; ok=0; }
	done
	local rc=0
	"$work/root-amd64/usr/bin/hedge" doctor --config "$dir/config.yaml" --timeout 2s >"$dir/doctor.txt" || rc=$?
	grep -q '^✗ cpu .*no llama.cpp CPU variant runs' "$dir/doctor.txt" || { log "$name: doctor (exit $rc) did not fail its cpu check"; ok=0; }
	# The intent model still answers, as in the native run; what fell
	# through to the LLM gets a no_tier reply that says why.
	local i=0
	while IFS= read -r ja && IFS= read -r jb <&3; do
		q=${queries[$i]}
		i=$((i + 1))
		v=$(jq -rn --argjson a "$ja" --argjson b "$jb" '
			if $a.tier == "llm" then
				(if ($b.error.code // "") == "no_tier" and (($b.error.message // "") | contains("the local LLM is off")) then "ok"
				else "want a no_tier reply that says the local LLM is off, got \($b)" end)
			elif $b.error then "error reply: \($b.error)"
			elif $a.tier != $b.tier or ($a.intent // "") != ($b.intent // "") then "\($a.tier)/\($a.intent) vs \($b.tier)/\($b.intent)"
			else "ok" end')
		[ "$v" = ok ] || { log "$name: \"$q\": $v"; ok=0; }
	done <"$work/amd64/answers.jsonl" 3<"$dir/answers.jsonl"
	[ "$i" -eq "${#queries[@]}" ] || { log "$name: only $i of ${#queries[@]} answers"; ok=0; }
	if [ "$ok" != 1 ]; then
		sed "s/^/  $name run: /" "$dir/run.log" >&2
		sed "s/^/  $name doctor: /" "$dir/doctor.txt" >&2
		return 1
	fi
	log "$name: refused, the intent model still answers: ${line#*err=}"
}
mkdir -p "$work/empty"
refuse refuse-empty "$work/empty" "no libggml-cpu-*.so"
refuse refuse-arm64 "$work/root-arm64/usr/lib/hedge" "built for EM_AARCH64"

# Compare every run with the native amd64 run.
fail=0
a=$work/amd64
if ! diff <(grep -o '^trained .* examples' "$a/train.txt") <(grep -o '^trained .* examples' "$work/arm64-a72/train.txt") >/dev/null; then
	log "training differs:"; diff "$a/train.txt" "$work/arm64-a72/train.txt" >&2 || true; fail=1
fi
log "training amd64: $(sed -n 2p "$a/train.txt")"
log "training arm64: $(sed -n 2p "$work/arm64-a72/train.txt")"
for name in amd64-nehalem amd64-haswell arm64-a72 arm64-a76; do
	b=$work/$name
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
			log "same   $name ($(cat "$b/variant")) \"$q\" → $summary"
		else
			log "DIFFER $name ($(cat "$b/variant")) \"$q\" → $verdict"
			fail=1
		fi
	done <"$a/answers.jsonl" 3<"$b/answers.jsonl"
	if [ "$i" -ne "${#queries[@]}" ]; then
		log "$name: only $i of ${#queries[@]} answers to compare"; fail=1
	fi
done
if [ "$fail" -ne 0 ]; then
	KEEP=1
	log "FAIL: a run does not match the native amd64 run"
	exit 1
fi
log "PASS in $((SECONDS - started)) s: native $(cat "$a/variant"), Nehalem sse42, Haswell haswell, Cortex-A72 armv8.0_1, Cortex-A76 armv8.2_2 give the same answers (${#queries[@]} queries, tolerance $tolerance); no usable variant refuses the LLM tier and the intent model still answers"
