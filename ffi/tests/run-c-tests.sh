#!/usr/bin/env bash
# Installs the C library into a temporary prefix (make -C ffi install, and a
# static-only install-static) and tests the installed copy, reaching it through
# pkg-config only (PKG_CONFIG_PATH into the prefix; nothing from ffi/ or target/):
#  * the install: SONAME, symlinks, amap.pc, a DESTDIR staging install;
#  * the C example and the C++ example, each linked dynamically (rpath from
#    pkg-config's libdir) and statically (`pkg-config --static --libs` over the
#    static-only install), and run;
#  * the C test programs (test_api, test_threads, test_reload, torture, test_flush,
#    test_reclaimer): static with
#    AddressSanitizer + UndefinedBehaviorSanitizer, dynamic under valgrind memcheck
#    (no error, no definitely-lost block);
#  * the C++ binding's test (g++ -std=c++17 with ASan/UBSan, and dynamic under
#    valgrind) and a -fno-exceptions build.
# AMAP_INSTALL_ROOT: where the prefixes go (default: a temporary directory, removed
# at exit); .ci/run passes its own and runs the Go step against $AMAP_INSTALL_ROOT/prefix.
# AMAP_C_TEST_MS and AMAP_TORTURE_MS set the storms' length for the sanitizer run
# (valgrind runs 1500 ms each); test_reload runs 1,000 reloads in both.
# With arguments (names of programs in ffi/tests/c, e.g. `test_flush`), builds the
# library in the build tree (honouring CARGO_TARGET_DIR), installs nothing, and runs
# only those, statically linked under ASan/UBSan (docs/broken-builds/run.sh does).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -gt 0 ]; then
    cargo build --release -p atomic-map-ffi
    target_dir="${CARGO_TARGET_DIR:-target}"
    mkdir -p "$target_dir/ctest"
    rel=$(cd "$target_dir/release" && pwd)
    for t in "$@"; do
        gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iffi/include \
            -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
            "ffi/tests/c/$t.c" "$rel/libamap.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc \
            -o "$target_dir/ctest/$t.asan"
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            "$target_dir/ctest/$t.asan"
    done
    exit 0
fi
root=${AMAP_INSTALL_ROOT:-}
if [ -z "$root" ]; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
fi
prefix=$root/prefix        # make install: headers, libamap.a, libamap.so*, amap.pc
static=$root/static-prefix # make install-static: headers, libamap.a, amap.pc
out=target/ctest
rm -rf "$prefix" "$static" "$root/stage" "$out"
mkdir -p "$out"

echo "--- build and install (make -C ffi)"
make -C ffi build
make -s -C ffi install PREFIX="$prefix"
make -s -C ffi install-static PREFIX="$static"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' ffi/Cargo.toml | head -n 1)
major=${version%%.*}

echo "--- the install: SONAME libamap.so.$major, symlinks, amap.pc, DESTDIR"
readelf -d "$prefix/lib/libamap.so.$version" | grep -q "(SONAME) *Library soname: \[libamap.so.$major\]"
test "$(readlink "$prefix/lib/libamap.so.$major")" = "libamap.so.$version"
test "$(readlink "$prefix/lib/libamap.so")" = "libamap.so.$major"
test ! -e "$static/lib/libamap.so"
test "$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --modversion amap)" = "$version"
make -s -C ffi install DESTDIR="$root/stage" PREFIX=/usr
staged=$(cd "$root/stage" && find . ! -type d | sort | tr '\n' ' ')
expected="./usr/include/amap.h ./usr/include/amap.hpp ./usr/lib/libamap.a ./usr/lib/libamap.so \
./usr/lib/libamap.so.$major ./usr/lib/libamap.so.$version ./usr/lib/pkgconfig/amap.pc "
test "$staged" = "$expected" || { echo "DESTDIR install: $staged, expected $expected" >&2; exit 1; }
grep -qx 'prefix=/usr' "$root/stage/usr/lib/pkgconfig/amap.pc"
make -s -C ffi uninstall DESTDIR="$root/stage" PREFIX=/usr
test -z "$(find "$root/stage" ! -type d)"

