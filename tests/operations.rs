//! Every operation of `AtomicMap`, one at a time, on one thread.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use atomic_map::{AtomicMap, Builder, Compute, Operation, ReclaimMode, ValueRef};
use common::{DropLedger, FewHomes};

fn manual<K, V>() -> AtomicMap<K, V>
where
    K: Eq + std::hash::Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    Builder::new().reclaim_mode(ReclaimMode::Manual).build()
}

#[test]
fn insert_get_remove_with_borrowed_keys() {
    let map: AtomicMap<String, String> = AtomicMap::new();
    assert!(map.insert("alpha".to_string(), "a".to_string()).is_none());
    assert_eq!(*map.get("alpha").unwrap(), "a"); // &str lookup of a String key
    assert!(map.contains_key("alpha"));
    assert!(!map.contains_key("beta"));
    let old = map.insert("alpha".to_string(), "A".to_string()).unwrap();
    assert_eq!(*old, "a");
    assert_eq!(*map.get("alpha").unwrap(), "A");
    assert_eq!(map.len(), 1);
    assert_eq!(*map.remove("alpha").unwrap(), "A");
    assert!(map.remove("alpha").is_none());
    assert!(map.get("alpha").is_none());
    assert!(map.is_empty());
}

#[test]
fn pinned_reads_borrow_without_counting() {
    let map = AtomicMap::new();
    map.insert(1u64, vec![7u8; 3]);
    let handle = map.get(&1).unwrap();
    let before = ValueRef::ref_count(&handle);
    let guard = map.pin();
    let v = guard.get_borrowed(&1).unwrap();
    assert_eq!(v, &[7, 7, 7]);
    assert_eq!(
        ValueRef::ref_count(&handle),
        before,
        "a pinned read touched the count"
    );
    assert!(guard.contains_key(&1));
    assert_eq!(guard.len(), 1);
    assert!(!guard.is_empty());
    assert_eq!(guard.generation(), 0);
    let retained = guard.get(&1).unwrap();
    assert!(ValueRef::ptr_eq(&retained, &handle));
    assert!(guard.get(&2).is_none());
}

#[test]
fn pinned_read_survives_remove_and_clear() {
    let ledger = DropLedger::new(4);
    let map = manual();
    map.insert(1, ledger.make(11));
    let guard = map.pin();
    let v = guard.get_borrowed(&1).unwrap();
    drop(map.remove(&1));
    let retired = map.clear_async();
    map.reclaim();
    assert_eq!(v.check(), 11, "value freed under a pinned reader");
    assert!(
        !retired.is_reclaimed(),
        "generation torn down under a pinned reader"
    );
    drop(guard);
    common::reclaim_until(&map, Duration::from_secs(10), || ledger.dropped() == 1);
    assert!(retired.wait_timeout(Duration::from_secs(10)));
    ledger.assert_all_dropped_once();
}

/// `ReadGuard::iter`: every entry of the pinned generation once, keys and values
/// borrowed without touching their counts; the body may write to the map (no lock
/// is held), even enough to make shards rehash, and keys and values removed or
/// cleared away meanwhile stay readable until the guard drops; the destructors then
/// run exactly once.
#[test]
fn pinned_iteration_borrows_and_survives_writes() {
    let ledger = DropLedger::new(400);
    let map = manual();
    for i in 0..200u64 {
        map.insert(i, ledger.make(i));
    }
    let held = map.get(&7).unwrap();
    let before = ValueRef::ref_count(&held);
    let guard = map.pin();
    let mut seen = Vec::new();
    for (&key, value) in guard.iter() {
        assert_eq!(value.check(), key);
        if key == 7 {
            assert_eq!(ValueRef::ref_count(&held), before, "the iteration counted");
        }
        drop(map.remove(&key)); // a write to the shard just copied, no deadlock
        if key < 200 {
            drop(map.insert(key + 1000, ledger.make(key + 1000)));
        }
        seen.push((key, value));
    }
    let retired = map.clear_async();
    map.reclaim();
    map.reclaim();
    seen.sort_by_key(|(k, _)| *k);
    // Entries inserted during the walk may or may not be seen (their shard may
    // have been walked already); every original one is seen exactly once.
    let originals: Vec<u64> = seen.iter().map(|(k, _)| *k).filter(|k| *k < 200).collect();
    assert_eq!(originals, (0..200).collect::<Vec<_>>());
    for (key, value) in &seen {
        assert_eq!(value.check(), *key, "value freed under a pinned iteration");
    }
    assert!(!retired.is_reclaimed());
    drop(seen);
    drop(guard);
    drop(held);
    common::reclaim_until(&map, Duration::from_secs(10), || {
        ledger.dropped() == ledger.created()
    });
    assert!(retired.wait_timeout(Duration::from_secs(10)));
    ledger.assert_all_dropped_once();

    // An empty generation, and a generation seen by a guard after a clear.
    let map: AtomicMap<u8, u8> = manual();
    assert_eq!(map.pin().iter().count(), 0);
    map.insert(1, 1);
    let old = map.pin();
    map.replace([(2, 2), (3, 3)]);
    let new = map.pin();
    assert_eq!(old.iter().collect::<Vec<_>>(), [(&1, &1)]);
    let mut keys: Vec<u8> = new.keys().copied().collect();
    keys.sort();
    assert_eq!(keys, [2, 3]);
    assert_eq!(new.values().copied().sum::<u8>(), 5);
    assert!(format!("{:?}", new.iter()).starts_with("BorrowedIter"));
}

