#!/usr/bin/env bash
# test-service.sh — `make test-service`: hedge as a system service under a
# real systemd. Each guest is a Debian bookworm root booted by
# `systemd-nspawn --boot` (PID 1 is systemd, no network: --private-network
# leaves the guest loopback only) and driven from here with nsenter into
# its namespaces, as there is no D-Bus: systemctl, journalctl and
# systemd-analyze talk to PID 1 over its private socket. Guests are
# throwaway overlays on one cached root.
#
#   guest       what it proves
#   readme      the README path: bin/ copied to /opt/hedge, hedge install,
#               hedge start, an answer over /run/hedge/hedge.sock, the
#               unit's sandbox (dynamic user, NoNewPrivileges, exposure
#               <= 2.0), the watchdog restarting a SIGSTOPped hedge, a
#               restart after SIGKILL, a clean hedge stop, no query text
#               in the journal, the local LLM (stories260K.gguf in
#               /var/lib/hedge/models) answering under the sandbox
#   badconfig   a config error fails hedge start with its reason, does not
#               crash-loop, and once fixed hedge start works again
#   deb         the .deb: dpkg -i answers, group hedge may ask and others
#               may not, an upgrade without a terminal keeps an edited
#               conffile, ONNX Runtime is found in /usr/lib/hedge without
#               slm.runtime_library, no ONNX Runtime telemetry cache, dpkg
#               -r keeps /var/lib/hedge and --purge removes it
#   deb-upgrade the upgrade from a release whose packaged config.yaml
#               differs, over an edited one, with no terminal
#   deb-over-readme  the .deb installed over a README install: one service
#
# Prints one PASS or FAIL line per check (a failure with what was seen),
# exits 1 when any check failed. Runs as root. Every wait is a bounded poll.
#
# The root (debootstrap --variant=minbase plus systemd, ~430 MB, ~2 min) is
# cached in ${XDG_CACHE_HOME:-~/.cache}/hedge/nspawn/KEY, KEY a hash of its
# recipe; the apt mirror is this machine's (/etc/apt/sources.list*).
#
# Environment: HEDGE_NSPAWN_MIRROR (the Debian mirror), HEDGE_TEST_GGUF (the
# model of the LLM check; default ../shared/models/stories260K.gguf),
# GUESTS (a subset: "readme deb"), KEEP=1 keeps the work folder, NOBUILD=1
# uses bin/ as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started=$SECONDS

log() { echo "test-service: $*" >&2; }
die() {
	log "$*"
	exit 2
}
[ "$(id -u)" -eq 0 ] || die "needs root (systemd-nspawn, overlay mounts): sudo make test-service"
[ "$(uname -m)" = x86_64 ] || die "runs on x86_64 (this is $(uname -m))"
scripts/apt-ensure.sh debootstrap systemd-container debian-archive-keyring jq util-linux

gguf=${HEDGE_TEST_GGUF:-$repo/../shared/models/stories260K.gguf}
[ -f "$gguf" ] || die "no GGUF model at $gguf (set HEDGE_TEST_GGUF)"
guests=${GUESTS:-readme badconfig deb deb-upgrade deb-over-readme}

work=$(mktemp -d /var/tmp/hedge-service.XXXXXX)
declare -A nspawn_pid=() guest_dir=()
cleanup() {
	local rc=$? name
	for name in "${!nspawn_pid[@]}"; do stop_guest "$name" || true; done
	if [ "${KEEP:-}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# poll SECONDS CMD...: runs CMD every 0.5 s until it succeeds; fails once
# SECONDS have passed.
poll() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.5
	done
}

# ---- results -------------------------------------------------------------
npass=0
failed=()
current=""
pass() {
	echo "PASS  $current: $1"
	npass=$((npass + 1))
}
# fail NAME [DETAIL...]: a failed check, with what was seen, indented.
fail() {
	local name=$1
	shift
	echo "FAIL  $current: $name"
	local l
	for l in "$@"; do printf '%s\n' "$l" | sed 's/^/        | /'; done
	failed+=("$current: $name")
}
# expect NAME CONDITION-CMD... : PASS when the command succeeds. The
# command's output is shown on failure.
expect() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}