# pkg-config over one prefix only: PKG_CONFIG_LIBDIR replaces the system search path.
dyn() { PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" pkg-config "$@"; }
sta() { PKG_CONFIG_LIBDIR="$static/lib/pkgconfig" pkg-config --static "$@"; }
rpath="-Wl,-rpath,$(dyn --variable=libdir amap)"
cflags="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1"
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

echo "--- the installed header compiles as C99 and as C++, warnings as errors"
# shellcheck disable=SC2046
printf '#include <amap.h>\nint main(void) { return amap_version() == 0; }\n' |
    gcc -std=c99 -Wall -Wextra -Werror -pedantic $(dyn --cflags amap) -x c -fsyntax-only -
# shellcheck disable=SC2046
printf '#include <amap.h>\nint main() { return amap_version() == nullptr; }\n' |
    g++ -std=c++11 -Wall -Wextra -Werror -pedantic $(dyn --cflags amap) -x c++ -fsyntax-only -

echo "--- C and C++ examples through pkg-config: dynamic (rpath) and static"
# shellcheck disable=SC2046
gcc -std=c11 -O2 -Wall -Wextra -Werror ffi/examples/service.c $(dyn --cflags --libs amap) "$rpath" \
    -lpthread -o "$out/service.dyn"
# shellcheck disable=SC2046
gcc -std=c11 -O2 -Wall -Wextra -Werror ffi/examples/service.c $(sta --cflags --libs amap) \
    -lpthread -o "$out/service.static"
# shellcheck disable=SC2046
g++ -std=c++17 -O2 -Wall -Wextra -Werror ffi/examples/cpp/service.cpp $(sta --cflags --libs amap) \
    -o "$out/service_cpp.static"
readelf -d "$out/service.dyn" | grep -q "(NEEDED) *Shared library: \[libamap.so.$major\]"
if readelf -d "$out/service.static" "$out/service_cpp.static" | grep -q libamap; then
    echo "a static build needs libamap at run time" >&2
    exit 1
fi
"$out/service.dyn"
"$out/service.static"
"$out/service_cpp.static"
AMAP_PREFIX="$prefix" bash ffi/examples/cpp/run.sh

for t in test_api test_threads test_reload torture test_flush test_reclaimer; do
    # shellcheck disable=SC2046,SC2086
    gcc $cflags $san "ffi/tests/c/$t.c" $(sta --cflags --libs amap) -o "$out/$t.asan"
    # shellcheck disable=SC2046,SC2086
    gcc $cflags "ffi/tests/c/$t.c" $(dyn --cflags --libs amap) "$rpath" -lpthread -o "$out/$t.dyn"
done

echo "--- sanitizers (static library)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
"$out/test_api.asan"
AMAP_C_TEST_MS="${AMAP_C_TEST_MS:-2000}" "$out/test_threads.asan"
"$out/test_reload.asan"
AMAP_TORTURE_MS="${AMAP_TORTURE_MS:-2000}" "$out/torture.asan"
"$out/test_flush.asan"
"$out/test_reclaimer.asan"

echo "--- valgrind memcheck (shared library)"
vg=(valgrind -q --fair-sched=yes --child-silent-after-fork=yes --error-exitcode=1
    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite)
"${vg[@]}" "$out/test_api.dyn"
AMAP_C_TEST_MS=1500 "${vg[@]}" "$out/test_threads.dyn"
"${vg[@]}" "$out/test_reload.dyn"
AMAP_TORTURE_MS=1500 "${vg[@]}" "$out/torture.dyn"
"${vg[@]}" "$out/test_flush.dyn"
"${vg[@]}" "$out/test_reclaimer.dyn"

echo "--- C++ binding (amap.hpp) under sanitizers"
# shellcheck disable=SC2046,SC2086
g++ -std=c++17 -Wall -Wextra -Werror -g -O1 $san ffi/tests/cpp/test_bindings.cpp \
    $(sta --cflags --libs amap) -o "$out/test_bindings.asan"
"$out/test_bindings.asan"
echo "--- C++ binding under valgrind memcheck (shared library)"
# shellcheck disable=SC2046,SC2086
g++ -std=c++17 -Wall -Wextra -Werror -g -O1 ffi/tests/cpp/test_bindings.cpp \
    $(dyn --cflags --libs amap) "$rpath" -lpthread -o "$out/test_bindings.dyn"
"${vg[@]}" "$out/test_bindings.dyn"
# The header also compiles without exceptions, its callback templates included.
# shellcheck disable=SC2046
echo '#include <amap.hpp>
int main() {
    amap::Map m;
    m.insert("k", std::make_unique<int>(1));
    auto j = std::make_unique<int>(2);
    if (!m.try_insert("j", j).second || !m.get("k")) return 1;
    amap::ReadSection r(m);
    int seen = 0;
    r.for_each([&seen](std::string_view, const void *) { return ++seen > 0; });
    if (!m.visit("k", [](const void *data) { (void)data; }) || m.visit("zz", [](const void *) {})) return 1;
    amap::TypedMap<int> counts;
    counts.upsert("n", [](const int *now) { return now ? *now + 1 : 1; });
    if (*counts.upsert("n", [](const int *now) { return *now + 1; }) != 2) return 1;
    int n = 0;
    if (!counts.visit("n", [&n](const int &now) { n = now; }) || n != 2) return 1;
    return seen == 2 && m.retain([](std::string_view key, const void *) { return key == "k"; }) == 1 ? 0 : 1;
}' |
    g++ -std=c++17 -fno-exceptions -Wall -Wextra -Werror -x c++ - -x none $(sta --cflags --libs amap) \
        -o "$out/no_exceptions"
"$out/no_exceptions"
echo "C and C++ tests: ok"
