#!/usr/bin/env bash
# The stress test (small size) under valgrind memcheck, failing on any error or
# definite leak: a step of .ci/run, and the check docs/broken-builds/run.sh runs on
# a leaking build.
set -euo pipefail
bin=$(cargo test --test stress --no-run 2>&1 | grep -o '[^ (]*/debug/deps/stress-[0-9a-f]*' | head -n 1)
test -x "$bin"
ATOMIC_MAP_STRESS_MS=300 valgrind --error-exitcode=1 --fair-sched=yes --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    "$bin" --test-threads=1
