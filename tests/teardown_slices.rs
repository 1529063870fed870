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

use std::thread;
use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, Builder, Reclaimer};
use common::{DropLedger, Tracked};

/// Large enough for about 30 slices of 16 Ki slots (8 shards of 37,500 entries,
/// 64 Ki slots each), of which a pass runs four.
const LARGE: u64 = 300_000;
const SMALL: u64 = 100;

/// Far beyond what either teardown takes; a value never destroyed fails.
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn a_large_teardown_runs_in_slices_and_lets_a_small_one_through() {
    let reclaimer = Reclaimer::new();
    let large: AtomicMap<u64, Tracked> = Builder::new().reclaimer(&reclaimer).build();
    let small: AtomicMap<u64, Tracked> = Builder::new().reclaimer(&reclaimer).build();
    let ledger = DropLedger::new((LARGE + SMALL) as usize);
    for key in 0..LARGE {
        large.insert(key, ledger.make(key));
    }
    for key in 0..SMALL {
        small.insert(key, ledger.make(key));
    }
    // Held across the clear: the teardown releases the table's reference only.
    let held = large.get(&7).expect("inserted");

    let t = std::time::Instant::now();
    let large_retired = large.clear_async();
    // The large teardown has begun when the pass counts the table's entries as
    // pending (`Stats::pending_values` counts the entries being walked).
    let began = Instant::now();
    while large.stats().pending_values == 0 && !large_retired.is_reclaimed() {
        assert!(began.elapsed() < DEADLINE, "the large teardown never began");
        thread::yield_now();
    }
    let small_retired = small.clear_async();
    assert!(small_retired.wait_timeout(DEADLINE));
    // Cleared while the large table was being torn down, the small map was torn
    // down between two of its slices, not after the whole of it (which the same
    // test fails without the slices: a teardown ran whole, in one pass).
    assert!(
        !large_retired.is_reclaimed(),
        "the small map's teardown waited for the whole large one"
    );
    assert!(large_retired.wait_timeout(DEADLINE));
    eprintln!("large at {:?}", t.elapsed());

    assert_eq!(small.stats().reclaimed_values, SMALL);
    assert_eq!(large.stats().reclaimed_values, LARGE - 1);
    assert_eq!(ledger.dropped(), (LARGE + SMALL - 1) as usize);
    assert_eq!(held.check(), 7);
    drop(held);
    assert!(reclaimer.flush(DEADLINE));
    assert_eq!(large.stats().reclaimed_values, LARGE);
    assert_eq!(large.stats().pending_values, 0);
    ledger.assert_all_dropped_once();
}
