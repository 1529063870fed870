//! `shutdown` (and so C's `amap_free` and Go's `Close`) does not wait long for a
//! guard pinned on another thread: the epoch is the process's, so a long read
//! section of any map holds up the grace period of the map's last generation for
//! as long as it lasts. `shutdown` gives such a grace period 100 ms, then returns
//! (the generation is torn down after the guard goes). A version that waited for
//! the grace period took its whole 10 s bound here (found in review, 2026-11-30).
//! Alone in its binary: the long pin would hold up the other tests' shutdowns.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, Builder, ReclaimMode};

/// How long `shutdown` took while another thread held a guard throughout.
fn shutdown_beside_a_long_pin(mode: ReclaimMode) -> Duration {
    let other: Arc<AtomicMap<u8, u8>> = Arc::new(AtomicMap::new());
    let pinned = Arc::new(Barrier::new(2));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (other, pinned, done) = (Arc::clone(&other), Arc::clone(&pinned), Arc::clone(&done));
        std::thread::spawn(move || {
            let guard = other.pin(); // a long read section of another map
            pinned.wait();
            let start = Instant::now();
            while !done.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(guard);
        })
    };
    let map: AtomicMap<u32, u32> = Builder::new().reclaim_mode(mode).build();
    map.insert(1, 1);
    pinned.wait();
    let start = Instant::now();
    map.shutdown();
    let took = start.elapsed();
    done.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    took
}

#[test]
fn shutdown_does_not_wait_out_a_long_pin_elsewhere() {
    // A liveness bound, not a speed goal: far above the 100 ms of patience, far
    // below the 10 s of the whole wait.
    for mode in [ReclaimMode::Background, ReclaimMode::Manual] {
        let took = shutdown_beside_a_long_pin(mode);
        assert!(
            took < Duration::from_secs(5),
            "{mode:?}: shutdown took {took:?}"
        );
    }
}
