#!/usr/bin/env bash
# Shows that the suites fail on the bugs they guard against: each patch here breaks
# the library on purpose; this script applies it to a scratch worktree of HEAD, runs
# the test that guards against it, and checks that it fails with the expected message.
# Nothing here is compiled into the library. Run from anywhere in the repository:
#   bash docs/broken-builds/run.sh                  # every patch (a rebuild each)
#   bash docs/broken-builds/run.sh --models         # the patches a loom model or a steady test catches
#   bash docs/broken-builds/run.sh some.patch ...   # only these
# `--models` is what .ci/run runs: loom explores a model's executions exhaustively
# (up to its bound), and a *steady* entry's test drives its steps in a set order
# (`steady` below), so those verdicts do not vary from run to run, unlike those of
# the torture, memory and valgrind entries; and a model that stops racing what it
# names, or a patch that no longer builds, is then found when it lands (the full
# run of 2026-12-05 found five such, docs/RELIABILITY.md).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
scratch=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
export CARGO_TARGET_DIR="$root/target/broken-builds"

# Each entry: patch file -> the command that must fail on it -> a fragment of the
# failure message it must print. The table in docs/DESIGN.md ("Atomic orderings and
# what they pair with") says what each patch weakens and why the test catches it.
loom="env LOOM_MAX_PREEMPTIONS=3 cargo test --release --features loom --test"
# A loom model's command; --nocapture, or an abort would take the captured message
# with it.
model() { echo "$loom loom_$1 -- --nocapture"; }
# A unit test of the library, and a test binary of tests/, with what follows its name.
unit() { echo "cargo test -p atomic-map --lib $*"; }
suite() { echo "cargo test --test $*"; }
torture="cargo test --release --test torture -- --nocapture"
causality="Causality violation"
declare -A command expected
entry() { command[$1]=$2; expected[$1]=$3; patches+=("$1"); }
patches=()
# An entry whose test is deterministic (no race left to chance, no timing), run
# by `--models` with the loom entries.
declare -A steady
steady() { entry "$@"; steady[$1]=1; }

# Bugs other than orderings (DESIGN.md, "The suite can fail: bugs tried").
# The torture test catches no-grace-period.patch in most runs, not all (it missed it
# once on 2026-11-30); loom scenario 3 catches it in every run.
entry no-grace-period.patch "$(model s3_remove_vs_pinned_read)" "$causality"
# A releasing thread's help must leave values with destructors to the reclaimer
# (unless their map runs them on releasing threads: next entries).
entry help-destroys-values-with-destructors.patch \
    "$(model s25_release_helps_its_reclaimer)" "a value's destructor ran on the thread that released it"
# For a map built with destructors_on_releasing_threads a releasing thread's help
# runs destructors too (src/reclaim/domain/help.rs): never under the user's shard
# lock, always under the pass's mark; and a build whose helps never run them loses
# that.
entry help-runs-destructors-under-a-shard-lock.patch \
    "$(unit no_destructor_runs_in_user_code_under_a_shard_lock)" \
    "a destructor ran in a closure under a shard lock"
# (The unit test releasing_threads_run_destructors_when_the_map_says fails on it
# too: "no destructor ran in a help in 100 rounds".)
entry helps-leave-destructors-to-the-reclaimer.patch \
    "$(model s26_releasing_thread_runs_destructors)" \
    "no execution ran a destructor in the releasing thread's help"
# A help destroys only what its own thread released (one thread's batches wait out
# a pin the test holds, then ripen in another thread's helps).
entry help-takes-other-threads-batches.patch \
    "$(unit a_help_runs_only_its_own_threads_destructors)" \
    "a help ran another thread's destructors"
# Found in review (2026-12-06): a help in the user's code under a shard lock
# destroyed the ripe batches of this thread's earlier helps, destructors and all;
# a closure the map never called was dropped under the lock outside the mark; a
# destructor in a help that shut its reclaimer down joined the thread its release
# kept alive; and a help inside another domain's pass ran destructors there.
entry help-destroys-earlier-batches-in-a-closure.patch \
    "$(unit earlier_helps_batches_wait_out_a_help_in_a_closure)" \
    "a destructor ran in a compute closure"
