//! A large table is torn down in address order (`src/reclaim/by_address.rs`): its
//! cells are first collected by page, then released page by page, for values with
//! no destructor and for values with one alike. Values held across the clear must survive that, and each
//! value must be released once: a held cell freed by the teardown would be carved
//! again by the next fill and read back changed, and a cell released twice or never
//! would show in the map's counts.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, Builder, ReclaimMode, Retired, ValueRef};

/// 200,000 cells of 32 bytes: 6.4 MB, past what the recycler's depot keeps, so the
/// teardown gives its cells back to their pages (the address-order teardown).
const ENTRIES: u64 = 200_000;
/// Every `HELD`-th value is held across the clear.
const HELD: u64 = 997;

fn reclaim_until<V: Send + Sync + 'static>(map: &AtomicMap<u64, V>, retired: &Retired) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !retired.is_reclaimed() {
        map.reclaim();
        assert!(Instant::now() < deadline, "the teardown never ended");
    }
}

#[test]
fn held_values_survive_and_every_value_is_released_once() {
    let map: AtomicMap<u64, u64> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    for round in 0..3u64 {
        let before = map.stats().reclaimed_values;
        for k in 0..ENTRIES {
            map.insert(k, k * 3 + round);
        }
        let held: Vec<(u64, ValueRef<u64>)> = (0..ENTRIES)
            .step_by(HELD as usize)
            .map(|k| (k, map.get(&k).expect("filled")))
            .collect();
        let retired = map.clear_async();
        reclaim_until(&map, &retired);
        let kept = held.len() as u64;
        assert_eq!(
            map.stats().reclaimed_values - before,
            ENTRIES - kept,
            "round {round}: the teardown released the unheld values once each"
        );
        // Carves the cells the teardown gave back: a held cell among them would be
        // overwritten.
        for k in 0..ENTRIES {
            map.insert(k, u64::MAX - k);
        }
        for (k, value) in &held {
            assert_eq!(
                **value,
                k * 3 + round,
                "round {round}: held value {k} changed"
            );
        }
        drop(held);
        let retired = map.clear_async();
        reclaim_until(&map, &retired);
        map.reclaim();
        map.reclaim();
        let stats = map.stats();
        assert_eq!(stats.pending_values, 0);
        assert_eq!(
            stats.reclaimed_values - before,
            2 * ENTRIES,
            "round {round}: every value released once"
        );
    }
}

/// How many times each key's `Counted` value was destroyed.
static DESTROYED: [AtomicU8; ENTRIES as usize] = [const { AtomicU8::new(0) }; ENTRIES as usize];
/// Every `PANICS`-th key's destructor panics (after counting itself).
const PANICS: u64 = 20_011;

/// A value with a destructor: a heap block (its key's digits) to free, and a count
/// of its destructions.
struct Counted {
    key: u64,
    digits: String,
}

impl Drop for Counted {
    fn drop(&mut self) {
        DESTROYED[self.key as usize].fetch_add(1, Ordering::SeqCst);
        if self.key % PANICS == 0 {
            panic!("a destructor that panics (expected)");
        }
    }
}

#[test]
fn values_with_destructors_are_destroyed_once_each() {
    let map: AtomicMap<u64, Counted> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    for k in 0..ENTRIES {
        map.insert(
            k,
            Counted {
                key: k,
                digits: k.to_string(),
            },
        );
    }
    let held: Vec<ValueRef<Counted>> = (0..ENTRIES)
        .step_by(HELD as usize)
        .map(|k| map.get(&k).expect("filled"))
        .collect();
    let retired = map.clear_async();
    // The expected panics quietly (key 0's too, held and destroyed at the end).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    reclaim_until(&map, &retired);
    let panics = ENTRIES.div_ceil(PANICS)
        - (0..ENTRIES)
            .step_by(PANICS as usize)
            .filter(|k| k % HELD == 0)
            .count() as u64;
    assert_eq!(
        map.stats().destructor_panics,
        panics,
        "each panicking destructor counted once"
    );
    for k in 0..ENTRIES {
        let expected = u8::from(k % HELD != 0);
        assert_eq!(
            DESTROYED[k as usize].load(Ordering::SeqCst),
            expected,
            "value {k} destroyed {expected} times by the teardown"
        );
    }
    // The teardown's pages carved again: a held cell among them would be
    // overwritten.
    let refill: AtomicMap<u64, u64> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    for k in 0..ENTRIES {
        refill.insert(k, u64::MAX - k);
    }
    for value in &held {
        assert_eq!(
            value.digits,
            value.key.to_string(),
            "held value {} changed",
            value.key
        );
    }
    drop(held);
    map.reclaim();
    map.reclaim();
    std::panic::set_hook(hook);
    assert_eq!(map.stats().pending_values, 0);
    assert!(
        (0..ENTRIES).all(|k| DESTROYED[k as usize].load(Ordering::SeqCst) == 1),
        "every value destroyed once"
    );
}