# ---- build ---------------------------------------------------------------
# A build already running (another make build in this checkout) is waited
# for, not raced.
wait_builds() {
	local i=0
	while pgrep -f '(^| )make( .*)? build( |$)|go build .*-o bin/hedge ' >/dev/null; do
		[ $i -eq 0 ] && log "waiting for a running make build"
		i=$((i + 1))
		[ $i -lt 360 ] || die "a make build has been running for 30 minutes"
		sleep 5
	done
}
if [ "${NOBUILD:-}" != 1 ]; then
	wait_builds
	make --no-print-directory build >&2
fi
for f in bin/hedge bin/libonnxruntime.so.1; do [ -f "$f" ] || die "no $f: run make build"; done
ls bin/libggml-cpu-*.so >/dev/null 2>&1 || die "no bin/libggml-cpu-*.so: run make build"

# The amd64 package only, as scripts/deb.sh builds it (which also
# cross-builds arm64, not needed here), in two versions for the upgrade.
debs=$work/dist
go build -o "$work/hedge-pkg" ./cmd/hedge-pkg
ort=$(scripts/fetch-ort.sh x64)
variants=$(eval "$(scripts/cgo-env.sh amd64)" && echo "$HEDGE_LLAMA_DIR/lib")
for v in 1 2; do
	"$work/hedge-pkg" --arch amd64 --binary bin/hedge --library "$ort" --variants "$variants" \
		--out "$debs" --version "0.0.0~svc$v" >&2
done
deb1=$debs/hedge_0.0.0~svc1_amd64.deb
deb2=$debs/hedge_0.0.0~svc2_amd64.deb
if [ ! -f "$deb1" ] || [ ! -f "$deb2" ]; then die "hedge-pkg wrote no $deb1 / $deb2: $(ls "$debs")"; fi
# An earlier release as the packages before 0.0.0~svc1 were made: its
# config.yaml, another than today's, a conffile in /etc/hedge (today
# postinst writes it from /usr/share/hedge). The upgrade from it, over an
# edited file, is the one where dpkg had a conffile question to ask.
dpkg-deb -R "$deb1" "$work/deb0"
sed -i 's/^Version: .*/Version: 0.0.0~svc0/' "$work/deb0/DEBIAN/control"
mkdir -p "$work/deb0/etc/hedge"
mv "$work/deb0/usr/share/hedge/config.yaml" "$work/deb0/etc/hedge/config.yaml"
echo "# an earlier release's config.yaml" >>"$work/deb0/etc/hedge/config.yaml"
echo /etc/hedge/config.yaml >"$work/deb0/DEBIAN/conffiles"
(cd "$work/deb0" && sed -i "s|^[0-9a-f]*  usr/share/hedge/config.yaml\$|$(md5sum etc/hedge/config.yaml)|" DEBIAN/md5sums)
deb0=$debs/hedge_0.0.0~svc0_amd64.deb
dpkg-deb -Znone -b "$work/deb0" "$deb0" >/dev/null
log "built in $((SECONDS - started)) s; package Depends: $(dpkg-deb -f "$deb1" Depends)"

