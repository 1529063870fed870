//! Memory comes back (like Redis's lazyfree test): fill 1,000,000 entries of 64-byte
//! values, clear, release everything, and within 5 s the process RSS falls below
//! 1.1× its pre-fill level with nothing pending; while a snapshot still holds the
//! old generation, nothing of it is freed. Linux only (reads /proc/self/statm).
//! Alone in its binary, so that no other test's memory is measured.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, Builder, ReclaimMode};

#[path = "../benches/peers/process.rs"]
mod process;
use process::rss_bytes;

const ENTRIES: u64 = 1_000_000;

#[test]
fn memory_returns_after_clear_and_release() {
    let map: AtomicMap<u64, [u8; 64]> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    map.reclaim(); // settle the allocator (the reclaimer trims after large passes)
    let before = rss_bytes();
    for k in 0..ENTRIES {
        map.insert(k, [k as u8; 64]);
    }
    let filled = rss_bytes();
    assert!(
        filled > before + ENTRIES * 64,
        "the fill did not show in RSS: {before} -> {filled}"
    );

    // Held by a snapshot: nothing of that generation may be freed.
    let snapshot = map.snapshot();
    let retired = map.clear_async();
    map.reclaim();
    assert!(!retired.is_reclaimed());
    assert_eq!(map.stats().reclaimed_values, 0);
    assert_eq!(*snapshot.get(&7).unwrap(), [7; 64]);
    assert!(rss_bytes() > before + ENTRIES * 64);

    drop(snapshot);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        map.reclaim();
        let stats = map.stats();
        let rss = rss_bytes();
        if stats.pending_values == 0
            && stats.retired_generations == 0
            && (rss as f64) < 1.1 * before as f64
        {
            assert_eq!(stats.reclaimed_values, ENTRIES);
            assert!(retired.is_reclaimed());
            eprintln!("RSS before fill {before}, filled {filled}, after clear + release {rss}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after 5 s: RSS {rss} (before fill {before}, filled {filled}), stats {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
