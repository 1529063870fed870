//! The table's lock-free read path under real threads: readers that never lock
//! keep finding what is mapped while writers grow, shrink and rehash the shards
//! underneath them, and keys and values they borrowed stay readable until their
//! guard drops. (The loom models check the same races exhaustively on small
//! tables; these run them at a size where every shard rehashes many times, and
//! under Miri with the sizes cut.)

#![cfg(not(feature = "loom"))]

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use atomic_map::{AtomicMap, Builder};

mod common;
use common::FewHomes;

/// Keys that stay mapped for the whole test, each to a value derived from it.
const STABLE: u64 = if cfg!(miri) { 8 } else { 64 };
/// Keys a writer inserts and removes meanwhile, making shards rehash.
const CHURN: u64 = if cfg!(miri) { 40 } else { 20_000 };
const ROUNDS: usize = if cfg!(miri) { 1 } else { 4 };

fn value_of(key: u64) -> String {
    format!("value of {key}")
}

/// Readers (pinned, retained, iterating) race a writer that makes every shard
/// rehash again and again (inserting fresh keys, removing them, replacing the
/// stable keys' values with equal ones, reserving room ahead of a round and
/// shrinking the table after it): a reader must find every stable key, with its
/// value, on every probe.
#[test]
fn readers_find_stable_keys_while_shards_rehash() {
    // Few shards, so that each one grows and rehashes many times.
    let map: AtomicMap<u64, String> = Builder::new().shards(2).build();
    for key in 0..STABLE {
        map.insert(key, value_of(key));
    }
    let done = AtomicBool::new(false);
    let start = Barrier::new(4);
    thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for round in 0..ROUNDS {
                let base = 1_000_000 * (round as u64 + 1);
                if round % 2 == 1 {
                    // Every shard rehashed at once into room for the round.
                    map.reserve(CHURN as usize);
                }
                for key in base..base + CHURN {
                    map.insert(key, value_of(key));
                    if key % 7 == 0 {
                        // A replacing insert of a stable key: mapped throughout.
                        let stable = key % STABLE;
                        map.insert(stable, value_of(stable));
                    }
                }
                for key in base..base + CHURN {
                    assert_eq!(map.remove(&key).as_deref(), Some(&value_of(key)));
                }
                // Every shard back to the smallest array its stable keys fit in.
                let grown = map.capacity();
                map.shrink_to_fit();
                assert!(map.capacity() < grown, "round {round}: nothing shrank");
            }
            done.store(true, Ordering::Release);
        });
        // A pinned reader: borrowed gets.
        s.spawn(|| {
            start.wait();
            let mut rounds = 0u64;
            while !done.load(Ordering::Acquire) || rounds == 0 {
                let guard = map.pin();
                for key in 0..STABLE {
                    let value = guard.get_borrowed(&key);
                    assert_eq!(value, Some(&value_of(key)), "pinned get lost key {key}");
                }
                rounds += 1;
            }
        });
        // A retained reader: handles, which must never come back empty for a key
        // that a replacing insert keeps mapped.
        s.spawn(|| {
            start.wait();
            let mut rounds = 0u64;
            while !done.load(Ordering::Acquire) || rounds == 0 {
                for key in 0..STABLE {
                    let value = map.get(&key);
                    assert_eq!(value.as_deref(), Some(&value_of(key)), "get lost key {key}");
                }
                rounds += 1;
            }
        });
        // An iterating reader: every stable key once per walk, borrowed keys and
        // values intact.
        s.spawn(|| {
            start.wait();
            let mut rounds = 0u64;
            while !done.load(Ordering::Acquire) || rounds == 0 {
                let guard = map.pin();
                let mut stable = Vec::new();
                for (key, value) in guard.iter() {
                    assert_eq!(*value, value_of(*key), "iteration read a torn entry");
                    if *key < STABLE {
                        stable.push(*key);
                    }
                }
                stable.sort_unstable();
                assert_eq!(
                    stable,
                    (0..STABLE).collect::<Vec<_>>(),
                    "a walk lost or repeated a key"
                );
                rounds += 1;
            }
        });
    });
    assert_eq!(map.len(), STABLE as usize);
}

