#!/usr/bin/env bash
# Builds llama-cpp-python 0.3.36 from its pinned sdist with our patches to the vendored
# llama.cpp, as a wheel with the local version 0.3.36+huatuo.N, into a cache folder.
# The local version keeps pip's wheel cache from handing back an unpatched build, and lets
# the app tell at run time that the patched build is installed.
#
#   native/llama-cpp/build-wheel.sh [WHEEL_DIR]     (prints the wheel's path on its last line)
#
# The default build is portable (GGML_NATIVE=OFF: x86-64 with AVX2/FMA/F16C, no AVX-512/AMX): a
# native build also enables AMX on CPUs that have it, and ggml's AMX matmul crashes on quantized models
# (seen with Q8_0/Q4_K_M). CMAKE_ARGS replaces the default (e.g. "-DGGML_NATIVE=OFF -DGGML_CUDA=on").
set -euo pipefail
export CMAKE_ARGS=${CMAKE_ARGS:--DGGML_NATIVE=OFF}
here=$(cd "$(dirname "$0")" && pwd)
upstream=0.3.36
local_label=huatuo.3
sdist_sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
python=${PYTHON:-python3}

# One cache entry per (patches, build flags, Python): a change to either builds anew.
key=$(cat "$here"/*.patch <(echo "${CMAKE_ARGS:-}") <("$python" -c 'import sys; print(sys.version_info[:2])') \
      | sha256sum | cut -c1-12)
wheel_dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/huatuo-vision/wheels/$key}
mkdir -p "$wheel_dir"
existing=$(ls "$wheel_dir"/llama_cpp_python-"$upstream"+"$local_label"-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$existing" ]; then
    echo "$existing"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "downloading the llama-cpp-python $upstream sdist" >&2
"$python" -m pip download --quiet --no-binary :all: --no-deps -d "$work" "llama-cpp-python==$upstream"
sdist="$work/llama_cpp_python-$upstream.tar.gz"
echo "$sdist_sha256  $sdist" | sha256sum --check --quiet
tar -xzf "$sdist" -C "$work"
src="$work/llama_cpp_python-$upstream"
for p in "$here"/*.patch; do
    echo "applying $(basename "$p")" >&2
    patch --quiet -p1 -d "$src" < "$p"
done
sed -i "s/^__version__ = \"$upstream\"/__version__ = \"$upstream+$local_label\"/" "$src/llama_cpp/__init__.py"
grep -q "+$local_label" "$src/llama_cpp/__init__.py"

echo "compiling llama.cpp (about 10 minutes on 2 cores)" >&2
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$python" -m pip wheel --quiet --no-deps --no-cache-dir -w "$work/dist" "$src" >&2
mv "$work"/dist/llama_cpp_python-*.whl "$wheel_dir"/
ls "$wheel_dir"/llama_cpp_python-"$upstream"+"$local_label"-*.whl