# ---- the cached root -----------------------------------------------------
# Everything the guests need is in the root: they have no network. The
# package's Depends (libc6, libgcc-s1, libstdc++6) are there; procps for
# pgrep, passwd for useradd.
root_pkgs="systemd systemd-sysv libstdc++6 libgcc-s1 procps passwd adduser util-linux"
recipe="bookworm minbase $root_pkgs; recipe 1: empty machine-id, console-getty masked"
key=$(sha256sum <<<"$recipe" | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/hedge/nspawn/$key
# The first Debian archive (not -security) of a one-line or deb822 source.
find_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && grep -E '^[[:space:]]*(deb|URIs:)[[:space:]]' "$f"
	done | grep -oE 'https?://[^[:space:]]+' | grep -v -- -security | head -1 || true
}
mirror=${HEDGE_NSPAWN_MIRROR:-$(find_mirror)}
[ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list*: set HEDGE_NSPAWN_MIRROR"
if [ ! -f "$cache/ok" ]; then
	t0=$SECONDS
	log "making the guest root in $cache (debootstrap bookworm from $mirror, ~2 min, once)"
	rm -rf "$cache"
	mkdir -p "$cache"
	debootstrap --variant=minbase --include="${root_pkgs// /,}" \
		--keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
		bookworm "$cache/root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
		die "debootstrap failed; see $cache/debootstrap.log"
	# Each guest gets its own machine-id (written into its overlay);
	# console-getty would only wait on a console nobody types on.
	: >"$cache/root.tmp/etc/machine-id"
	ln -sf /dev/null "$cache/root.tmp/etc/systemd/system/console-getty.service"
	echo hedge-guest >"$cache/root.tmp/etc/hostname"
	apt-get -o Dir="$cache/root.tmp" clean 2>/dev/null || rm -f "$cache"/root.tmp/var/cache/apt/archives/*.deb
	mv "$cache/root.tmp" "$cache/root"
	echo "$recipe" >"$cache/ok"
	log "guest root ready in $((SECONDS - t0)) s: $(du -sh "$cache/root" | cut -f1)"
fi

# ---- guests --------------------------------------------------------------
# boot_guest NAME: an overlay on the cached root, booted; sets groot (the
# guest's / seen from here) and leader (its PID 1, as seen from here).
groot="" leader=""
boot_guest() {
	local name=$1 d=$work/$1 t0=$SECONDS
	mkdir -p "$d/upper" "$d/work" "$d/root"
	mount -t overlay "hedge-$name" -o "lowerdir=$cache/root,upperdir=$d/upper,workdir=$d/work" "$d/root"
	guest_dir[$name]=$d
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$d/root/etc/machine-id"
	SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn --quiet --boot --register=no --keep-unit \
		--private-network --console=read-only --resolv-conf=off --timezone=off \
		-D "$d/root" -M "hedge-$name" </dev/null >"$d/console.log" 2>&1 &
	nspawn_pid[$name]=$!
	groot=$d/root
	leader=""
	# The container's PID 1 is nspawn's child once it has exec'd systemd.
	find_leader() {
		local c
		kill -0 "${nspawn_pid[$name]}" 2>/dev/null || return 2
		for c in $(pgrep -P "${nspawn_pid[$name]}"); do
			if [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ]; then
				leader=$c
				return 0
			fi
		done
		return 1
	}
	if ! poll 30 find_leader; then
		tail -20 "$d/console.log" >&2
		die "guest $name: no systemd PID 1 after 30 s"
	fi
	# Booted: running, or degraded (a unit of the minimal root failed).
	booted() { case $(g systemctl is-system-running 2>/dev/null) in running | degraded) return 0 ;; esac; return 1; }
	if ! poll 120 booted; then
		tail -20 "$d/console.log" >&2
		g systemctl --failed --no-pager >&2 || true
		die "guest $name: not booted after 120 s ($(g systemctl is-system-running 2>&1))"
	fi
	log "guest $name booted in $((SECONDS - t0)) s ($(g systemctl is-system-running))"
}

# stop_guest NAME: powers the guest off (kills nspawn when that hangs),
# unmounts its overlay.
stop_guest() {
	local name=$1 pid=${nspawn_pid[$1]:-} d=${guest_dir[$1]:-}
	if [ -n "$pid" ]; then
		gone() { ! kill -0 "$pid" 2>/dev/null; }
		if [ -n "$leader" ]; then timeout 10 nsenter -t "$leader" -a systemctl poweroff >/dev/null 2>&1 || true; fi
		if ! poll 60 gone; then
			log "guest $name did not power off in 60 s: killing systemd-nspawn"
			kill -TERM "$pid" 2>/dev/null || true
			poll 10 gone || kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
		unset "nspawn_pid[$name]"
	fi
	if [ -n "$d" ]; then
		umount "$d/root" 2>/dev/null || umount -l "$d/root" 2>/dev/null || true
		[ "${KEEP:-}" = 1 ] || rm -rf "$d"
		unset "guest_dir[$name]"
	fi
}

# g CMD...: runs CMD in the current guest, as root, in a clean environment.
g() {
	nsenter -t "$leader" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 "$@"
}
# guser USER CMD...: runs CMD in the guest as USER, with USER's groups
# and the environment a login session has.
guser() {
	local u=$1 uid
	shift
	uid=$(g id -u "$u")
	nsenter -t "$leader" -a env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="/home/$u" USER="$u" LOGNAME="$u" \
		LANG=C.UTF-8 XDG_RUNTIME_DIR="/run/user/$uid" setpriv --reuid="$u" --regid="$u" --init-groups -- "$@"
}
prop() { g systemctl show hedge.service -p "$1" --value; }
is_active() { [ "$(prop ActiveState)" = active ]; }

# ask_tier WANT CMD...: CMD is a hedge ask --json; passes when its reply
# has tier WANT. Prints the reply.
ask_tier() {
	local want=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	echo "$out"
	[ $rc -eq 0 ] || {
		echo "(exit $rc)"
		return 1
	}
	[ "$(jq -r .tier <<<"$out" 2>/dev/null)" = "$want" ] || {
		echo "(tier is not $want)"
		return 1
	}
}

# Unit state for a failure message.
unit_state() {
	g systemctl show hedge.service -p ActiveState -p SubState -p Result -p MainPID -p NRestarts \
		-p ExecMainStatus --no-pager 2>&1 | tr '\n' ' '
	echo
	g journalctl -u hedge --no-pager -n 15 -o short-monotonic 2>&1 || true
}

# no_ort_cache: ONNX Runtime's telemetry device-id cache (.cache/Microsoft)
# is nowhere in hedge's state or the service's HOME.
no_ort_cache() {
	local home pid found
	pid=$(prop MainPID)
	home=$(g sh -c "tr '\0' '\n' </proc/$pid/environ | sed -n 's/^HOME=//p'" 2>/dev/null || true)
	[ -n "$home" ] || home=$(g getent passwd hedge | cut -d: -f6)
	echo "service HOME: ${home:-?}"
	found=$(g find /var/lib/hedge/ /var/lib/private/ ${home:+"$home"/} -path '*/.cache/Microsoft' 2>/dev/null || true)
	[ -z "$found" ] || {
		echo "found: $found"
		return 1
	}
}