#[test]
fn upsert_and_compute() {
    let map: AtomicMap<&str, u32> = AtomicMap::new();
    assert_eq!(*map.upsert("n", |old| old.map_or(1, |v| v + 1)), 1);
    assert_eq!(*map.upsert("n", |old| old.map_or(1, |v| v + 1)), 2);
    let held = map.get("n").unwrap();
    assert_eq!(*map.upsert("n", |old| old.unwrap() * 10), 20);
    assert_eq!(*held, 2, "an update must not change a value readers hold");
    drop(held);
    match map.compute("n", |_| Operation::<u32>::Remove) {
        Compute::Removed(old) => assert_eq!(*old, 20),
        other => panic!("expected Removed, got {other:?}"),
    }
    assert!(!map.contains_key("n"));
    assert!(matches!(
        map.compute("absent", |_| Operation::<u32>::Remove),
        Compute::Kept(None)
    ));
    assert!(matches!(
        map.compute("absent", |_| Operation::<u32>::Keep),
        Compute::Kept(None)
    ));
    assert!(!map.contains_key("absent"));
    match map.compute("new", |old| {
        Operation::<u32>::Insert(old.map_or(5, |v| v + 1))
    }) {
        Compute::Inserted(new) => assert_eq!(*new, 5),
        other => panic!("expected Inserted, got {other:?}"),
    }
    match map.compute("new", |old| {
        Operation::<u32>::Insert(old.map_or(5, |v| v + 1))
    }) {
        Compute::Updated { old, new } => assert_eq!((*old, *new), (5, 6)),
        other => panic!("expected Updated, got {other:?}"),
    }
}

/// `Keep` leaves the very cell mapped: holders and later readers share it, no value
/// is built; `Abort` leaves the entry and hands the caller's result back.
#[test]
fn compute_keep_and_abort_leave_the_entry_untouched() {
    let map = AtomicMap::new();
    map.insert(1, String::from("seven"));
    let held = map.get(&1).unwrap();
    let kept = map.compute(1, |old| {
        assert_eq!(old.map(String::as_str), Some("seven"));
        Operation::<String>::Keep
    });
    let Compute::Kept(Some(now)) = kept else {
        panic!("expected Kept(Some)")
    };
    assert!(ValueRef::ptr_eq(&held, &now));
    assert_eq!(ValueRef::ref_count(&held), 3, "the table, `held` and `now`");
    let aborted = map.compute(1, |old| Operation::<String, _>::Abort(old.map(String::len)));
    assert!(matches!(aborted, Compute::Aborted(Some(5))));
    assert!(ValueRef::ptr_eq(&held, &map.get(&1).unwrap()));
}

#[test]
fn clear_async_swaps_in_an_empty_generation() {
    let map = manual();
    for i in 0..100u32 {
        map.insert(i, i);
    }
    assert_eq!(map.generation(), 0);
    let retired = map.clear_async();
    assert_eq!(retired.id(), 0);
    assert_eq!(map.generation(), 1);
    assert!(map.is_empty());
    assert!(map.get(&5).is_none());
    map.insert(5, 50);
    assert_eq!(*map.get(&5).unwrap(), 50);
    assert!(!retired.is_reclaimed());
    // One pass tears it down once its grace period is over: at once here unless
    // another thread is pinned (tests run side by side); every pass counts what it
    // tore down.
    let (mut torn_down, deadline) = (0, std::time::Instant::now() + Duration::from_secs(10));
    while !retired.is_reclaimed() {
        assert!(std::time::Instant::now() < deadline, "never torn down");
        torn_down += map.reclaim();
    }
    assert_eq!(torn_down, 1);
    let second = map.clear_async();
    assert_eq!(second.id(), 1);
    assert_eq!(map.generation(), 2);
}

