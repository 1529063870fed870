//! One `reclaim()` call destroys the values removed before it when no other thread
//! is pinned: the pass starts their grace period and, finding no thread pinned
//! before it, ends it at once (two collections, each advancing the epoch: the
//! deferral's and one more).
//!
//! Alone in its binary: the epoch is the process's, so a test pinned on another
//! thread of the same binary would hold the grace period up. No map here is in
//! background mode, so no reclaimer thread pins either.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

mod common;

use atomic_map::{AtomicMap, Builder, ReclaimMode};
use common::{DropLedger, Tracked};

#[test]
fn one_reclaim_destroys_what_was_removed_before_it() {
    let map: AtomicMap<u32, Tracked> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    let ledger = DropLedger::new(5);
    for k in 0..3 {
        map.insert(k, ledger.make(k.into()));
    }
    for k in 0..3 {
        drop(map.remove(&k));
    }
    // Replaced, not removed: the same path.
    map.insert(7, ledger.make(7));
    drop(map.insert(7, ledger.make(8)));
    assert_eq!(map.stats().pending_values, 4);
    assert_eq!(ledger.dropped(), 0, "destroyed before a pass");
    map.reclaim();
    assert_eq!(ledger.dropped(), 4);
    assert_eq!(map.stats().pending_values, 0);
    // A pinned guard of this thread holds the next grace period up: the value
    // removed under it survives the call.
    let guard = map.pin();
    drop(map.remove(&7));
    map.reclaim();
    assert_eq!(ledger.dropped(), 4, "destroyed under a pin");
    drop(guard);
    map.reclaim();
    assert_eq!(ledger.dropped(), 5);
    ledger.assert_all_dropped_once();
}