# readme_install: bin/ as the README installs it, in /opt/hedge.
readme_install() {
	mkdir -p "$groot/opt/hedge"
	cp -a bin/hedge bin/libonnxruntime.so.1 bin/libggml-cpu-*.so "$groot/opt/hedge/"
	g /opt/hedge/hedge install
}

# ---- guest: readme -------------------------------------------------------
guest_readme() {
	local out rc pid old t0 marker
	expect "hedge install" readme_install
	t0=$SECONDS
	if out=$(g timeout 240 /opt/hedge/hedge start 2>&1); then
		pass "hedge start (ready in $((SECONDS - t0)) s)"
	else
		fail "hedge start" "$out" "$(unit_state)"
		return
	fi
	expect "hedge ask --json hello answers tier slm" \
		ask_tier slm g timeout 120 /opt/hedge/hedge ask --socket /run/hedge/hedge.sock --json hello

	out=$(g systemctl show hedge.service -p ActiveState -p User -p DynamicUser -p NoNewPrivileges)
	if grep -qx ActiveState=active <<<"$out" && grep -qx User=hedge <<<"$out" &&
		grep -qx DynamicUser=yes <<<"$out" && grep -qx NoNewPrivileges=yes <<<"$out"; then
		pass "systemctl show: active, User=hedge, DynamicUser=yes, NoNewPrivileges=yes"
	else
		fail "systemctl show: active, User=hedge, DynamicUser=yes, NoNewPrivileges=yes" "$out"
	fi

	out=$(g systemd-analyze security --no-pager hedge.service 2>&1) || true
	local score
	score=$(grep -oE 'Overall exposure level for hedge.service: [0-9.]+' <<<"$out" | grep -oE '[0-9.]+$' || true)
	if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
		pass "systemd-analyze security: exposure $score <= 2.0"
	else
		fail "systemd-analyze security: exposure ${score:-?} <= 2.0" "$(tail -5 <<<"$out")"
	fi

	# A question with a marker, checked against the journal at the end
	# (after the crash dumps of the watchdog and SIGKILL checks too).
	marker="zqx$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')q"
	g /opt/hedge/hedge ask --socket /run/hedge/hedge.sock --json "please remember the word $marker" >/dev/null 2>&1 || true

	# Watchdog: a stopped hedge sends no WATCHDOG=1; WatchdogSec=30s.
	old=$(prop MainPID)
	t0=$SECONDS
	g kill -STOP "$old"
	# shellcheck disable=SC2317 # called through poll
	restarted() { pid=$(prop MainPID) && [ "$pid" != 0 ] && [ "$pid" != "$old" ] && is_active; }
	if poll 45 restarted; then
		out=$(g journalctl -u hedge --no-pager -o cat)
		if grep -q "result 'watchdog'" <<<"$out"; then
			pass "SIGSTOP: the watchdog restarted hedge in $((SECONDS - t0)) s (MainPID $old -> $pid)"
		else
			fail "SIGSTOP: the watchdog restarted hedge" "restarted in $((SECONDS - t0)) s, but the journal names no watchdog" "$(unit_state)"
		fi
	else
		fail "SIGSTOP: the watchdog restarts hedge within 45 s" "$(unit_state)"
		g kill -CONT "$old" 2>/dev/null || true
		poll 60 is_active || true
	fi

	old=$(prop MainPID)
	t0=$SECONDS
	g kill -KILL "$old"
	if poll 10 restarted; then
		pass "SIGKILL: hedge back in $((SECONDS - t0)) s (MainPID $old -> $pid)"
	else
		fail "SIGKILL: hedge back (active, new MainPID) within 10 s" "$(unit_state)"
		poll 60 is_active || true
	fi

	rc=0
	out=$(g timeout 60 /opt/hedge/hedge stop 2>&1) || rc=$?
	local st
	st=$(g systemctl show hedge.service -p ActiveState -p Result -p ExecMainStatus)
	if [ $rc -eq 0 ] && grep -qx ActiveState=inactive <<<"$st" && grep -qx Result=success <<<"$st"; then
		pass "hedge stop: exit 0, inactive, Result=success"
	else
		fail "hedge stop: exit 0, inactive, Result=success" "exit $rc: $out" "$st" "$(unit_state)"
	fi

	g journalctl --sync >/dev/null 2>&1 || true
	out=$(g journalctl -u hedge --no-pager -o cat)
	if [ "$(grep -c . <<<"$out")" -lt 3 ]; then
		fail "no query text in the journal" "the journal holds no hedge lines to search" "$out"
	elif grep -F "$marker" <<<"$out" >/dev/null; then
		fail "no query text in the journal" "$(grep -F "$marker" <<<"$out")"
	else
		pass "no query text in the journal ($(grep -c . <<<"$out") lines of hedge at info level)"
	fi

	expect "no .cache/Microsoft under /var/lib/hedge or the service's HOME" no_ort_cache

	# The local LLM, under the sandbox, from /var/lib/hedge/models.
	g install -d -m 0750 /var/lib/hedge/models
	cp "$gguf" "$groot/var/lib/hedge/models/stories260K.gguf"
	g chown -R --reference=/var/lib/hedge /var/lib/hedge/models
	g chmod 0640 /var/lib/hedge/models/stories260K.gguf
	cat >"$groot/etc/hedge/config.yaml" <<-EOF
		version: 1
		llm:
		  model: /var/lib/hedge/models/stories260K.gguf
		  chat_template: none
		  temperature: 0
		  max_tokens: 16
	EOF
	if out=$(g timeout 240 /opt/hedge/hedge start 2>&1); then
		expect "stories260K.gguf in /var/lib/hedge/models answers tier llm" \
			ask_tier llm g timeout 120 /opt/hedge/hedge ask --socket /run/hedge/hedge.sock --json --prefer local "Lily and Tom went to the park"
	else
		fail "hedge start with llm.model: /var/lib/hedge/models/stories260K.gguf" "$out" "$(unit_state)"
	fi
}