#[test]
fn replace_publishes_new_contents_at_once() {
    let map = AtomicMap::new();
    map.insert("old", 0);
    let snap = map.snapshot();
    let retired = map.replace([("a", 1), ("b", 2), ("a", 3)]);
    assert_eq!(retired.id(), 0);
    assert_eq!(map.generation(), 1);
    assert_eq!(map.len(), 2);
    assert_eq!(*map.get("a").unwrap(), 3, "later duplicates win");
    assert!(map.get("old").is_none());
    assert_eq!(*snap.get("old").unwrap(), 0);
    assert!(snap.get("a").is_none());
}

#[test]
fn snapshot_get_iter_len_generation() {
    let map: AtomicMap<u32, String> = AtomicMap::new();
    for i in 0..1000 {
        map.insert(i, i.to_string());
    }
    let snap = map.snapshot();
    map.clear_async();
    map.insert(5000, "new".into());
    assert_eq!(snap.len(), 1000);
    assert!(!snap.is_empty());
    assert_eq!(snap.generation(), 0);
    assert!(snap.contains_key(&999));
    assert!(!snap.contains_key(&5000));
    let mut seen: HashMap<u32, String> = HashMap::new();
    for (k, v) in &snap {
        assert!(
            seen.insert(k, (*v).clone()).is_none(),
            "key {k} yielded twice"
        );
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.iter().all(|(k, v)| k.to_string() == *v));
    let twin = snap.clone();
    assert_eq!(twin.generation(), snap.generation());
    assert_eq!(snap.pin().get_borrowed(&7).map(String::as_str), Some("7"));
}

#[test]
fn snapshot_sees_later_writes_to_its_generation() {
    let map = AtomicMap::new();
    let snap = map.snapshot();
    map.insert(1, 1);
    assert_eq!(snap.get(&1).as_deref(), Some(&1));
    map.clear_async();
    map.insert(2, 2);
    assert!(
        snap.get(&2).is_none(),
        "a snapshot never sees another generation"
    );
}

#[test]
fn retired_wait_returns_after_teardown() {
    let ledger = DropLedger::new(100);
    for mode in [ReclaimMode::Background, ReclaimMode::Manual] {
        let map: AtomicMap<usize, common::Tracked> = Builder::new().reclaim_mode(mode).build();
        let base = ledger.dropped();
        for i in 0..10 {
            map.insert(i, ledger.make(i as u64));
        }
        let retired = map.clear_async();
        retired.wait();
        assert!(retired.is_reclaimed());
        assert_eq!(
            ledger.dropped() - base,
            10,
            "{mode:?}: wait returned before the values went"
        );
        assert!(retired.wait_timeout(Duration::ZERO));
    }
}

#[test]
fn stats_follow_what_happened() {
    let map = manual();
    let s = map.stats();
    assert_eq!(
        (s.generation, s.retired_generations, s.pending_values),
        (0, 0, 0)
    );
    for i in 0..10u32 {
        map.insert(i, i);
    }
    let snap = map.snapshot();
    map.clear_async();
    let s = map.stats();
    assert_eq!(s.generation, 1);
    assert_eq!(s.retired_generations, 1);
    assert_eq!(
        s.pending_values, 0,
        "pinned by the snapshot: not handed over yet"
    );
    drop(snap);
    assert_eq!(
        map.stats().retired_generations,
        1,
        "queued for the reclaimer"
    );
    // One pass, or a few: the slot's reference waits out a grace period, which
    // other tests' threads, pinned meanwhile, can stretch.
    common::reclaim_until(&map, Duration::from_secs(10), || {
        map.stats().retired_generations == 0
    });
    let s = map.stats();
    assert_eq!(s.retired_generations, 0);
    assert_eq!(s.pending_values, 0);
    assert_eq!(s.reclaimed_generations, 1);
    assert_eq!(s.reclaimed_values, 10);
    assert_eq!(s.destructor_panics, 0);

    // A removed value goes through the epoch; it is pending until that frees it.
    map.insert(1, 1);
    drop(map.remove(&1));
    common::reclaim_until(&map, Duration::from_secs(10), || {
        map.stats().reclaimed_values == 11
    });
    assert_eq!(map.stats().pending_values, 0);
}

