#!/usr/bin/env bash
# Builds the C ABI and runs the C test programs (test_api, test_threads, torture,
# test_flush):
#  * against the staticlib with AddressSanitizer + UndefinedBehaviorSanitizer;
#  * against the cdylib under valgrind memcheck (no error, no definitely-lost block);
# then the C++ binding's test (g++ -std=c++17 with ASan/UBSan), and builds and runs
# the C example through pkg-config and the C++ example.
# AMAP_C_TEST_MS and AMAP_TORTURE_MS set the storms' length for the sanitizer run
# (valgrind runs 1500 ms each).
# With arguments (names of programs in ffi/tests/c, e.g. `test_flush`), builds the
# library and runs only those, under ASan/UBSan (docs/broken-builds/run.sh does).
# Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p atomic-map-ffi
target_dir="${CARGO_TARGET_DIR:-target}"
out="$target_dir/ctest"
mkdir -p "$out"
libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl"
cflags="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iffi/include"
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
rel=$(cd "$target_dir/release" && pwd)

if [ $# -gt 0 ]; then
    for t in "$@"; do
        # shellcheck disable=SC2086
        gcc $cflags $sanitize "ffi/tests/c/$t.c" "$rel/libamap.a" $libs -o "$out/$t.asan"
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            "$out/$t.asan"
    done
    exit 0
fi

echo "--- the header compiles as C99 and as C++, warnings as errors"
printf '#include "atomic_map.h"\nint main(void) { return amap_version() == 0; }\n' |
    gcc -std=c99 -Wall -Wextra -Werror -pedantic -Iffi/include -x c -fsyntax-only -
printf '#include "atomic_map.h"\nint main() { return amap_version() == nullptr; }\n' |
    g++ -std=c++11 -Wall -Wextra -Werror -pedantic -Iffi/include -x c++ -fsyntax-only -

for t in test_api test_threads torture test_flush; do
    # shellcheck disable=SC2086
    gcc $cflags $sanitize "ffi/tests/c/$t.c" "$rel/libamap.a" $libs -o "$out/$t.asan"
    # shellcheck disable=SC2086
    gcc $cflags "ffi/tests/c/$t.c" -L"$rel" -lamap -lpthread -o "$out/$t.dyn"
done

echo "--- sanitizers (static library)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$out/test_api.asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    AMAP_C_TEST_MS="${AMAP_C_TEST_MS:-2000}" "$out/test_threads.asan"

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    AMAP_TORTURE_MS="${AMAP_TORTURE_MS:-2000}" "$out/torture.asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$out/test_flush.asan"

echo "--- valgrind memcheck (shared library)"
vg=(valgrind -q --fair-sched=yes --child-silent-after-fork=yes --error-exitcode=1
    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite)
LD_LIBRARY_PATH="$rel" "${vg[@]}" "$out/test_api.dyn"
LD_LIBRARY_PATH="$rel" AMAP_C_TEST_MS=1500 "${vg[@]}" "$out/test_threads.dyn"
LD_LIBRARY_PATH="$rel" AMAP_TORTURE_MS=1500 "${vg[@]}" "$out/torture.dyn"
LD_LIBRARY_PATH="$rel" "${vg[@]}" "$out/test_flush.dyn"

echo "--- example service, built through pkg-config"
ffi/scripts/make-pc.sh "$PWD" "$rel" "$PWD/ffi/include" > "$rel/atomic_map.pc"
# shellcheck disable=SC2046
gcc -std=c11 -O2 -Wall -Wextra -Werror ffi/examples/service.c $(PKG_CONFIG_PATH="$rel" pkg-config --cflags --libs atomic_map) \
    -lpthread -o "$out/service"
LD_LIBRARY_PATH="$rel" "$out/service"
echo "--- C++ binding (atomic_map.hpp) under sanitizers"
# shellcheck disable=SC2086
g++ -std=c++17 -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer -Iffi/include ffi/tests/cpp/test_bindings.cpp "$rel/libamap.a" $libs \
    -o "$out/test_bindings.asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$out/test_bindings.asan"
# The header also compiles without exceptions.
echo '#include "atomic_map.hpp"
int main() { amap::Map m; m.insert("k", std::make_unique<int>(1)); return m.get("k") ? 0 : 1; }' |
    g++ -std=c++17 -fno-exceptions -Wall -Wextra -Werror -Iffi/include -x c++ - -x none "$rel/libamap.a" $libs \
        -o "$out/no_exceptions"
"$out/no_exceptions"
bash ffi/examples/cpp/run.sh
echo "C and C++ tests: ok"