entry unused-closure-dropped-outside-the-mark.patch \
    "$(unit a_closure_dropped_unused_runs_no_destructor_under_the_lock)" \
    "a destructor ran under outer's shard lock"
entry shutdown-joins-from-a-help.patch \
    "$(unit shutdown_from_a_destructor_in_a_help_returns)" \
    "the releasing thread was stuck for 20 s"
entry help-inside-another-domains-pass.patch \
    "$(unit no_destructor_of_another_domain_runs_inside_a_pass)" \
    "another domain's destructor ran inside a pass"
entry help-without-the-pass-mark.patch \
    "$(unit releasing_threads_run_destructors_when_the_map_says)" \
    "it waited for a pass the help keeps out"
entry leak-one-in-64.patch "$torture" "conservation: after draining"
entry home-freed-before-its-values.patch "$(model s9_two_maps_one_reclaimer)" \
    "a map's home used after its free"
# The child process prints "no abort" when the double release went through; then it
# exits, or aborts in the teardown if the reclaimer thread gets there first.
entry over-release-takes-the-tables-reference.patch "$(unit)" "no abort"
# A doomed cell's count word is its list's link, tagged DOOMED: untagged (taken for
# a count), an extra release changes the link instead of aborting.
entry doomed-link-untagged.patch \
    "$(unit reference_count_overflow_and_underflow_abort)" \
    "over-release-doomed: the child did not abort"
# Two threads write one claimed counter stripe with a load and a store: counts are
# lost, and the map reports fewer pending values than it doomed.
entry stripe-written-without-its-claim.patch "$(suite counters)" \
    "panicked at tests/counters.rs"
entry plain-run-crosses-maps.patch "$(suite counters counts_exact_per_map_in_mixed_batches)" \
    "panicked at tests/counters.rs"
entry flush-ignores-the-grace-period.patch "$(suite after_the_map)" \
    "panicked at tests/after_the_map.rs"
entry poll-checks-before-the-waker-lock.patch "$(model s10_retired_future_wake)" \
    "its waker was never woken"
# Retired::on_reclaimed checks the flag under the registry's lock, as a poll does
# (2026-12-07).
entry on-reclaimed-checks-before-the-lock.patch "$(model s28_on_reclaimed_vs_teardown)" \
    "the function ran 0 times"

# Value counts (src/value/): the steps, the orderings, the fences.
entry value-created-unmapped.patch "$(model s2_get_vs_last_release)" \
    "a table released a value it did not map"
entry get-without-increment.patch "$(model s2_get_vs_last_release)" "$causality"
entry clone-without-increment.patch "$(model s11_last_release_vs_other_holder)" "$causality"
entry c-retain-without-increment.patch "$(model s7_c_retain_release)" \
    "value released more times than retained"
entry release-decrement-relaxed.patch "$(model s2_get_vs_last_release)" "$causality"
entry release-without-acquire-fence.patch "$(model s11_last_release_vs_other_holder)" "$causality"
entry handle-drop-not-counted.patch "$(model s2_get_vs_last_release)" \
    "panicked at loom-tests/s2_get_vs_last_release.rs"
entry teardown-release-without-acquire-fence.patch "$(model s2_get_vs_last_release)" "$causality"
entry teardown-last-reference-load-relaxed.patch "$(model s2_get_vs_last_release)" "$causality"
entry teardown-keeps-the-tables-reference.patch "$(model s2_get_vs_last_release)" \
    "panicked at loom-tests/s2_get_vs_last_release.rs"
entry remove-keeps-the-mapped-bit.patch "$(model s3_remove_vs_pinned_read)" \
    "value released more times than retained"
entry eviction-keeps-the-tables-reference.patch "$(suite everyday_api retain_evicts)" \
    "every value destroyed once"