#[test]
fn debug_default_from_iterator_extend() {
    let mut map: AtomicMap<u8, u8> = AtomicMap::default();
    map.extend([(1, 1), (2, 2)]);
    assert_eq!(map.len(), 2);
    let collected: AtomicMap<u8, u8> = (0..10).map(|i| (i, i)).collect();
    assert_eq!(collected.len(), 10);
    let text = format!("{collected:?}");
    assert!(
        text.contains("generation: 0") && text.contains("len: 10"),
        "{text}"
    );
    let snap = collected.snapshot();
    assert!(format!("{snap:?}").contains("len: 10"));
    assert!(format!("{:?}", collected.pin()).contains("generation: 0"));
    let v = collected.get(&3).unwrap();
    assert_eq!(format!("{v:?} {v}"), "3 3");
    assert!(format!("{:?}", collected.clear_async()).contains("id: 0"));
}

#[test]
fn builder_options() {
    let map: AtomicMap<u32, u32> = Builder::new()
        .shards(3)
        .reclaim_mode(ReclaimMode::Manual)
        .build();
    assert_eq!(map.reclaim_mode(), ReclaimMode::Manual);
    map.insert(1, 1);
    assert_eq!(map.len(), 1);
    let one: AtomicMap<u32, u32> = Builder::new().shards(0).build();
    one.insert(1, 1);
    assert_eq!(one.reclaim_mode(), ReclaimMode::Background);
    let hashed = Builder::new()
        .hasher(std::hash::BuildHasherDefault::<
            std::collections::hash_map::DefaultHasher,
        >::default())
        .build::<String, u8>();
    hashed.insert("x".into(), 1);
    assert_eq!(*hashed.get("x").unwrap(), 1);
}

#[test]
fn value_ref_traits() {
    let map = AtomicMap::new();
    map.insert(1, "v".to_string());
    let a = map.get(&1).unwrap();
    let b = a.clone();
    assert_eq!(ValueRef::ref_count(&a), 3); // table + a + b
    assert!(ValueRef::ptr_eq(&a, &b));
    assert_eq!(a, b);
    let as_ref: &String = a.as_ref();
    assert_eq!(as_ref, "v");
    drop(b);
    assert_eq!(ValueRef::ref_count(&a), 2);
}

/// Compile-time checks: the map and handles are Send + Sync where K, V are.
#[test]
fn send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AtomicMap<String, Vec<u8>>>();
    assert_send_sync::<ValueRef<Vec<u8>>>();
    assert_send_sync::<
        atomic_map::Snapshot<String, Vec<u8>, std::collections::hash_map::RandomState>,
    >();
    assert_send_sync::<atomic_map::Retired>();
    assert_send_sync::<atomic_map::DefaultHashBuilder>();
}

#[test]
fn raw_pointer_retain_release_like_c() {
    let ledger = DropLedger::new(2);
    let map = manual();
    map.insert(1u8, ledger.make(5));
    let raw = ValueRef::into_raw(map.get(&1).unwrap());
    // SAFETY: `raw` owns one reference; every increment below is matched by one
    // decrement, and the last decrement gives back the reference `raw` owned.
    unsafe {
        ValueRef::increment_count(raw);
        ValueRef::increment_count(raw);
        assert_eq!((*raw).check(), 5);
        ValueRef::decrement_count(raw);
        ValueRef::decrement_count(raw);
    }
    let retired = map.clear_async();
    // The teardown waits for a grace period: other tests' threads may be pinned.
    common::reclaim_until(&map, Duration::from_secs(10), || retired.is_reclaimed());
    assert_eq!(ledger.dropped(), 0, "C still holds the value");
    // SAFETY: as above.
    let back = unsafe { ValueRef::from_raw(raw) };
    assert_eq!(ValueRef::ref_count(&back), 1);
    assert_eq!(back.check(), 5);
    drop(back);
    common::reclaim_until(&map, Duration::from_secs(10), || ledger.dropped() == 1);
    ledger.assert_all_dropped_once();
}

