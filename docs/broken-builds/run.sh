#!/usr/bin/env bash
# Shows that the torture test fails on the bugs it guards against: each patch here
# breaks the library on purpose; this script applies it to a scratch worktree of
# HEAD, runs the torture test, and checks that it fails with the expected message.
# Nothing here is compiled into the library. Run from anywhere in the repository:
#   bash docs/broken-builds/run.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel)
scratch=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
export CARGO_TARGET_DIR="$root/target/broken-builds"

# patch file -> a fragment of the failure message the torture test must print
declare -A expected=(
    [no-grace-period.patch]="use after free"
    [leak-one-in-64.patch]="conservation: after draining"
)

status=0
for patch in no-grace-period.patch leak-one-in-64.patch; do
    git -C "$root" worktree add --detach --quiet "$scratch/tree" HEAD
    git -C "$scratch/tree" apply "$root/docs/broken-builds/$patch"
    echo "=== $patch: expecting the torture test to fail with '${expected[$patch]}'"
    if (cd "$scratch/tree" && cargo test --release --test torture -- --nocapture) >"$scratch/log" 2>&1; then
        echo "FAIL: the torture test passed on a broken build"
        status=1
    elif grep -m 1 -F "${expected[$patch]}" "$scratch/log"; then
        echo "ok: caught"
    else
        echo "FAIL: it failed, but not with the expected message:"
        tail -n 30 "$scratch/log"
        status=1
    fi
    git -C "$root" worktree remove --force "$scratch/tree"
done
exit $status
