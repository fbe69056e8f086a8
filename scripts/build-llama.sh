#!/usr/bin/env bash
# build-llama.sh ARCH KEY OUT "VARIANTS" -- CMAKE_ARGS... — builds llama.cpp
# for hedge with CMake (scripts/llama/CMakeLists.txt) out of source from the
# read-only ollama module. Called by scripts/cgo-env.sh, which holds every
# flag and knows when the cache lacks a build; not meant to be run by hand.
#
# OUT receives, built from the same sources in the same run:
#   libhedge-llama.a        ggml-base + ggml's backend registry + llama,
#                           linked into hedge (static)
#   ggml.dynlist            the ggml symbols hedge exports to the variants
#                           (-Wl,--dynamic-list)
#   lib/libggml-cpu-*.so    the CPU backend, one per CPU generation, stripped,
#                           without NEEDED libggml-base.so.0: hedge itself
#                           provides those symbols
#   build.txt               the key, the flags, sizes and build time
# OUT is written whole or not at all (built beside it, then renamed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
arch=$1 key=$2 out=$3 variants=$4
shift 4
[ "${1:-}" = -- ] && shift
log() { echo "build-llama: $*" >&2; }

case "$arch" in
amd64) tools="" ;;
arm64) tools=aarch64-linux-gnu- ;;
*) log "unsupported arch $arch"; exit 2 ;;
esac
for t in cmake ninja patchelf "${tools}strip" readelf; do
	command -v "$t" >/dev/null || { log "$t is missing: run scripts/setup.sh build"; exit 1; }
done

parent=$(dirname "$out")
mkdir -p "$parent"
# One build per key at a time: a second caller waits for the first and
# then finds its result.
exec 9>"$out.lock"
flock 9
if [ -f "$out/build.txt" ]; then exit 0; fi

tmp=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS
log "building llama.cpp's core and CPU variants ($variants) for $arch into $out; minutes, once per ollama version and flags"
targets=(hedge-llama ggml-base)
for v in $variants; do targets+=("ggml-cpu-$v"); done
cmake -G Ninja -S "$here/llama" -B "$tmp/build" -Wno-dev \
	-DHEDGE_LLAMA_BUILD="$key" "-DHEDGE_CPU_VARIANTS=${variants// /;}" "$@" >"$tmp/configure.log" 2>&1 ||
	{ cat "$tmp/configure.log" >&2; log "cmake configure failed"; exit 1; }
# Only the listed targets: target ggml would build every variant ggml
# knows, some of which this compiler cannot (armv9.2 with gcc 12).
nice -n 10 ninja -C "$tmp/build" "${targets[@]}" >"$tmp/ninja.log" 2>&1 ||
	{ tail -40 "$tmp/ninja.log" >&2; log "ninja failed"; exit 1; }

stage=$tmp/out
mkdir -p "$stage/lib"
cp "$tmp/build/libhedge-llama.a" "$stage/"
base=$(readlink -f "$tmp/build/ggml/libggml-base.so")
# The C API of ggml-base, which the variants call into hedge for.
readelf -W --dyn-syms "$base" | awk '$7 != "UND" && ($5 == "GLOBAL" || $5 == "WEAK") {sub(/@.*/, "", $8); print $8}' |
	grep -E '^(ggml|gguf|quantize|dequantize|iq2xs|iq3xs)_' | sort -u >"$tmp/exported"
{
	echo "{"
	sed 's/.*/  &;/' "$tmp/exported"
	echo "};"
} >"$stage/ggml.dynlist"
readelf -W --dyn-syms "$base" | awk '$7 != "UND" {sub(/@.*/, "", $8); print $8}' | sort -u >"$tmp/base"

for v in $variants; do
	so=$stage/lib/libggml-cpu-$v.so
	cp "$tmp/build/bin/libggml-cpu-$v.so" "$so"
	patchelf --remove-needed libggml-base.so.0 "$so"
	"${tools}strip" --strip-unneeded "$so"
	if readelf -d "$so" | grep -q 'NEEDED.*ggml'; then
		log "$so still needs a ggml library"; exit 1
	fi
	# Every ggml-base symbol the variant calls must be one hedge exports.
	missing=$(readelf -W --dyn-syms "$so" | awk '$7 == "UND" {sub(/@.*/, "", $8); print $8}' | sort -u |
		comm -12 - "$tmp/base" | comm -23 - "$tmp/exported")
	if [ -n "$missing" ]; then
		log "libggml-cpu-$v.so needs ggml-base symbols outside ggml.dynlist: $missing"; exit 1
	fi
done

{
	echo "key: $key"
	echo "arch: $arch"
	echo "variants: $variants"
	echo "cmake: $*"
	echo "compiler: $("${tools}gcc" --version | head -1)"
	echo "seconds: $((SECONDS - t0))"
	echo "exported symbols: $(wc -l <"$tmp/exported")"
	(cd "$stage" && find . -type f ! -name build.txt -printf '%P %s\n' | sort)
} >"$stage/build.txt"
rm -rf "$out"
mv "$stage" "$out"
log "built $arch in $((SECONDS - t0)) s: $(du -sh "$out/lib" | cut -f1) of variants in $out/lib"
