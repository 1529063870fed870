#!/usr/bin/env bash
# Every `unsafe` block and `unsafe impl` in the tracked Rust sources has a
# `// SAFETY:` comment on its line or within the three lines above it
# (docs/TESTING.md). Prints each one that has none and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# vendor/crossbeam-epoch/ is crossbeam-epoch's code, forked (its README.md): only
# the fork's own file is held to this rule; upstream's unsafe blocks keep
# upstream's comments.
{ git ls-files '*.rs' ':!:vendor/crossbeam-epoch/'; echo vendor/crossbeam-epoch/src/asymmetric.rs; } | xargs awk '
    FNR == 1 { h1 = h2 = h3 = "" }
    {
        code = $0
        sub(/^[ \t]+/, "", code)
        if (code !~ /^\/\// && $0 ~ /(^|[^A-Za-z_])unsafe[ \t]*(\{|impl[ \t<])/ &&
            (h1 h2 h3 $0) !~ /SAFETY:/) {
            printf "%s:%d: %s\n", FILENAME, FNR, code
            bad = 1
        }
        h3 = h2; h2 = h1; h1 = $0
    }
    END { exit bad }
' || { echo "unsafe code (block or impl) without a // SAFETY: comment within the three lines above (see above)"; exit 1; }