/// Keys borrowed by an iteration stay readable after they are removed and their
/// shard rehashed many times over, until the guard drops.
#[test]
fn borrowed_keys_outlive_removal_and_rehash() {
    let map: AtomicMap<String, u64> = Builder::new().shards(2).build();
    for i in 0..STABLE {
        map.insert(format!("key {i}"), i);
    }
    let guard = map.pin();
    let borrowed: Vec<(&String, &u64)> = guard.iter().collect();
    for (key, _) in &borrowed {
        map.remove(key.as_str());
    }
    // Enough fresh keys that every shard rehashes, retiring the arrays the
    // borrowed keys live in.
    for i in 0..CHURN.min(4096) {
        map.insert(format!("fresh {i}"), i);
    }
    map.reclaim();
    for (key, value) in &borrowed {
        assert_eq!(**key, format!("key {value}"));
    }
    assert_eq!(borrowed.len(), STABLE as usize);
    drop(borrowed);
    drop(guard);
}

/// A key has one copy, wherever the table moves its entry: a key with interior
/// mutability that `Eq` and `Hash` ignore, changed through a borrow taken before
/// its shard rehashed, reads the same through a borrow taken after. (With keys
/// copied into each new array, the two borrows were two objects sharing one heap
/// buffer: the change through one freed memory the other still used.)
#[test]
fn a_key_borrowed_across_a_rehash_is_one_object() {
    use std::hash::{Hash, Hasher};
    use std::sync::Mutex;

    struct Labelled {
        id: u64,
        label: Mutex<String>,
    }
    impl PartialEq for Labelled {
        fn eq(&self, other: &Self) -> bool {
            self.id == other.id
        }
    }
    impl Eq for Labelled {}
    impl Hash for Labelled {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.id.hash(state)
        }
    }
    let key = |id| Labelled {
        id,
        label: Mutex::new(format!("label {id}")),
    };

    let map: AtomicMap<Labelled, u64> = Builder::new().shards(2).build();
    map.insert(key(1), 1);
    let before = map.pin();
    let old: &Labelled = before.keys().next().unwrap();
    // Enough inserts that both shards rehash several times.
    for id in 2..(CHURN.min(2_000) + 2) {
        map.insert(key(id), id);
    }
    let after = map.pin();
    let new: &Labelled = after.keys().find(|k| k.id == 1).unwrap();
    *old.label.lock().unwrap() = "changed through the old borrow".to_string();
    assert_eq!(*new.label.lock().unwrap(), "changed through the old borrow");
    assert!(std::ptr::eq(old, new), "two copies of one key");
}

/// Lock-free readers look up keys that stay mapped while a writer inserts and
/// removes other keys of the same three homes (`FewHomes`), in the same runs:
/// removals at a run's end free slots (and the tombstones before them), which must
/// never cut a reader off from a stable key further along its run. Both home
/// layouts: at the array's start and at its end (runs that wrap around).
#[test]
fn lookups_of_colliding_keys_race_removals_that_free_slots() {
    const STABLE_HERE: u64 = 6;
    const CHURN_HERE: u64 = 24;
    let rounds: u64 = if cfg!(miri) { 50 } else { 200_000 };
    for homes in [FewHomes::FIRST_SLOTS, FewHomes::LAST_SLOTS] {
        let map: AtomicMap<u64, u64, FewHomes> = Builder::new().shards(2).hasher(homes).build();
        for key in 0..STABLE_HERE {
            map.insert(key, key * 7);
        }
        let done = AtomicBool::new(false);
        thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let mut lookups = 0u64;
                    while !done.load(Ordering::Relaxed) || lookups == 0 {
                        let guard = map.pin();
                        for key in 0..STABLE_HERE {
                            assert_eq!(
                                guard.get_borrowed(&key).copied(),
                                Some(key * 7),
                                "stable key {key} missed ({homes:?})"
                            );
                        }
                        lookups += 1;
                    }
                });
            }
            // The writer: churn keys interleaved with the stable ones in their runs.
            for round in 0..rounds {
                let key = STABLE_HERE + round % CHURN_HERE;
                if (round / CHURN_HERE) % 2 == 0 {
                    map.insert(key, round);
                } else {
                    map.remove(&key);
                }
            }
            done.store(true, Ordering::Relaxed);
        });
        for key in 0..STABLE_HERE {
            assert_eq!(map.get(&key).map(|v| *v), Some(key * 7));
        }
    }
}