# The reclamation lists (src/reclaim/stack.rs, doomed.rs).
entry stack-push-relaxed.patch "$(model s1_pin_vs_clear)" "$causality"
entry stack-take-relaxed.patch "$(model s3_remove_vs_pinned_read)" "$causality"
entry doomed-push-relaxed.patch "$(model s11_last_release_vs_other_holder)" "SIGSEGV"
entry doomed-take-relaxed.patch "$(model s11_last_release_vs_other_holder)" "SIGSEGV"

# The spare generation (src/standby.rs).
entry spare-published-relaxed.patch "$(model s12_spare_built_by_a_pass)" "$causality"
entry spare-taken-relaxed.patch "$(model s12_spare_built_by_a_pass)" "$causality"
# A map registers its standby at its first hand-off; unregistered, no pass releases
# what it hands off, and its cleared generations are never torn down.
entry map-never-registered.patch \
    "$(suite edge_cases wait_timeout_zero_never_blocks)" \
    "assertion failed: retired.wait_timeout(LIMIT)"

# The domain (src/reclaim/domain.rs): users (under a lock), passes and grace periods
# for flush.
entry user-not-counted.patch "$(model s1_pin_vs_clear)" "Arc leaked"
entry user-removal-not-counted.patch "$(model s1_pin_vs_clear)" "Arc leaked"
entry user-removal-decided-outside-the-lock.patch "$(model s18_last_user_leaves)" \
    "the last user of the reclaimer left its work undone"
entry worker-checks-before-the-users-lock.patch "$(model s18_last_user_leaves)" \
    "the reclaimer's thread exited with its last user's work left"
entry idle-skips-its-look-under-the-lock.patch "$(model s13_flush_vs_grace_period)" \
    "flush said everything released was destroyed"
entry grace-end-relaxed.patch "$(model s13_flush_vs_grace_period)" \
    "flush said everything released was destroyed"
entry grace-count-read-relaxed.patch "$(model s13_flush_vs_grace_period)" \
    "flush said everything released was destroyed"

# A map's account (src/reclaim/home.rs).
entry home-owner-not-counted.patch "$(model s14_ticket_seen_reclaimed_elsewhere)" \
    "a map's home used after its free"
entry owner-release-not-counted.patch "$(model s1_pin_vs_clear)" \
    "attempted to access lazy_static during shutdown"
entry home-owner-release-dropped.patch \
    "$(model s20_shutdown_while_a_snapshot_is_held)" "$causality"
entry home-owner-acquire-dropped.patch \
    "$(model s20_shutdown_while_a_snapshot_is_held)" "$causality"
# The stripes, installed by a map's first cell, are freed with its home: the stress
# test under valgrind (as in .ci/run) reports them definitely lost otherwise.
entry home-stripes-leaked.patch "bash .ci/stress-under-valgrind.sh" \
    "definitely lost"

# Cell pages (src/reclaim/pages.rs): the count of a page's cells out, whose last
# decrement frees the page, and the shelf that hands cells given back out again.
entry page-cell-not-counted.patch "cargo test --release --test memory" "after 5 s: RSS"
# A large teardown's emptied pages wait for its end (src/reclaim/page_runs.rs); a
# teardown that never unmaps them keeps them, unless a trim's flush comes along.
entry teardown-leaves-its-pages-pending.patch \
    "cargo test --release --test memory memory_returns_after_clear_without_the_trim" \
    "after 5 s: RSS"
# A rehash leaves the shard's prefetch hint at the array it replaced (src/table/locks.rs):
# the next writer fetches a line of a retired array instead of its probe's first slot.
entry rehash-leaves-the-old-slots-hint.patch \
    "$(unit a_write_leaves_the_hint_at_the_first_slot_of_its_probe)" \
    "panicked at src/table/mod.rs"
entry page-given-back-cells-not-reused.patch \
    "$(unit cells_given_back_are_handed_out_again)" \
    "panicked at src/reclaim/pages.rs"
# Miri builds in a target directory of this run's own: its runner remembers the
# directory it was built in, which is a new scratch worktree each run.
entry page-freed-with-cells-out.patch \
    "env MIRIFLAGS=-Zmiri-tree-borrows CARGO_TARGET_DIR=$scratch/miri cargo +nightly miri test --lib pages" \
    "Undefined Behavior"

