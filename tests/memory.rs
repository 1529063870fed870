//! Memory comes back (like Redis's lazyfree test): fill 1,000,000 entries of 64-byte
//! values, clear, release everything, and within 5 s the process RSS falls back to
//! its pre-fill level (within 10% of it, or 1% of the fill's growth) with nothing
//! pending; while a snapshot still holds the
//! old generation, nothing of it is freed; the same without the allocator's trim.
//! Linux only (reads /proc/self/statm). Alone in its binary (its two tests one at a
//! time), so that no other test's memory is measured.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]
#![cfg(target_os = "linux")]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, Builder, ReclaimMode};

#[path = "../benches/peers/process.rs"]
mod process;
use process::rss_bytes;

const ENTRIES: u64 = 1_000_000;

/// The tests of this binary measure the process's RSS: one at a time.
static ALONE: Mutex<()> = Mutex::new(());

#[test]
fn memory_returns_after_clear_and_release() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
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
    assert_returns(&map, ENTRIES, before, filled);
    assert!(retired.is_reclaimed());
}

/// Without the allocator's trim, whose flush before it also unmaps the pages a
/// teardown left pending (`src/reclaim/page_runs.rs`), the teardown's own end must
/// unmap them: 500,000 cells of 88 bytes are about 670 pages, fewer than the 1,024
/// that make any slice unmap what waits, so a teardown that left its pages pending
/// would keep about 42 MiB.
#[test]
fn memory_returns_after_clear_without_the_trim() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let map: AtomicMap<u64, [u8; 64]> = Builder::new()
        .reclaim_mode(ReclaimMode::Manual)
        .trim_memory(false)
        .build();
    map.reclaim();
    let before = rss_bytes();
    for k in 0..ENTRIES / 2 {
        map.insert(k, [k as u8; 64]);
    }
    let filled = rss_bytes();
    let retired = map.clear_async();
    assert_returns(&map, ENTRIES / 2, before, filled);
    assert!(retired.is_reclaimed());
}

/// Reclaims until nothing is pending and RSS is back near `before` (see `slack`),
/// then checks that `entries` values were reclaimed; fails after 5 s.
fn assert_returns(map: &AtomicMap<u64, [u8; 64]>, entries: u64, before: u64, filled: u64) {
    // 10% of the pre-fill level, or 1% of what the fill added if that is more. A
    // test process starts at about 3.3 MB, where 10% is about 80 pages, and what
    // stays after the release was 40 pages in local runs and 82 in one CI run,
    // over by 410 bytes (not traced further; one candidate: a cell that a thread's
    // magazine keeps holds its 64 KiB page, `src/reclaim/recycle.rs`). 1% of a
    // fill of 53 MB is 130 pages; a teardown that keeps its pages keeps about
    // 42 MiB (above).
    let slack = (before / 10).max(filled.saturating_sub(before) / 100);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        map.reclaim();
        let stats = map.stats();
        let rss = rss_bytes();
        if stats.pending_values == 0 && stats.retired_generations == 0 && rss < before + slack {
            assert_eq!(stats.reclaimed_values, entries);
            eprintln!("RSS before fill {before}, filled {filled}, after clear + release {rss}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after 5 s: RSS {rss} (before fill {before}, filled {filled}, allowed {slack} more than before), stats {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
