//! A map's counts are exact under concurrent writers: every value doomed by any
//! thread is counted once, by threads that claimed a counter stripe (and write it
//! with a plain load and store) and by threads that share one, across two
//! generations of threads, the second taking over the first one's claims
//! (`src/reclaim/stripe.rs`). Two writers of one stripe's claimed counter lose
//! counts, and `pending_values` comes out short.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

use std::sync::{Arc, Barrier};
use std::thread;

use atomic_map::{AtomicMap, Builder, ReclaimMode};

/// More threads at once than a map has counter stripes (8), so some share.
const THREADS: u64 = 12;
const PER_THREAD: u64 = 20_000;

#[test]
fn counts_exact_across_claimed_stripes() {
    let map: Arc<AtomicMap<u64, u64>> =
        Arc::new(Builder::new().reclaim_mode(ReclaimMode::Manual).build());
    for round in 0..2 {
        let start = Arc::new(Barrier::new(THREADS as usize));
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (map, start) = (Arc::clone(&map), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    let base = (round * THREADS + t) * PER_THREAD;
                    for key in base..base + PER_THREAD {
                        map.insert(key, key);
                        // The removed value's handle is dropped here: doomed, counted.
                        assert_eq!(map.remove(&key).as_deref(), Some(&key));
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
    }
    let total = 2 * THREADS * PER_THREAD;
    // Manual mode: nothing is destroyed before `reclaim`, so every doomed value is
    // still pending, and all of them were counted.
    assert_eq!(map.stats().pending_values as u64, total);
    while map.stats().pending_values > 0 {
        map.reclaim();
        thread::yield_now();
    }
    assert_eq!(map.stats().reclaimed_values, total);
    assert!(map.is_empty());
}