# Retired tickets (src/reclaim/retired.rs).
entry torn-down-flag-relaxed.patch "$(model s14_ticket_seen_reclaimed_elsewhere)" \
    "the ticket is reclaimed but the counters do not show it"
entry torn-down-flag-read-relaxed.patch "$(model s14_ticket_seen_reclaimed_elsewhere)" \
    "the ticket is reclaimed but the counters do not show it"

# Pinned reads: the Rust guard (src/read.rs) and the C read section (ffi/src/read.rs).
entry read-guard-unpinned.patch "$(model s3_remove_vs_pinned_read)" "$causality"

# The table (src/table/) and its lock-free readers: publication of entries and
# arrays, the grace period of a retired array, and the retained get's reference
# taken only while the table maps the value (src/value/, src/reclaim/doomed.rs).
# An insert that does not rehash publishes its entry by the slot's word alone: the
# iteration (s17) and the retained get (s16) read such an entry's value.
entry table-entry-published-relaxed.patch "$(model s17_iteration_vs_writers_and_clear)" \
    "$causality"
entry table-slot-read-relaxed.patch "$(model s16_retained_get_vs_replacing_insert)" \
    "$causality"
entry table-replace-published-relaxed.patch \
    "$(model s16_retained_get_vs_replacing_insert)" "$causality"
entry table-array-published-relaxed.patch "$(model s15_pinned_read_vs_rehash)" "$causality"
entry table-array-read-relaxed.patch "$(model s15_pinned_read_vs_rehash)" "$causality"
entry table-iteration-slot-read-relaxed.patch "$(model s17_iteration_vs_writers_and_clear)" \
    "$causality"
entry table-no-grace-for-retired-array.patch "$(model s15_pinned_read_vs_rehash)" "$causality"
# `shrink_to_fit` retires an emptied shard's array past a grace period too: a
# reader pinned before may still be probing it.
entry shrink-frees-an-emptied-array-at-once.patch "$(model s27_pinned_read_vs_shrink)" \
    "$causality"
# A removal that frees its slot even inside a run (where a later key's probe runs
# through it) cuts that key off from its home: lookups miss it.
entry removal-frees-a-slot-inside-a-run.patch \
    "$(suite operations random_writes_on_colliding_keys_match_a_std_hash_map)" \
    "after step"
# A word's largest displacement means "this many or more"; read as exact, a removal
# frees a slot that an entry displaced further is found through.
entry saturated-displacement-read-as-exact.patch \
    "$(unit a_removal_inside_a_run_frees_the_slot_only_if_no_probe_runs_through)" \
    "panicked at src/table/array.rs"
# A removal's look along the run stops at a tombstone: an entry past it, displaced
# past the removed slot, is cut off.
entry tombstone-taken-for-the-end-of-a-run.patch \
    "$(unit a_removal_inside_a_run_frees_the_slot_only_if_no_probe_runs_through)" \
    "panicked at src/table/array.rs"
# Without the pairing, a retained get that finds the old value unmapped may read
# the stale slot forever: loom reports a reader that cannot make progress.
spin="Model exceeded maximum number of branches"
entry unmapping-relaxed.patch "$(model s16_retained_get_vs_replacing_insert)" "$spin"
entry retain-if-mapped-without-fence.patch "$(model s16_retained_get_vs_replacing_insert)" "$spin"
# The list's link: scenario 16's second model, where the releasing thread holds no
# claim (since 2026-12-01 the claimant's release goes to its ring instead).
entry doomed-link-relaxed.patch "$(model s16_retained_get_vs_replacing_insert)" "$spin"
# A claimant's doom tags the dead count word before its ring's push (the list's
# link does it for the others): scenario 16, where the claimant dooms the value.
entry doom-tag-relaxed.patch "$(model s16_retained_get_vs_replacing_insert)" "$spin"

