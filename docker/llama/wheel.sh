#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible server (llama-cpp-python) as a wheel, once per machine.
#
#   docker/llama/wheel.sh        # prints the folder holding the wheel on stdout
#
# `make llama` installs the server from that folder into .venv-llama; docker/build-images.sh
# installs it into the llama test image. Both therefore run the very same build.
#
# Compiling llama.cpp takes about 4-10 minutes on 2 cores, so the wheel is kept outside the
# repository (fresh clones reuse it) in a folder named after the version and the CMake
# options: a change of either builds anew. pip's own wheel cache is not used for this,
# because it keys a build on the source alone and would hand back a wheel built with other
# options.
#
# CMake options, and why:
#   -DGGML_OPENMP=OFF   the wheel then needs no libgomp, which minimal images (debootstrap
#                       minbase, python:*-slim) lack; one thread is plenty for a tiny model
#   -DLLAVA_BUILD=OFF   no multimodal library: nothing here uses it, and it is build time
#
# Environment:
#   LLAMA_WHEEL_DIR     where wheels are kept (default: $XDG_CACHE_HOME or ~/.cache, then
#                       local-ai-suite/llama-wheels)
#   PYTHON              Python 3.11 with pip that builds the wheel (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
REQUIREMENTS="$ROOT/tests/llama-requirements.txt"   # the one pin
PYTHON="${PYTHON:-python3}"
CMAKE_OPTIONS="-DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF"

say() { echo "llama-wheel: $*" >&2; }
die() { echo "llama-wheel: error: $*" >&2; exit 1; }

version="$(sed -n 's/^llama-cpp-python\[server\]==\([0-9.]*\)$/\1/p' "$REQUIREMENTS")"
[ -n "$version" ] || die "no pinned line 'llama-cpp-python[server]==X.Y.Z' in $REQUIREMENTS"
options_digest="$(printf '%s' "$CMAKE_OPTIONS" | sha256sum | cut -c1-8)"
base="${LLAMA_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/local-ai-suite/llama-wheels}"
dir="$base/$version-$options_digest"

if compgen -G "$dir/llama_cpp_python-$version-*.whl" >/dev/null; then
    say "reusing $(basename "$dir"/llama_cpp_python-"$version"-*.whl) from $dir"
    echo "$dir"
    exit 0
fi

command -v cmake >/dev/null || command -v "$(dirname "$PYTHON")/cmake" >/dev/null \
    || say "no cmake on PATH: pip fetches it from PyPI for the build"
command -v cc >/dev/null || command -v gcc >/dev/null \
    || die "no C/C++ compiler (cc/gcc): install one (Debian: apt-get install build-essential)"

mkdir -p "$base"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
log="$base/build-$version-$options_digest.log"   # kept: a failed build is read afterwards
say "building llama.cpp's server (llama-cpp-python $version, $CMAKE_OPTIONS):"
say "  about 4-10 minutes on 2 cores, once per machine; log: $log"
started=$SECONDS
# --no-cache-dir: never take a wheel pip built earlier with other options. -v: CMake's
# "[ 42%] Building ..." lines reach the log, and the progress line below shows them.
CMAKE_ARGS="$CMAKE_OPTIONS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PYTHON" -m pip wheel -v --no-deps --no-cache-dir --no-binary llama-cpp-python \
        --disable-pip-version-check -w "$scratch/out" "llama-cpp-python==$version" \
        >"$log" 2>&1 &
build=$!
# A line every 30 s, so a long compile never looks hung.
while kill -0 "$build" 2>/dev/null; do
    for _ in 1 2 3 4 5 6; do
        sleep 5
        kill -0 "$build" 2>/dev/null || break 2
    done
    percent="$(grep -o '^\[ *[0-9]*%\]' "$log" | tail -n 1 | tr -d '[ ]')"
    say "  still compiling: $((SECONDS - started)) s${percent:+, CMake at $percent}"
done
if ! wait "$build"; then
    tail -n 30 "$log" >&2
    die "building llama-cpp-python $version failed (last lines above; log: $log)"
fi
mkdir -p "$dir"
# Moved in whole: a build killed half-way never leaves a wheel that looks complete.
mv "$scratch"/out/llama_cpp_python-*.whl "$dir/"
say "built in $((SECONDS - started)) s: $(basename "$dir"/llama_cpp_python-*.whl)"
echo "$dir"