# ---- guest: badconfig ----------------------------------------------------
# bad_start LABEL CONFIG WANT: hedge start on CONFIG must fail, saying WANT;
# no restarts, no start-limit; then the good config starts again.
bad_start() {
	local label=$1 cfg=$2 want=$3 out rc=0 st
	printf '%s\n' "$cfg" >"$groot/etc/hedge/config.yaml"
	out=$(g timeout 120 /opt/hedge/hedge start 2>&1) || rc=$?
	if [ $rc -ne 0 ] && grep -qiF "$want" <<<"$out"; then
		pass "$label: hedge start fails (exit $rc) and shows the reason: $(grep -m1 -iF "$want" <<<"$out" | sed 's/^[[:space:]]*//')"
	else
		fail "$label: hedge start fails (non-zero) and its output names the config error ($want)" "exit $rc, output:" "$out"
	fi
	# Observing that something does not happen takes the time it takes:
	# three RestartSec=5s periods.
	sleep 15
	st=$(g systemctl show hedge.service -p NRestarts -p Result -p ActiveState -p SubState)
	if grep -qx NRestarts=0 <<<"$st" && ! grep -q start-limit <<<"$st"; then
		pass "$label: no crash loop (NRestarts=0 after 15 s, no start-limit)"
	else
		fail "$label: no crash loop (NRestarts=0 after 15 s, no start-limit)" "$st" "$(unit_state)"
	fi
	printf 'version: 1\n' >"$groot/etc/hedge/config.yaml"
	rc=0
	out=$(g timeout 240 /opt/hedge/hedge start 2>&1) || rc=$?
	if [ $rc -eq 0 ] && is_active; then
		pass "$label: fixed config: hedge start works without reset-failed"
	else
		fail "$label: fixed config: hedge start works without reset-failed" "exit $rc: $out" "$(unit_state)"
		g systemctl reset-failed hedge.service >/dev/null 2>&1 || true
		g timeout 240 /opt/hedge/hedge start >/dev/null 2>&1 || true
	fi
}
guest_badconfig() {
	expect "hedge install" readme_install
	bad_start "version: 99" "version: 99" "version"
	g timeout 60 /opt/hedge/hedge stop >/dev/null 2>&1 || true
	bad_start "unknown key" $'version: 1\ndevcie: kitchen' "devcie"
}