/// The handle `remove` returns owns the table's reference itself (no atomic step
/// at the hand-over): cloned, it adds a holder; sent to C (`into_raw`), it becomes a
/// holder's reference first, since C counts holders only; dropped, it gives the
/// table's reference up. The value is destroyed once, after the last of them.
#[test]
fn a_removed_value_handed_over_cloned_and_sent_to_c() {
    let ledger = DropLedger::new(3);
    let map = manual();
    map.insert(1u8, ledger.make(5));
    map.insert(2u8, ledger.make(6));
    let removed = map.remove(&1).unwrap();
    assert_eq!(ValueRef::ref_count(&removed), 1);
    let clone = removed.clone();
    assert_eq!(ValueRef::ref_count(&clone), 2);
    assert!(ValueRef::ptr_eq(&removed, &clone));
    let raw = ValueRef::into_raw(removed);
    assert_eq!(ValueRef::ref_count(&clone), 2, "into_raw kept the count");
    // SAFETY: `raw` owns the reference `removed` owned, given back once here.
    unsafe { ValueRef::decrement_count(raw) };
    assert_eq!(ValueRef::ref_count(&clone), 1);
    drop(clone);
    common::reclaim_until(&map, Duration::from_secs(10), || ledger.dropped() == 1);
    // A replaced value's handle, dropped at once.
    drop(map.insert(2u8, ledger.make(7)));
    common::reclaim_until(&map, Duration::from_secs(10), || ledger.dropped() == 2);
    assert_eq!(map.get(&2).unwrap().check(), 7);
    map.shutdown();
    ledger.assert_all_dropped_once();
}

#[test]
fn shutdown_waits_for_the_background_reclaimer() {
    let ledger = DropLedger::new(1000);
    let map: AtomicMap<u32, common::Tracked> = AtomicMap::new();
    for i in 0..500 {
        map.insert(i, ledger.make(u64::from(i)));
    }
    map.clear_async();
    for i in 0..500 {
        map.insert(i, ledger.make(u64::from(i)));
    }
    map.shutdown();
    assert_eq!(
        ledger.dropped(),
        1000,
        "shutdown returned before the teardowns"
    );
    ledger.assert_all_dropped_once();
}

fn sorted(model: &HashMap<u64, u64>) -> Vec<(u64, u64)> {
    let mut entries: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
    entries.sort_unstable();
    entries
}

/// Random writes, snapshots and iterations on 24 keys that share three homes
/// (`FewHomes`), checked against a `HashMap` after every step: runs of colliding
/// keys, removals in their middle and at their ends.
#[test]
fn random_writes_on_colliding_keys_match_a_std_hash_map() {
    // Homes at the start of the array, then at its last three slots, so that the
    // runs wrap around its end.
    for homes in [FewHomes::FIRST_SLOTS, FewHomes::LAST_SLOTS] {
        random_writes_match_a_std_hash_map(homes);
    }
}

fn random_writes_match_a_std_hash_map(homes: FewHomes) {
    let map: AtomicMap<u64, u64, FewHomes> = Builder::new()
        .reclaim_mode(ReclaimMode::Manual)
        .shards(2)
        .hasher(homes)
        .build();
    let mut model = HashMap::new();
    // xorshift64: the same sequence on every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Miri (`.ci/run` runs this file under it) gets a short run.
    let steps = if cfg!(miri) { 200 } else { 20_000u64 };
    for step in 0..steps {
        let (key, op) = (next() % 24, next() % 8);
        match op {
            0..=2 => assert_eq!(
                map.insert(key, step).map(|v| *v),
                model.insert(key, step),
                "insert {key} at step {step}"
            ),
            3..=5 => assert_eq!(
                map.remove(&key).map(|v| *v),
                model.remove(&key),
                "remove {key} at step {step}"
            ),
            6 => {
                let mut seen: Vec<_> = map.snapshot().iter().map(|(k, v)| (k, *v)).collect();
                seen.sort_unstable();
                assert_eq!(seen, sorted(&model), "snapshot at step {step}");
            }
            _ => {
                let mut seen: Vec<_> = map.pin().iter().map(|(k, v)| (*k, *v)).collect();
                seen.sort_unstable();
                assert_eq!(seen, sorted(&model), "iteration at step {step}");
            }
        }
        // Every key looked up after every step: a key cut off from its home by a
        // freed slot would read as absent here.
        let guard = map.pin();
        for k in 0..24 {
            assert_eq!(
                guard.get_borrowed(&k).copied(),
                model.get(&k).copied(),
                "get {k} after step {step}"
            );
        }
        assert_eq!(map.len(), model.len(), "len after step {step}");
        if step % 1_000 == 0 {
            map.reclaim();
        }
    }
}
