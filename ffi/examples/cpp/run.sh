#!/usr/bin/env bash
# Builds the C ABI and the C++ example, and runs it: ffi/examples/cpp/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -p atomic-map-ffi
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir/cpp-example"
g++ -std=c++17 -O2 -Wall -Wextra -Werror -Iffi/include ffi/examples/cpp/service.cpp \
    "$target_dir/release/libamap.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -o "$target_dir/cpp-example/service"
"$target_dir/cpp-example/service"
