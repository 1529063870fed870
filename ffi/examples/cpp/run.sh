#!/usr/bin/env bash
# Builds the C++ example against an installed libamap, through pkg-config only,
# linked dynamically (rpath from pkg-config's libdir), and runs it.
#   ffi/examples/cpp/run.sh                          # installs into target/cpp-example/prefix first
#   AMAP_PREFIX=/usr/local ffi/examples/cpp/run.sh   # uses an existing install
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=target/cpp-example
mkdir -p "$out"
if [ -z "${AMAP_PREFIX:-}" ]; then
    AMAP_PREFIX=$PWD/$out/prefix
    make -s -C ffi install PREFIX="$AMAP_PREFIX"
fi
export PKG_CONFIG_LIBDIR="$AMAP_PREFIX/lib/pkgconfig"
# shellcheck disable=SC2046
g++ -std=c++17 -O2 -Wall -Wextra -Werror ffi/examples/cpp/service.cpp $(pkg-config --cflags --libs amap) \
    -Wl,-rpath,"$(pkg-config --variable=libdir amap)" -o "$out/service"
"$out/service"
