#!/usr/bin/env bash
# Build llama-cpp-python (published as source only) into a wheel for one CPU variant, and print
# the wheel's path. One source of truth for the compile flags: the Makefile, every Dockerfile
# stage and the build-variant benchmark call this script.
#
# Why: llama.cpp's default GGML_NATIVE=ON compiles for the build host's CPU (AMX on a Sapphire
# Rapids host), and the result dies with SIGILL on another host, or even on the same one when the
# hypervisor advertises AMX it does not grant. Every variant here names its instruction sets.
#
#   scripts/llama-wheel.sh [VARIANT]      VARIANT: avx2 (default, any x86-64 since 2013 Haswell),
#                                          avx512 (Skylake-SP and newer, Zen 4), native (this host
#                                          only; never shipped)
# Wheels are cached under ${VC_WHEEL_CACHE:-~/.cache/voice-connector/wheels}/<version>-<variant>-<hash
# of the flags>: a wheel built with other flags is never reused (pip's own cache keys on the
# source archive only, so it would hand back whatever was built first).
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
VARIANT="${1:-avx2}"
PYTHON="${PYTHON:-python3}"

common="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF"
no_amx="-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
x86_avx2="-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_F16C=ON -DGGML_FMA=ON -DGGML_AVX2=ON -DGGML_BMI2=ON"
case "$VARIANT" in
  avx2)   flags="$common $x86_avx2 -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF $no_amx" ;;
  avx512) flags="$common $x86_avx2 -DGGML_AVX512=ON -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF $no_amx" ;;
  native) flags="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON" ;;
  *) echo "llama-wheel: unknown variant '$VARIANT' (avx2, avx512, native)" >&2; exit 2 ;;
esac

hash="$(printf '%s %s' "$VERSION" "$flags" | sha256sum | cut -c1-12)"
dir="${VC_WHEEL_CACHE:-$HOME/.cache/voice-connector/wheels}/llama-cpp-python-$VERSION-$VARIANT-$hash"
wheel="$(ls "$dir"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$wheel" ]; then
  echo "llama-wheel: compiling llama-cpp-python $VERSION for $VARIANT (about 10 minutes on 2 cores)" >&2
  mkdir -p "$dir.tmp"
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PYTHON" -m pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python \
    -w "$dir.tmp" "llama-cpp-python==$VERSION" >&2
  printf 'variant=%s\nversion=%s\nflags=%s\n' "$VARIANT" "$VERSION" "$flags" > "$dir.tmp/BUILD_INFO"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  wheel="$(ls "$dir"/llama_cpp_python-*.whl | head -n1)"
fi
echo "$wheel"
