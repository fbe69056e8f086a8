#!/usr/bin/env bash
# fetch-ort.sh [x64|arm64] — puts ONNX Runtime's shared library in hedge's
# cache and prints its path.
#
# No registry these machines reach serves ONNX Runtime as a plain download,
# but npm does: onnxruntime-node ships libonnxruntime.so.1 for linux x64 and
# arm64. We take only that one file from the package, check it against the
# pinned sha256 and keep it outside git, in
#   ${HEDGE_CACHE:-$HOME/.cache/hedge}/ort/<version>/<arch>/libonnxruntime.so.1
# A second run finds the cached, verified file and prints its path at once.
set -euo pipefail

version=1.30.0
arch="${1:-}"
if [ -z "$arch" ]; then
	case "$(uname -m)" in
	x86_64 | amd64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) echo "fetch-ort: unsupported machine $(uname -m); pass x64 or arm64" >&2; exit 2 ;;
	esac
fi
case "$arch" in
x64) want=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23 ;;
arm64) want=1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76 ;;
*) echo "fetch-ort: unknown arch $arch; want x64 or arm64" >&2; exit 2 ;;
esac

cache="${HEDGE_CACHE:-$HOME/.cache/hedge}"
dir="$cache/ort/$version/$arch"
lib="$dir/libonnxruntime.so.1"

if [ -f "$lib" ] && echo "$want  $lib" | sha256sum --check --status; then
	echo "$lib"
	exit 0
fi

command -v npm >/dev/null || { echo "fetch-ort: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-ort: downloading onnxruntime-node@$version (about 110 MB) for $arch" >&2
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
member="package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
tar -xzf "$tmp/onnxruntime-node-$version.tgz" -C "$tmp" "$member"
got="$(sha256sum "$tmp/$member" | cut -d' ' -f1)"
if [ "$got" != "$want" ]; then
	echo "fetch-ort: checksum mismatch for $member: got $got, want $want" >&2
	exit 1
fi
# rename(2) within one directory: a concurrent reader sees the old file or
# the whole new one, never half of it.
mv "$tmp/$member" "$tmp/lib.part"
mv -f "$tmp/lib.part" "$lib"
echo "$lib"
