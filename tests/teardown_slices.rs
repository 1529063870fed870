//! A background reclaimer tears a large table down a slice at a time
//! (`src/generation.rs`, `TEARDOWN_SLICE_SLOTS`): every value is still destroyed
//! exactly once and counted once, a value held across the clear survives the
//! teardown, and a small map sharing the reclaimer is torn down between the
//! slices instead of behind the whole large table.
//!
//! One test in its own binary (its own process): no other test's pinned threads
//! hold the grace periods up while the order of the two teardowns is observed.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, Builder, Reclaimer};
use common::{DropLedger, Tracked};

/// Large enough for about 30 slices of 16 Ki slots (8 shards of 37,500 entries,
/// 64 Ki slots each), of which a pass runs four.
const LARGE: u64 = 300_000;
const SMALL: u64 = 100;
/// Rounds in which the test thread may miss the large teardown's start (descheduled
/// for all of it) before it gives up.
const ATTEMPTS: u64 = 5;

/// Far beyond what either teardown takes; a value never destroyed fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A small map's value: its destructor, run by the small map's teardown on the
/// reclaimer's thread, records what the large map still had pending then.
struct Witness {
    large: Arc<AtomicMap<u64, Tracked>>,
    seen_pending: Arc<AtomicUsize>,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let pending = self.large.stats().pending_values;
        self.seen_pending.fetch_min(pending, Ordering::SeqCst);
    }
}

#[test]
fn a_large_teardown_runs_in_slices_and_lets_a_small_one_through() {
    let reclaimer = Reclaimer::new();
    let large: Arc<AtomicMap<u64, Tracked>> =
        Arc::new(Builder::new().reclaimer(&reclaimer).build());
    let small: AtomicMap<u64, Witness> = Builder::new().reclaimer(&reclaimer).build();
    let ledger = DropLedger::new((ATTEMPTS * LARGE) as usize);
    let mut observed = false;
    for _ in 0..ATTEMPTS {
        for key in 0..LARGE {
            large.insert(key, ledger.make(key));
        }
        let seen_pending = Arc::new(AtomicUsize::new(usize::MAX));
        for key in 0..SMALL {
            let large = Arc::clone(&large);
            let seen_pending = Arc::clone(&seen_pending);
            small.insert(
                key,
                Witness {
                    large,
                    seen_pending,
                },
            );
        }
        // Held across the clear: the teardown releases the table's reference only.
        let held = large.get(&7).expect("inserted");

        let large_retired = large.clear_async();
        // The large teardown has begun when the pass counts the table's entries as
        // pending (`Stats::pending_values` counts the entries being walked).
        let began = Instant::now();
        while large.stats().pending_values == 0 && !large_retired.is_reclaimed() {
            assert!(began.elapsed() < DEADLINE, "the large teardown never began");
            thread::yield_now();
        }
        let missed = large_retired.is_reclaimed();
        let small_retired = small.clear_async();
        assert!(small_retired.wait_timeout(DEADLINE));
        assert!(large_retired.wait_timeout(DEADLINE));
        assert_eq!(held.check(), 7);
        drop(held);
        if missed {
            // This thread did not run while the large teardown did: try again.
            continue;
        }
        // Cleared while the large table was being torn down, the small map was torn
        // down between two of its slices: its values' destructors saw the large
        // teardown's entries still pending (0 when the small teardown waited for
        // the whole large one, as without the slices).
        let pending = seen_pending.load(Ordering::SeqCst);
        assert!(
            pending > 0 && pending != usize::MAX,
            "the small map's teardown waited for the whole large one (pending then: {pending})"
        );
        observed = true;
        break;
    }
    assert!(
        observed,
        "the large teardown ended before this thread saw it begin, {ATTEMPTS} times"
    );

    assert!(reclaimer.flush(DEADLINE));
    let stats = large.stats();
    assert_eq!(stats.reclaimed_values as usize, ledger.created());
    assert_eq!(stats.pending_values, 0);
    ledger.assert_all_dropped_once();
    drop(small);
}