# ---- guest: deb ----------------------------------------------------------
guest_deb() {
	local out rc=0
	cp "$deb1" "$deb2" "$groot/root/"
	out=$(g timeout 300 env DEBIAN_FRONTEND=noninteractive dpkg -i "/root/$(basename "$deb1")" </dev/null 2>&1) || rc=$?
	if [ $rc -eq 0 ] && poll 60 is_active; then
		pass "dpkg -i: installed, service active"
	else
		fail "dpkg -i: installed, service active" "exit $rc: $out" "$(unit_state)"
		return
	fi
	expect "hedge ask --json hello (socket /run/hedge/hedge.sock) answers tier slm" \
		ask_tier slm g timeout 120 hedge ask --socket /run/hedge/hedge.sock --json hello
	expect "no .cache/Microsoft under /var/lib/hedge or the service's HOME" no_ort_cache

	g useradd -m -G hedge alice
	g useradd -m bob
	expect "a member of group hedge asks over the socket" \
		ask_tier slm guser alice timeout 120 hedge ask --socket /run/hedge/hedge.sock --json "what time is it"
	rc=0
	out=$(guser bob timeout 60 hedge ask --socket /run/hedge/hedge.sock --json "what time is it" 2>&1) || rc=$?
	if [ $rc -ne 0 ] && grep -qi permission <<<"$out"; then
		pass "a non-member is refused, and told it is a permission problem"
	else
		fail "a non-member is refused with an error naming permission" "exit $rc: $out"
	fi
	rc=0
	out=$(guser alice timeout 60 hedge ask --json hello 2>&1) || rc=$?
	if [ $rc -eq 0 ] && jq -e '.tier == "slm" or .tier == "cache"' <<<"$out" >/dev/null 2>&1; then
		pass "a member of group hedge: hedge ask --json hello without --socket finds /run/hedge/hedge.sock"
	else
		fail "a member of group hedge: hedge ask --json hello without --socket finds /run/hedge/hedge.sock" "exit $rc: $out"
	fi

	# Upgrade over an edited conffile, no terminal.
	local edit="# edited by test-service $$"
	printf '%s\ndevice: svc-edited\n' "$edit" >>"$groot/etc/hedge/config.yaml"
	local before
	before=$(prop MainPID)
	rc=0
	out=$(g timeout 300 env DEBIAN_FRONTEND=noninteractive dpkg -i "/root/$(basename "$deb2")" </dev/null 2>&1) || rc=$?
	# shellcheck disable=SC2016 # dpkg-query's ${Version}
	if [ $rc -eq 0 ] && [ "$(g dpkg-query -W -f '${Version}' hedge)" = 0.0.0~svc2 ]; then
		pass "upgrade (dpkg -i, stdin /dev/null): no conffile prompt, exit 0"
	else
		fail "upgrade (dpkg -i, stdin /dev/null): no conffile prompt, exit 0" "exit $rc: $out"
	fi
	if grep -qxF "$edit" "$groot/etc/hedge/config.yaml" && grep -qx 'device: svc-edited' "$groot/etc/hedge/config.yaml"; then
		pass "upgrade: the edit of /etc/hedge/config.yaml is kept"
	else
		fail "upgrade: the edit of /etc/hedge/config.yaml is kept" "$(cat "$groot/etc/hedge/config.yaml")"
	fi
	if poll 60 is_active && [ "$(prop MainPID)" != "$before" ]; then
		expect "upgrade: the service came back active (restarted), and answers" \
			ask_tier slm g timeout 120 hedge ask --socket /run/hedge/hedge.sock --json "what time is it"
	else
		fail "upgrade: the service came back active (restarted)" "MainPID before $before" "$(unit_state)"
	fi

	# ONNX Runtime from /usr/lib/hedge with no slm.runtime_library line.
	cp "$groot/etc/hedge/config.yaml" "$work/deb-config.yaml"
	printf 'version: 1\n' >"$groot/etc/hedge/config.yaml"
	rc=0
	out=$(g timeout 240 systemctl restart hedge.service 2>&1) || rc=$?
	if [ $rc -eq 0 ] && is_active; then
		expect "no slm.runtime_library line: still tier slm (ONNX Runtime from /usr/lib/hedge)" \
			ask_tier slm g timeout 120 hedge ask --socket /run/hedge/hedge.sock --json "what time is it"
	else
		fail "no slm.runtime_library line: still tier slm (ONNX Runtime from /usr/lib/hedge)" "restart: exit $rc: $out" "$(unit_state)"
	fi
	cp "$work/deb-config.yaml" "$groot/etc/hedge/config.yaml"
	g systemctl reset-failed hedge.service >/dev/null 2>&1 || true
	g timeout 240 systemctl restart hedge.service >/dev/null 2>&1 || true

	rc=0
	out=$(g timeout 120 dpkg -r hedge 2>&1) || rc=$?
	if [ $rc -eq 0 ] && [ -d "$groot/var/lib/hedge" ] && [ -n "$(ls -A "$groot/var/lib/hedge")" ] &&
		[ ! -e "$groot/usr/bin/hedge" ] && ! is_active; then
		pass "dpkg -r: stopped and removed, /var/lib/hedge kept ($(cd "$groot/var/lib/hedge" && echo *))"
	else
		fail "dpkg -r: stopped and removed, /var/lib/hedge kept" "exit $rc: $out" "$(ls -la "$groot/var/lib/hedge" 2>&1)" "$(unit_state)"
	fi
	rc=0
	out=$(g timeout 120 dpkg --purge hedge 2>&1) || rc=$?
	if [ $rc -eq 0 ] && [ ! -e "$groot/var/lib/hedge" ] && [ ! -e "$groot/etc/hedge/config.yaml" ]; then
		pass "dpkg --purge: /var/lib/hedge and the config removed"
	else
		fail "dpkg --purge: /var/lib/hedge and the config removed" "exit $rc: $out" "$(ls -la "$groot/var/lib/hedge" "$groot/etc/hedge" 2>&1)"
	fi
}

