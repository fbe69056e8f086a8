#!/usr/bin/env bash
# apt-ensure.sh PKG... — installs the Debian packages that are missing.
# Runs apt-get update once per call, only when something is missing. Used by
# the Makefile and by tests that need a real component (mosquitto, chromium…).
set -euo pipefail
missing=()
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "apt-ensure: installing ${missing[*]}" >&2
# A lock held by another apt run (parallel tests) is waited for, not failed on.
$sudo apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >&2