# The shard lock (src/sync/shard_lock.rs): its own loom model, in the library.
lock_model="env LOOM_MAX_PREEMPTIONS=3 cargo test --release --features loom --lib shard_lock -- --nocapture"
entry shard-lock-release-relaxed.patch "$lock_model" "$causality"
entry shard-lock-take-relaxed.patch "$lock_model" "$causality"
# The fork of crossbeam-epoch (vendor/crossbeam-epoch/): a heavy fence without its process-wide
# barrier no longer orders a light pin's store; the store-buffering test sees both
# threads miss each other's store.
entry epoch-heavy-fence-without-membarrier.patch \
    "cargo test --release -p atomic-map-epoch --lib asymmetric -- --nocapture" \
    "a light and a heavy fence let both threads miss"
# An idle light thread taken off the count: its next pin must take the full fence
# (without it, the pin stays light while no seal or advance pays the barrier for it),
# and the count's decrement must follow the barrier (before it, the advance that
# demotes pays none, while the thread may still be pinning light).
idle_light="cargo test -p atomic-map-epoch --lib an_idle_light_participant_is_taken_off_the_count"
steady epoch-demotion-unacknowledged.patch "$idle_light" \
    "the first pin after the demotion left the participant light"
steady epoch-demotion-decrements-before-the-barrier.patch "$idle_light" \
    "the advance that took the idle participant off paid no barrier"
# A wait on a thread pinned since before the clear (src/reclaim/retired.rs,
# `waits_for_own_pin`) could never end: refused, with the fork's comparison of
# the pin's epoch and the ticket's stamp (`pinned_no_later_than`) the right way
# round (2026-12-06).
steady wait-ignores-its-own-pin.patch \
    "$(suite edge_cases waiting_while_pinned_since_before_the_clear_is_refused)" \
    "a wait while pinned not refused"
steady epoch-stamp-compared-backwards.patch \
    "cargo test -p atomic-map-epoch --lib a_pin_is_no_later_than_a_stamp_it_predates" \
    "pinned after \`before\`"
# `retain` takes each shard's lock and loads the generation under it, pinning no
# epoch (src/map.rs): a walk under one pin from its start holds every map's
# reclamation up, and goes on in the generation a concurrent clear retired
# (2026-12-07). edge_cases waiting_while_pinned_since_before_the_clear_is_refused
# fails on it too ("a wait in retain's closure").
steady retain-pins-its-whole-walk.patch \
    "$(suite everyday_api retain_after_a_concurrent_clear_walks_the_new_generation)" \
    "of the generation retired during the walk"
# A wait for a map's ticket in a closure that the map runs under one of its shard
# locks is refused (src/reclaim/retired.rs, `waits_for_own_lock`): the release of
# the map's retired generations takes each of its shard locks first, so the wait
# would never end (2026-12-07).
steady wait-under-own-lock-not-refused.patch \
    "$(suite edge_cases waiting_in_a_closure_under_the_maps_own_lock_is_refused)" \
    "a wait under the map's own shard lock not refused"
# Retired::on_reclaimed runs its function after the teardown (src/reclaim/retired.rs,
# `Retirement::on_torn_down`), registered until then; a build that runs it at
# once tells a caller the generation is gone while a snapshot still holds it
# (2026-12-07).
steady on-reclaimed-runs-before-the-teardown.patch \
    "$(suite async_wait on_reclaimed_runs_once_after_the_teardown)" \
    "ran while a snapshot held the generation"
# amap_options_t.hasher picks the C map's hash function (ffi/src/map.rs, `build`);
# a build that checks the value and then ignores it gives every map foldhash
# (2026-12-07).
steady c-hasher-option-ignored.patch \
    "cargo test -p atomic-map-ffi --lib the_hasher_option_picks_the_maps_hasher" \
    "CHashBuilder::SipHash"
# The C ABI's inline compare of keys of 4 to 16 bytes (ffi/src/key.rs) loads each
# side's first and last word; without the last, keys that differ only past the
# first word compare equal (2026-12-06).
steady key-compare-skips-the-tail.patch \
    "cargo test -p atomic-map-ffi --lib short_keys_compare_as_bytes_do" \
    "9 bytes, byte 8"

