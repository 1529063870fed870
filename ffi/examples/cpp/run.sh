#!/usr/bin/env bash
# Builds the C ABI and the C++ example, and runs it: ffi/examples/cpp/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -p atomic-map-ffi
mkdir -p target/cpp-example
g++ -std=c++17 -O2 -Wall -Wextra -Werror -Iffi/include ffi/examples/cpp/service.cpp \
    target/release/libamap.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -o target/cpp-example/service
target/cpp-example/service
