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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use atomic_map::{AtomicMap, Builder, ReclaimMode};

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn one_reclaim_destroys_what_was_removed_before_it() {
    let map: AtomicMap<u32, Counted> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    let drops = Arc::new(AtomicUsize::new(0));
    for k in 0..3 {
        map.insert(k, Counted(drops.clone()));
    }
    for k in 0..3 {
        drop(map.remove(&k));
    }
    // Replaced, not removed: the same path.
    map.insert(7, Counted(drops.clone()));
    drop(map.insert(7, Counted(drops.clone())));
    assert_eq!(map.stats().pending_values, 4);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "destroyed before a pass");
    map.reclaim();
    assert_eq!(drops.load(Ordering::SeqCst), 4);
    assert_eq!(map.stats().pending_values, 0);
    // A pinned guard of this thread holds the next grace period up: the value
    // removed under it survives the call.
    let guard = map.pin();
    drop(map.remove(&7));
    map.reclaim();
    assert_eq!(drops.load(Ordering::SeqCst), 4, "destroyed under a pin");
    drop(guard);
    map.reclaim();
    assert_eq!(drops.load(Ordering::SeqCst), 5);
}