# The doomed ring (src/reclaim/doom_ring.rs): its own loom model, in the library.
ring_model="env LOOM_MAX_PREEMPTIONS=3 cargo test --release --features loom --lib doom_ring -- --nocapture"
entry doom-ring-tail-published-relaxed.patch "$ring_model" "$causality"
entry doom-ring-tail-read-relaxed.patch "$ring_model" "$causality"
entry doom-ring-head-read-relaxed.patch "$ring_model" "$causality"
entry doom-ring-head-returned-relaxed.patch "$ring_model" "$causality"
# A full ring that overwrites its oldest cell loses values: the spill test counts
# the destructors.
entry doom-ring-overwrites-when-full.patch \
    "cargo test --release -p atomic-map --lib a_full_ring_spills" \
    "panicked at src/reclaim/doom_ring.rs"
entry locked-retain-without-increment.patch "$(suite operations -- --nocapture)" \
    "value released more times than retained"
# (Scenario 16 crashes or hangs on it, depending on the interleaving loom tries
# first: the revived count word is the doomed list's link. The unit test is exact.)
entry retained-get-revives.patch "$(unit retain_if_mapped_never_revives)" \
    "an unmapped value was retained"

# Generations reached without a count (src/map.rs, src/generation.rs, src/standby.rs):
# the map's pointer, its publication, the grace period of the slot's reference, and
# the parked list the reclaimer releases them from.
entry pinned-read-relaxed.patch "$(model s19_replace_vs_pinned_reader)" "$causality"
entry pinned-published-relaxed.patch "$(model s19_replace_vs_pinned_reader)" "$causality"
# Two publishes at once: both read `pinned` before either moved it, and both take
# the ticket of the generation it names (a plain take, under the lock it relies
# on): loom sees the two writes. (Before the spare was numbered ahead, 2026-12-05,
# the second retired a generation the slot no longer held, and the assertion at
# the end of `publish` said so first.)
entry publish-without-the-lock.patch "$(model s4_concurrent_clears)" "$causality"
# The reader probes a generation freed under it: loom reports whatever the freed
# memory held (an index out of bounds, here); the model fails in every run.
entry generation-released-without-grace.patch "$(model s1_pin_vs_clear)" "panicked at"
# Writers pin no epoch: without the quiesce of the shard locks, the teardown frees
# the table under a writer, whose read of the freed shard makes loom panic.
entry teardown-without-quiescing-the-writers.patch \
    "$(model s23_unpinned_write_vs_teardown)" "panicked at"
entry quiesce-before-the-take.patch "$(model s23_unpinned_write_vs_teardown)" "$causality"
entry writer-pinned-read-relaxed.patch "$(model s5_insert_vs_clear)" "$causality"
entry map-drop-without-grace.patch \
    "$(suite edge_cases read_guard_outlives_map_drop -- --nocapture)" \
    "panicked at tests/edge_cases.rs"
entry generation-grace-not-counted.patch \
    "$(suite after_the_map flush_reports_a_cleared_generation_held_up_by_a_pin)" \
    "flush said done while the cleared generation waits for its grace period"
# The hand-off comes before the move of `pinned`; a pass releases a parked generation
# only once `mark_published` says the move is made: without that Release, or without
# the check, the pass quiesces the locks before a writer finds the old generation.
entry published-id-relaxed.patch "$(model s23_unpinned_write_vs_teardown)" "$causality"
entry hand-off-released-before-the-move.patch "$(model s23_unpinned_write_vs_teardown)" "$causality"
entry hand-off-push-relaxed.patch "$(model s12_spare_built_by_a_pass)" "$causality"
entry hand-off-take-relaxed.patch "$(model s12_spare_built_by_a_pass)" "$causality"
# The background thread's walks of the maps, paced by the cost of idle visits only:
# paced by the whole walk, releases included, they fell far behind a clear storm
# (the debug torture test failed three runs of three, but a release run passed:
# the unit test is exact).
entry walk-paced-by-its-releases.patch \
    "$(unit a_walk_that_released_leaves_the_pace_to_idle_visits)" \
    "assertion \`left == right\` failed"