# ---- guest: deb-upgrade --------------------------------------------------
# The upgrade from a release with another config.yaml, over an edited one,
# without a terminal (unattended upgrades, a fleet tool over ssh).
guest_deb-upgrade() {
	local out rc=0 edit="# edited by test-service $$"
	cp "$deb0" "$deb1" "$groot/root/"
	out=$(g timeout 300 env DEBIAN_FRONTEND=noninteractive dpkg -i "/root/$(basename "$deb0")" </dev/null 2>&1) || rc=$?
	if [ $rc -ne 0 ] || ! poll 60 is_active; then
		fail "dpkg -i of the earlier release: installed, service active" "exit $rc: $out" "$(unit_state)"
		return
	fi
	printf '%s\ndevice: svc-edited\n' "$edit" >>"$groot/etc/hedge/config.yaml"
	out=$(g timeout 300 env DEBIAN_FRONTEND=noninteractive dpkg -i "/root/$(basename "$deb1")" </dev/null 2>&1) || rc=$?
	# shellcheck disable=SC2016 # dpkg-query's ${Version}
	if [ $rc -eq 0 ] && [ "$(g dpkg-query -W -f '${Version}' hedge)" = 0.0.0~svc1 ]; then
		pass "upgrade with a changed packaged config.yaml over an edited one (stdin /dev/null): no conffile prompt, exit 0"
	else
		fail "upgrade with a changed packaged config.yaml over an edited one (stdin /dev/null): no conffile prompt, exit 0" "exit $rc: $out"
	fi
	if grep -qxF "$edit" "$groot/etc/hedge/config.yaml" && grep -qx 'device: svc-edited' "$groot/etc/hedge/config.yaml"; then
		pass "upgrade with a changed packaged config.yaml: the edit is kept"
	else
		fail "upgrade with a changed packaged config.yaml: the edit is kept" "$(cat "$groot/etc/hedge/config.yaml")"
	fi
	if poll 60 is_active; then
		expect "upgrade with a changed packaged config.yaml: the service is active and answers" \
			ask_tier slm g timeout 120 hedge ask --socket /run/hedge/hedge.sock --json "what time is it"
	else
		fail "upgrade with a changed packaged config.yaml: the service is active" "$(unit_state)"
	fi
}

