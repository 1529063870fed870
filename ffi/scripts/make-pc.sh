#!/usr/bin/env bash
# Writes amap.pc for pkg-config.
#   ffi/scripts/make-pc.sh PREFIX [LIBDIR] [INCLUDEDIR] > amap.pc
# For the build tree:  ffi/scripts/make-pc.sh "$PWD" "$PWD/target/release" "$PWD/ffi/include"
set -euo pipefail
prefix=${1:?usage: make-pc.sh PREFIX [LIBDIR] [INCLUDEDIR]}
libdir=${2:-$prefix/lib}
includedir=${3:-$prefix/include}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n 1)
cat <<PC
prefix=$prefix
libdir=$libdir
includedir=$includedir

Name: amap
Description: Concurrent map with an O(1) clear whose values C can hold across clears
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lamap
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl
PC
