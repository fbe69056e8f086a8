#!/usr/bin/env bash
# fetch-tokenizers.sh — puts the real tokenizers the chat-template tests
# build their GGUF fixtures with (models/gguf/tokenizers.go) in hedge's
# cache and prints the folders.
#
# Real vocabularies cannot be fetched as model files here, but npm serves
# them inside two JavaScript packages: llama3-tokenizer-js (Llama 3's BPE
# tokens and merges) and llama-tokenizer-js (Llama 2's SentencePiece
# pieces). Each is unpacked with npm pack, its data file checked against a
# pinned sha256, and kept outside git, in
#   ${HEDGE_CACHE:-$HOME/.cache/hedge}/tokenizers/<name>@<version>/package
# A second run finds the checked files and prints the folders at once.
set -euo pipefail

cache="${HEDGE_CACHE:-$HOME/.cache/hedge}/tokenizers"
# name@version, the data file inside package/, its sha256.
pins=(
	"llama3-tokenizer-js@1.2.0 src/data-converted.js 7abff3033ab88d0eaecf59109994049f1af4ea36236e657dd665d29aa31de74f"
	"llama-tokenizer-js@1.2.2 llama-tokenizer.js 34a7b9f7579d40486444590c37cba6564ef40c3dd98ecdfc2f7c886ae72c898d"
)

trap 'rm -rf "$cache"/.fetch.*' EXIT

fetch() { # pkg file sha256
	local pkg=$1 file=$2 want=$3 dir="$cache/$1"
	if [ -f "$dir/package/$file" ] && echo "$want  $dir/package/$file" | sha256sum --check --status; then
		echo "$dir/package"
		return
	fi
	command -v npm >/dev/null || { echo "fetch-tokenizers: npm is needed (apt-get install npm)" >&2; exit 1; }
	mkdir -p "$cache"
	local tmp
	tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
	echo "fetch-tokenizers: downloading $pkg" >&2
	(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
	tar -xzf "$tmp"/*.tgz -C "$tmp"
	local got
	got="$(sha256sum "$tmp/package/$file" | cut -d' ' -f1)"
	if [ "$got" != "$want" ]; then
		rm -rf "$tmp"
		echo "fetch-tokenizers: checksum mismatch for $pkg $file: got $got, want $want" >&2
		exit 1
	fi
	# The folder is replaced whole: a reader sees the old one or the new.
	rm -rf "$dir.old"
	[ -d "$dir" ] && mv "$dir" "$dir.old"
	mkdir -p "$dir"
	mv "$tmp/package" "$dir/package"
	rm -rf "$tmp" "$dir.old"
	echo "$dir/package"
}

for p in "${pins[@]}"; do
	# shellcheck disable=SC2086 # three words
	fetch $p
done
