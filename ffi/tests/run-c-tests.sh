#!/usr/bin/env bash
# Builds the C ABI and runs the C test programs (test_api, test_threads, test_reload,
# torture):
#  * against the staticlib with AddressSanitizer + UndefinedBehaviorSanitizer;
#  * against the cdylib under valgrind memcheck (no error, no definitely-lost block);
# then the C++ binding's test (g++ -std=c++17 with ASan/UBSan, and against the
# cdylib under valgrind), and builds and runs the C example through pkg-config and
# the C++ example.
# AMAP_C_TEST_MS and AMAP_TORTURE_MS set the storms' length for the sanitizer run
# (valgrind runs 1500 ms each); test_reload runs 1,000 reloads in both.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p atomic-map-ffi
out=target/ctest
mkdir -p "$out"
libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl"
cflags="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iffi/include"

echo "--- the header compiles as C99 and as C++, warnings as errors"
printf '#include "atomic_map.h"\nint main(void) { return amap_version() == 0; }\n' |
    gcc -std=c99 -Wall -Wextra -Werror -pedantic -Iffi/include -x c -fsyntax-only -
printf '#include "atomic_map.h"\nint main() { return amap_version() == nullptr; }\n' |
    g++ -std=c++11 -Wall -Wextra -Werror -pedantic -Iffi/include -x c++ -fsyntax-only -

for t in test_api test_threads test_reload torture; do
    # shellcheck disable=SC2086
    gcc $cflags -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
        "ffi/tests/c/$t.c" target/release/libamap.a $libs -o "$out/$t.asan"
    # shellcheck disable=SC2086
    gcc $cflags "ffi/tests/c/$t.c" -Ltarget/release -lamap -lpthread -o "$out/$t.dyn"
done

echo "--- sanitizers (static library)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$out/test_api.asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    AMAP_C_TEST_MS="${AMAP_C_TEST_MS:-2000}" "$out/test_threads.asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$out/test_reload.asan"

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    AMAP_TORTURE_MS="${AMAP_TORTURE_MS:-2000}" "$out/torture.asan"

echo "--- valgrind memcheck (shared library)"
vg=(valgrind -q --fair-sched=yes --child-silent-after-fork=yes --error-exitcode=1
    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite)
LD_LIBRARY_PATH=target/release "${vg[@]}" "$out/test_api.dyn"
LD_LIBRARY_PATH=target/release AMAP_C_TEST_MS=1500 "${vg[@]}" "$out/test_threads.dyn"
LD_LIBRARY_PATH=target/release "${vg[@]}" "$out/test_reload.dyn"
LD_LIBRARY_PATH=target/release AMAP_TORTURE_MS=1500 "${vg[@]}" "$out/torture.dyn"

echo "--- example service, built through pkg-config"
ffi/scripts/make-pc.sh "$PWD" "$PWD/target/release" "$PWD/ffi/include" > target/release/atomic_map.pc
# shellcheck disable=SC2046
gcc -std=c11 -O2 -Wall -Wextra -Werror ffi/examples/service.c $(PKG_CONFIG_PATH=target/release pkg-config --cflags --libs atomic_map) \
    -lpthread -o "$out/service"
LD_LIBRARY_PATH=target/release "$out/service"
echo "--- C++ binding (atomic_map.hpp) under sanitizers"
# shellcheck disable=SC2086
g++ -std=c++17 -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer -Iffi/include ffi/tests/cpp/test_bindings.cpp target/release/libamap.a $libs \
    -o "$out/test_bindings.asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$out/test_bindings.asan"
echo "--- C++ binding under valgrind memcheck (shared library)"
g++ -std=c++17 -Wall -Wextra -Werror -g -O1 -Iffi/include ffi/tests/cpp/test_bindings.cpp -Ltarget/release -lamap \
    -lpthread -o "$out/test_bindings.dyn"
LD_LIBRARY_PATH=target/release "${vg[@]}" "$out/test_bindings.dyn"
# The header also compiles without exceptions.
echo '#include "atomic_map.hpp"
int main() {
    amap::Map m;
    m.insert("k", std::make_unique<int>(1));
    amap::Batch b(m);
    b.insert("j", std::make_unique<int>(2));
    m.replace(std::move(b)).wait();
    amap::TypedMap<int> t;
    t.emplace("k", 3);
    int sum = 0;
    {
        amap::ReadSection r(m);
        for (auto e : r) sum += *e.as<int>();
        amap::TypedReadSection<int> tr(t);
        tr.for_each([&](std::string_view, const int &v) { sum += v; return true; });
    }
    return m.get("j") && sum == 5 ? 0 : 1;
}' |
    g++ -std=c++17 -fno-exceptions -Wall -Wextra -Werror -Iffi/include -x c++ - -x none target/release/libamap.a $libs \
        -o "$out/no_exceptions"
"$out/no_exceptions"
bash ffi/examples/cpp/run.sh
echo "C and C++ tests: ok"
