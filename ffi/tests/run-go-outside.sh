#!/usr/bin/env bash
# Builds and tests a Go module outside the repository (ffi/tests/go-outside, copied
# to a temporary directory) that imports the atomicmap package, against the
# installed C library found by pkg-config: go vet, go test -race, and the program.
# Needs PKG_CONFIG_PATH (or the default search path) to find amap.pc, and the
# loader to find libamap.so.0 (LD_LIBRARY_PATH, or a system library directory).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
if ! pkg-config --exists amap; then
    echo "pkg-config finds no amap: install it (make -C ffi install) and set PKG_CONFIG_PATH" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$repo"/ffi/tests/go-outside/{go.mod,main.go,main_test.go} "$work/"
cd "$work"
# The package's Go source comes from the checkout (GOPROXY=off: no module proxy);
# its C library, headers and link flags come from pkg-config, not from the checkout.
go mod edit -replace atomic-map.local/go="$repo/ffi/go"
go vet ./...
GODEBUG=cgocheck=1 go test -race -count=1 -v ./...
go build -o tenants .
readelf -d tenants | grep -q '(NEEDED) *Shared library: \[libamap.so.0\]'
./tenants