# A stripe's claim handed over between running threads (loom scenario 21): the
# shim's stand-in for the claim word (src/sync/model.rs, as src/reclaim/stripe.rs)
# weakened to Relaxed: the second claimant reads the ring its predecessor wrote
# with no order between them. Loom reports the race itself ("Concurrent load and
# mut accesses"); until 2026-12-05 the model's assertion found the doomed cell the
# second claimant lost, and the full run of that day found the message changed.
entry claim-hand-over-relaxed.patch "$(model s21_claim_handed_over)" "$causality"

# Teardowns in slices (src/generation.rs, src/table/mod.rs): a table that forgets
# how far it was drained hands entries over twice; a background teardown run whole
# holds up a small map's behind it.
# (--nocapture: the panic's message is printed before the unwinding drops the
# second owner of the entry, which may then crash the process.)
entry teardown-slice-forgets-its-place.patch \
    "$(unit a_table_drained_in_slices_hands_over_every_entry_once -- --nocapture)" \
    "an entry handed over twice"
entry teardown-runs-whole.patch "$(suite teardown_slices)" \
    "the small map's teardown waited for the whole large one"
# A ticket marked done at the first slice of its teardown (loom scenario 22, where
# a slice is one smallest array): the value destroyed by the second slice reads the
# ticket reclaimed from its destructor.
entry ticket-marked-at-the-first-slice.patch "$(model s22_teardown_in_slices)" \
    "the ticket read reclaimed while the teardown's last slice was running"

# The C ABI (ffi/): a map built by amap_new_with_reclaimer that ignores the
# reclaimer and stays on the process-wide one, where the other map's teardown waits
# behind the blocked destructor (the C test, built with ASan/UBSan against this
# tree; it waits 30 s before it fails).
entry c-reclaimer-ignored.patch "bash ffi/tests/run-c-tests.sh test_reclaimer" \
    "amap_ticket_wait(other_ticket, 30000) returned 4"
# A C map built with destructors_on_releasing_threads that ignores it: no
# destructor runs on the releasing thread in 100 rounds.
entry c-releasing-threads-option-ignored.patch "bash ffi/tests/run-c-tests.sh test_reclaimer" \
    "check failed: round < 100"
# amap_get_with unpins before it calls the callback: a value the callback removes
# is destroyed by the reclamation passes the callback runs (manual mode, one
# thread: the C test's steps run in a set order, so it is steady).
steady c-get-with-unpins-before-the-callback.patch "bash ffi/tests/run-c-tests.sh test_api" \
    "check failed: atomic_load(&destroyed) == destroyed_before"
# amap_swap gives the map's reference to the replaced value back instead of handing
# it over: the value is destroyed by the next passes while the caller still holds
# the pointer (manual mode, one thread: steady).
steady c-swap-gives-back-the-previous-value.patch "bash ffi/tests/run-c-tests.sh test_api" \
    "check failed: atomic_load(&destroyed) == before"
# amap_swap made of a lookup and an insert: two racing swaps hand the same value
# back (test_threads' swap race; every other suite passed it).
entry c-swap-looks-up-then-inserts.patch "bash ffi/tests/run-c-tests.sh test_threads" \
    "check failed: atomic_fetch_add(&before->handed_back, 1) == 0"

if [ "${1:-}" = "--models" ]; then
    [ $# -eq 1 ] || { echo "--models takes no patch names"; exit 2; }
    models=()
    for patch in "${patches[@]}"; do
        case "${command[$patch]}" in
            *"--features loom "*) models+=("$patch") ;;
            *) [ -z "${steady[$patch]:-}" ] || models+=("$patch") ;;
        esac
    done
    patches=("${models[@]}")
elif [ $# -gt 0 ]; then
    for patch in "$@"; do
        [ -n "${command[$patch]:-}" ] || { echo "unknown patch: $patch"; exit 2; }
    done
    patches=("$@")
fi

status=0
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
