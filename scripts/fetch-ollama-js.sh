#!/usr/bin/env bash
# fetch-ollama-js.sh — installs the official Ollama JavaScript client (npm
# package ollama, pinned) in hedge's cache for the test that drives a real
# hedge with it (cmd/hedge/ollama_client_test.go), and prints the folder to
# put in NODE_PATH:
#   ${HEDGE_CACHE:-$HOME/.cache/hedge}/npm/ollama@<version>/node_modules
# A second run finds the installed version and prints the folder at once.
set -euo pipefail

version=0.6.4
dir="${HEDGE_CACHE:-$HOME/.cache/hedge}/npm/ollama@$version"
mods="$dir/node_modules"

installed() {
	[ -f "$mods/ollama/package.json" ] &&
		[ "$(node -p "require('$mods/ollama/package.json').version" 2>/dev/null)" = "$version" ]
}
if installed; then
	echo "$mods"
	exit 0
fi
command -v npm >/dev/null || { echo "fetch-ollama-js: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
tmp="$(mktemp -d "${dir}.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-ollama-js: installing ollama@$version" >&2
npm install --prefix "$tmp" --no-save --no-audit --no-fund --silent "ollama@$version" >&2
# The folder is replaced whole: a reader sees the old one or the new.
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
installed || { echo "fetch-ollama-js: ollama@$version did not install in $dir" >&2; exit 1; }
echo "$mods"
