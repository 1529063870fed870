#!/usr/bin/env bash
# Shows that the suites fail on the bugs they guard against: each patch here breaks
# the library on purpose; this script applies it to a scratch worktree of HEAD, runs
# the test that guards against it, and checks that it fails with the expected message.
# Nothing here is compiled into the library. Run from anywhere in the repository:
#   bash docs/broken-builds/run.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel)
scratch=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
export CARGO_TARGET_DIR="$root/target/broken-builds"

# patch file -> a fragment of the failure message the test must print
declare -A expected=(
    [no-grace-period.patch]="use after free"
    [leak-one-in-64.patch]="conservation: after draining"
    [home-freed-before-its-values.patch]="panicked at"
    [over-release-takes-the-tables-reference.patch]="over-release-mapped: the child did not abort"
    [flush-ignores-the-grace-period.patch]="panicked at tests/after_the_map.rs"
    [poll-checks-before-the-waker-lock.patch]="its waker was never woken"
)
# patch file -> the test that must catch it
torture="cargo test --release --test torture -- --nocapture"
declare -A command=(
    [no-grace-period.patch]="$torture"
    [leak-one-in-64.patch]="$torture"
    [home-freed-before-its-values.patch]="env LOOM_MAX_PREEMPTIONS=3 cargo test --release --features loom --test loom_s9_two_maps_one_reclaimer"
    [over-release-takes-the-tables-reference.patch]="cargo test -p atomic-map --lib"
    [flush-ignores-the-grace-period.patch]="cargo test --test after_the_map"
    [poll-checks-before-the-waker-lock.patch]="env LOOM_MAX_PREEMPTIONS=3 cargo test --release --features loom --test loom_s10_retired_future_wake"
)

status=0
patches=(no-grace-period.patch leak-one-in-64.patch home-freed-before-its-values.patch
    over-release-takes-the-tables-reference.patch flush-ignores-the-grace-period.patch
    poll-checks-before-the-waker-lock.patch)
caught=0
for patch in "${patches[@]}"; do
    git -C "$root" worktree add --detach --quiet "$scratch/tree" HEAD
    git -C "$scratch/tree" apply "$root/docs/broken-builds/$patch"
    echo "=== $patch: expecting '${command[$patch]}' to fail with '${expected[$patch]}'"
    if (cd "$scratch/tree" && ${command[$patch]}) >"$scratch/log" 2>&1; then
        echo "FAIL: the test passed on a broken build"
        status=1
    elif grep -m 1 -F "${expected[$patch]}" "$scratch/log"; then
        echo "ok: caught"
        caught=$((caught + 1))
    else
        echo "FAIL: it failed, but not with the expected message:"
        tail -n 30 "$scratch/log"
        status=1
    fi
    git -C "$root" worktree remove --force "$scratch/tree"
done
echo "caught $caught of ${#patches[@]}"
exit $status
