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
use std::time::{Duration, Instant};

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

/// A value that counts its drops.
struct Counted(Arc<std::sync::atomic::AtomicU64>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Maps sharing one reclaimer have their doomed values in the same batches, in
/// runs of one map's values: those of maps whose cells need no destructor are
/// given back a run at a time (`DoomedBatch::destroy_each`), the others one by
/// one. Runs alternating between two such maps and one whose values count their
/// drops must each be counted to their own map, and every counted value dropped
/// once: a run that went on into another map's cells would count them to the
/// wrong map (or free the counted map's without their drop), and a run reported
/// as one value would leave the rest pending.
///
/// `pattern` gives each run as (map, values); `reclaim` runs after each round.
fn mixed_batches(reclaimer: &atomic_map::Reclaimer, pattern: &[(usize, u64)], reclaim: impl Fn()) {
    use std::sync::atomic::{AtomicU64, Ordering};

    let plain_a: AtomicMap<u64, u64> = Builder::new().reclaimer(reclaimer).build();
    let plain_b: AtomicMap<u32, [u64; 3]> = Builder::new().reclaimer(reclaimer).build();
    let counted: AtomicMap<u64, Counted> = Builder::new().reclaimer(reclaimer).build();
    let drops = Arc::new(AtomicU64::new(0));
    let mut expected = [0u64; 3];
    let mut key = 0u64;
    for round in 0..40u64 {
        for (k, &(map, run)) in pattern.iter().enumerate() {
            // The first run 0 to 2 values longer, so that the runs fall differently
            // in each round.
            let run = if k == 0 { run + round % 3 } else { run };
            for _ in 0..run {
                key += 1;
                // Each value is inserted and removed at once: its handle's drop
                // dooms it, in this thread's ring, in this order.
                match map {
                    0 => drop(plain_a.insert(key, key).or(plain_a.remove(&key))),
                    1 => drop(
                        plain_b
                            .insert(key as u32, [key; 3])
                            .or(plain_b.remove(&(key as u32))),
                    ),
                    _ => drop(
                        counted
                            .insert(key, Counted(Arc::clone(&drops)))
                            .or(counted.remove(&key)),
                    ),
                }
                expected[map] += 1;
            }
        }
        reclaim();
    }
    // Nothing else is pinned: a few passes destroy everything (a count attributed
    // to the wrong map would leave another's pending for good).
    let pending = || {
        plain_a.stats().pending_values
            + plain_b.stats().pending_values
            + counted.stats().pending_values
    };
    // Bounded by time, not by a count of calls: with a background reclaimer,
    // `reclaim` returns at once while its thread's pass holds the lock, and 100
    // calls with a yield between them once all fell inside one pass (`cargo test
    // --workspace`, 2026-12-04, on passes whose flushes may call `membarrier`).
    let patience = std::time::Instant::now();
    while pending() != 0 && patience.elapsed() < std::time::Duration::from_secs(10) {
        reclaimer.reclaim();
        thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(pending(), 0);
    assert_eq!(plain_a.stats().reclaimed_values, expected[0]);
    assert_eq!(plain_b.stats().reclaimed_values, expected[1]);
    assert_eq!(counted.stats().reclaimed_values, expected[2]);
    assert_eq!(drops.load(Ordering::Relaxed), expected[2]);
    assert!(plain_a.is_empty() && plain_b.is_empty() && counted.is_empty());
}

/// A manual reclaimer's ring holds 256 values (more spill onto the lists, whose
/// cells are destroyed one by one): a round of 239 values at most, reclaimed after
/// each round, puts every run of the round into one pass's array.
#[test]
fn counts_exact_per_map_in_mixed_batches() {
    let reclaimer = atomic_map::Reclaimer::manual();
    let pattern = [
        (0, 1),
        (1, 3),
        (0, 100),
        (2, 2),
        (1, 1),
        (2, 50),
        (0, 60),
        (1, 20),
    ];
    mixed_batches(&reclaimer, &pattern, || {
        reclaimer.reclaim();
    });
}

/// A background reclaimer's ring holds 32,768 values: runs longer than the 256
/// that a pass gives back at once, taken whenever its thread passes.
#[test]
fn counts_exact_per_map_in_long_runs() {
    let reclaimer = atomic_map::Reclaimer::new();
    let pattern = [(0, 1), (1, 3), (0, 300), (2, 2), (1, 1), (2, 257), (1, 600)];
    mixed_batches(&reclaimer, &pattern, || {});
    assert!(reclaimer.flush(std::time::Duration::from_secs(10)));
}

/// Values whose last handles a thread's thread-locals drop while the thread exits
/// are counted and destroyed once each, whether that drop comes before or after
/// the destructor that gives the thread's stripe claim back (`src/reclaim/stripe.rs`:
/// after it, the thread counts on stripe 0's shared counters and dooms onto its
/// list). Thread-local destructors run in the reverse order of their registration,
/// so the handles' thread-local is registered once before the thread's first count
/// (its destructor runs after the give-back) and once after. A third thread's
/// first count is a doom (it only drops handles made elsewhere), which takes the
/// doom's first-use path (`ValueRef::doom_first`). What this cannot catch: a thread
/// that kept writing its stripe's ring after the give-back while a new claimant
/// writes it too (the threads here run one after another; loom scenario 21 models
/// a hand-over).
#[test]
fn values_released_while_their_thread_exits_are_counted_once() {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering};

    thread_local! {
        static HELD: RefCell<Vec<atomic_map::ValueRef<Counted>>> =
            const { RefCell::new(Vec::new()) };
    }
    const VALUES: u64 = 300;
    let map: Arc<AtomicMap<u64, Counted>> =
        Arc::new(Builder::new().reclaim_mode(ReclaimMode::Manual).build());
    let drops = Arc::new(AtomicU64::new(0));
    for round in 0..3u64 {
        let base = round * VALUES;
        // The third round's handles are made here and dropped by the thread.
        let made_here: Vec<_> = if round == 2 {
            (base..base + VALUES)
                .map(|key| {
                    map.insert(key, Counted(Arc::clone(&drops)));
                    map.remove(&key).expect("just inserted")
                })
                .collect()
        } else {
            Vec::new()
        };
        let (thread_map, thread_drops) = (Arc::clone(&map), Arc::clone(&drops));
        thread::spawn(move || {
            let (map, drops) = (thread_map, thread_drops);
            match round {
                0 => HELD.with(|_| ()),
                2 => return drop(made_here),
                _ => {}
            }
            for key in base..base + VALUES {
                map.insert(key, Counted(Arc::clone(&drops)));
                let value = map.remove(&key).expect("just inserted");
                HELD.with(|held| held.borrow_mut().push(value));
            }
        })
        .join()
        .unwrap();
        // Every handle was dropped by the thread: none is left to destroy.
        assert_eq!(map.stats().pending_values as u64, VALUES);
        // Passes until nothing is pending, for up to 10 s (a pass that meets a
        // guard pinned elsewhere leaves the rest to the next).
        let deadline = Instant::now() + Duration::from_secs(10);
        while map.stats().pending_values > 0 && Instant::now() < deadline {
            map.reclaim();
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(map.stats().pending_values, 0);
        assert_eq!(map.stats().reclaimed_values, (round + 1) * VALUES);
        assert_eq!(drops.load(Ordering::Relaxed), (round + 1) * VALUES);
    }
}