# ---- guest: deb-over-readme ----------------------------------------------
guest_deb-over-readme() {
	local out rc=0
	expect "hedge install (README)" readme_install
	if ! out=$(g timeout 240 /opt/hedge/hedge start 2>&1); then
		fail "hedge start (README)" "$out" "$(unit_state)"
		return
	fi
	cp "$deb1" "$groot/root/"
	out=$(g timeout 300 env DEBIAN_FRONTEND=noninteractive dpkg -i "/root/$(basename "$deb1")" </dev/null 2>&1) || rc=$?
	if [ $rc -eq 0 ]; then
		pass "dpkg -i over a README install: exit 0 (stdin /dev/null)"
	else
		fail "dpkg -i over a README install: exit 0 (stdin /dev/null)" "exit $rc: $out"
	fi
	local units procs exec
	poll 60 is_active || true
	units=$(g systemctl list-units --all --plain --no-legend 'hedge*' | awk '{print $1}')
	procs=$(g pgrep -a -x hedge || true)
	if is_active && [ "$(grep -c . <<<"$units")" -eq 1 ] && [ "$(grep -c . <<<"$procs")" -eq 1 ]; then
		expect "one service after the .deb over a README install, and it answers" \
			ask_tier slm g timeout 120 hedge ask --socket /run/hedge/hedge.sock --json "what time is it"
	else
		fail "one service after the .deb over a README install" "units: $units" "processes: $procs" "$(unit_state)"
	fi
	# What dpkg left running may be the README install's process: the
	# service as the next boot starts it must work too.
	rc=0
	out=$(g timeout 240 systemctl restart hedge.service 2>&1) || rc=$?
	if [ $rc -eq 0 ] && is_active; then
		expect "after a restart, the one service answers" \
			ask_tier slm g timeout 120 hedge ask --socket /run/hedge/hedge.sock --json "what time is it"
	else
		fail "after a restart, the one service is active" "exit $rc: $out" "$(unit_state)"
	fi
	exec=$(prop ExecStart)
	if grep -q 'path=/usr/bin/hedge ' <<<"$exec"; then
		pass "the service runs the package's /usr/bin/hedge"
	else
		fail "the service runs the package's /usr/bin/hedge, not the README install's" \
			"FragmentPath=$(prop FragmentPath)" "DropInPaths=$(prop DropInPaths)" "ExecStart=$exec"
	fi
}

for name in $guests; do
	declare -F "guest_$name" >/dev/null || die "no guest $name (guests: readme badconfig deb deb-upgrade deb-over-readme)"
	current=$name
	t0=$SECONDS
	boot_guest "$name"
	"guest_$name"
	stop_guest "$name"
	log "guest $name done in $((SECONDS - t0)) s"
done

echo
echo "test-service: $npass passed, ${#failed[@]} failed, $((SECONDS - started)) s"
for f in "${failed[@]}"; do echo "  FAIL $f"; done
[ ${#failed[@]} -eq 0 ]
