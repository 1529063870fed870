//! The everyday map API: insert-if-absent, conditional remove, retain, capacity,
//! `Extend` through a shared reference, a guard's borrowed entries, and the
//! default hasher parameter on every public type. Each test fails without the feature it names.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use atomic_map::{AtomicMap, Builder, ReadGuard, Snapshot, ValueRef};

/// Counts drops, to check that values are destroyed exactly once and that a value
/// `try_insert` gives back was never taken by the map.
#[derive(Debug)]
struct Counted(u32, Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn get_or_insert_with_builds_once_under_contention() {
    let map = Arc::new(AtomicMap::<u32, u32>::new());
    let built = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(4));
    let handles: Vec<ValueRef<u32>> = (0..4)
        .map(|i| {
            let (map, built, start) = (map.clone(), built.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                map.get_or_insert_with(7, || {
                    built.fetch_add(1, Ordering::SeqCst);
                    i
                })
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(built.load(Ordering::SeqCst), 1, "make ran more than once");
    for h in &handles {
        assert!(
            ValueRef::ptr_eq(h, &handles[0]),
            "callers got different values"
        );
    }
    assert_eq!(map.len(), 1);
}

#[test]
fn try_insert_gives_the_value_back_untouched() {
    let drops = Arc::new(AtomicUsize::new(0));
    let map = AtomicMap::new();
    let first = map.try_insert("k", Counted(1, drops.clone())).unwrap();
    assert_eq!(first.0, 1);
    let occupied = map.try_insert("k", Counted(2, drops.clone())).unwrap_err();
    assert!(ValueRef::ptr_eq(&occupied.current, &first));
    assert_eq!(occupied.not_inserted.0, 2);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "the map dropped a value it did not take"
    );
    drop(occupied);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the returned value is the caller's"
    );
    assert_eq!(map.get("k").unwrap().0, 1);
    drop(first);
    map.shutdown();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn remove_if_removes_only_what_it_approves() {
    let map = AtomicMap::new();
    map.insert("a", 1);
    map.insert("b", 2);
    assert!(map.remove_if("a", |_, v| *v == 2).is_none());
    assert!(map.contains_key("a"));
    let removed = map.remove_if("b", |k, v| *k == "b" && *v == 2).unwrap();
    assert_eq!(*removed, 2);
    assert!(!map.contains_key("b"));
    assert!(map.remove_if("missing", |_, _| true).is_none());
}

#[test]
fn retain_evicts_and_holders_keep_their_values() {
    let drops = Arc::new(AtomicUsize::new(0));
    let map = AtomicMap::new();
    for i in 0..100u32 {
        map.insert(i, Counted(i, drops.clone()));
    }
    let held = map.get(&3).unwrap();
    map.retain(|k, v| *k >= 50 && v.0 == *k);
    assert_eq!(map.len(), 50);
    assert!(map.get(&3).is_none() && map.get(&50).is_some());
    assert_eq!(held.0, 3, "a held value survives its eviction");
    drop(held);
    map.shutdown();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        100,
        "every value destroyed once"
    );
}

/// `retain` takes each shard in the generation current when its lock is taken:
/// after a clear made while it visits its first shard, it walks the new
/// generation's shards, not the rest of the retired one. (A walk held on one
/// generation, under one pin from its start, visits every entry of it.)
#[test]
fn retain_after_a_concurrent_clear_walks_the_new_generation() {
    const N: u32 = if cfg!(miri) { 64 } else { 1_000 };
    let map = Arc::new(Builder::new().shards(4).build::<u32, u32>());
    (&*map).extend((0..N).map(|i| (i, i)));
    let (go, cleared) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let clearer = {
        let (map, go, cleared) = (Arc::clone(&map), Arc::clone(&go), Arc::clone(&cleared));
        thread::spawn(move || {
            go.wait();
            map.clear_async();
            cleared.wait();
        })
    };
    let mut seen = 0;
    map.retain(|_, _| {
        if seen == 0 {
            go.wait();
            cleared.wait();
        }
        seen += 1;
        true
    });
    clearer.join().unwrap();
    assert!(seen >= 1, "the first shard's entries are visited");
    assert!(
        seen < N,
        "retain visited all {N} entries of the generation retired during the walk"
    );
    assert!(map.is_empty());
    Arc::into_inner(map).unwrap().shutdown();
}

/// Counts its clones too, for `Clone`'s tests; equal by its number.
#[derive(Debug)]
struct Cloned(u32, Arc<AtomicUsize>, Arc<AtomicUsize>);

impl PartialEq for Cloned {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Clone for Cloned {
    fn clone(&self) -> Self {
        self.1.fetch_add(1, Ordering::SeqCst);
        Cloned(self.0, self.1.clone(), self.2.clone())
    }
}

impl Drop for Cloned {
    fn drop(&mut self) {
        self.2.fetch_add(1, Ordering::SeqCst);
    }
}

/// `clone` copies the current generation's entries (each value cloned once, not
/// shared) into a map built alike: the same hasher, reclaimer and reclaim mode.
/// The two are independent from then on, and every value is destroyed once.
#[test]
fn clone_copies_the_current_generation_into_a_map_built_alike() {
    let (clones, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let value = |i| Cloned(i, clones.clone(), drops.clone());
    let map = Builder::new()
        .reclaim_mode(atomic_map::ReclaimMode::Manual)
        .shards(4)
        .build::<u32, Cloned>();
    map.insert(99, value(99));
    map.clear_async(); // the clone copies the current generation only
    (&map).extend((0..100).map(|i| (i, value(i))));
    let copy = map.clone();
    assert_eq!(clones.load(Ordering::SeqCst), 100, "each value cloned once");
    assert_eq!(copy.len(), 100);
    assert_eq!(copy, map);
    assert_eq!(copy.generation(), 0);
    assert_eq!(copy.reclaim_mode(), atomic_map::ReclaimMode::Manual);
    assert!(copy.reclaimer().same_as(&map.reclaimer()));
    use std::hash::BuildHasher;
    assert_eq!(copy.hasher().hash_one(7u32), map.hasher().hash_one(7u32));
    let (ours, theirs) = (map.get(&7).unwrap(), copy.get(&7).unwrap());
    assert_eq!(*ours, *theirs);
    assert!(
        !ValueRef::ptr_eq(&ours, &theirs),
        "values are cloned, not shared"
    );
    // Independent from now on.
    copy.remove(&7);
    map.insert(100, value(100));
    assert_eq!((map.len(), copy.len()), (101, 99));
    assert_ne!(copy, map);
    drop((ours, theirs));
    copy.shutdown();
    map.shutdown();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        clones.load(Ordering::SeqCst) + 102,
        "every value and every clone destroyed once"
    );
}

/// Maps and snapshots compare by their entries: neither the order of the
/// inserts, the shard count, the capacity nor the generation counts.
#[test]
fn maps_and_snapshots_compare_by_their_entries() {
    let a = Builder::new().shards(2).build::<u32, String>();
    let b = Builder::new()
        .shards(64)
        .capacity(1000)
        .build::<u32, String>();
    assert_eq!(a, b, "two empty maps");
    for i in 0..50 {
        a.insert(i, i.to_string());
        b.insert(49 - i, (49 - i).to_string());
    }
    assert_eq!(a, b);
    assert_eq!(b, a);
    b.insert(7, "seven".into());
    assert_ne!(a, b, "a value differs");
    b.insert(7, "7".into());
    b.remove(&49);
    b.insert(50, "50".into());
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b, "the same length, a key differs");
    b.remove(&50);
    assert_ne!(a, b, "a key fewer");
    let before = a.snapshot();
    assert_eq!(before, a.snapshot());
    a.replace((0..50).map(|i| (i, i.to_string())));
    assert_eq!(before, a.snapshot(), "another generation, the same entries");
    a.clear_async();
    assert_ne!(before, a.snapshot());
    assert_eq!(a, AtomicMap::new(), "cleared equals empty");
    let c = AtomicMap::from([(1, "x"), (2, "y"), (1, "z")]);
    assert_eq!(c, [(2, "y"), (1, "z")].into_iter().collect());
    a.shutdown();
    b.shutdown();
}

#[test]
fn capacity_and_extend_through_a_shared_reference() {
    let map = Arc::new(Builder::new().capacity(1000).build::<u32, u32>());
    let mut shared: &AtomicMap<u32, u32> = &map;
    shared.extend((0..1000).map(|i| (i, i * 2)));
    assert_eq!(map.len(), 1000);
    assert_eq!(*map.get(&999).unwrap(), 1998);
    let sized = AtomicMap::<String, u8>::with_capacity(10);
    sized.insert("x".into(), 1);
    assert_eq!(sized.len(), 1);
}

/// `reserve` sizes the current generation (a clear's starts empty again), values
/// and holders ride through a `shrink_to_fit`, and an impossible reservation is
/// refused (or panics, for `reserve`) with the map unchanged.
#[test]
fn reserve_and_shrink_to_fit_size_the_current_generation() {
    // Fewer under Miri, which runs this test too (.ci/run).
    const N: u64 = if cfg!(miri) { 500 } else { 5_000 };
    const KEEP: u64 = N / 50;
    let map = AtomicMap::<u64, String>::new();
    assert_eq!(map.capacity(), 0);
    map.reserve(N as usize);
    let reserved = map.capacity();
    assert!(reserved >= N as usize, "{reserved}");
    (&map).extend((0..N).map(|i| (i, i.to_string())));
    assert_eq!(map.capacity(), reserved, "no shard grew past its share");
    let held = map.get(&7).unwrap();
    map.retain(|k, _| *k < KEEP);
    map.shrink_to_fit();
    assert!(map.capacity() < reserved / 8, "{}", map.capacity());
    assert!(map.capacity() >= KEEP as usize);
    assert_eq!(map.len(), KEEP as usize);
    assert!((0..KEEP).all(|i| map.get(&i).as_deref() == Some(&i.to_string())));
    assert_eq!(*held, "7");
    let err = map.try_reserve(usize::MAX).unwrap_err();
    assert_eq!(err.additional(), usize::MAX);
    assert!(err.is_capacity_overflow());
    assert!(err.to_string().starts_with("capacity overflow"), "{err}");
    #[cfg(all(not(miri), target_pointer_width = "64"))]
    {
        // Counted, but past any address space: the system refuses it.
        let err = map.try_reserve(1 << 55).unwrap_err();
        assert!(!err.is_capacity_overflow(), "{err}");
        assert!(err.to_string().starts_with("memory allocation of"), "{err}");
    }
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map.reserve(usize::MAX)))
        .unwrap_err();
    assert!(
        caught
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("capacity overflow")),
        "reserve panics as HashMap::reserve does"
    );
    assert_eq!(map.len(), KEEP as usize);
    map.clear_async();
    assert_eq!(map.capacity(), 0, "a clear's generation starts empty");
    map.shrink_to_fit(); // nothing to shrink: no array anywhere
    map.insert(1, "one".into());
    assert_eq!(map.get(&1).as_deref().map(String::as_str), Some("one"));
}

/// `extend` (and so `collect`) reserves from the iterator's size hint: the table
/// ends as a reserve of the same count leaves it (8 shards of 15,000 entries: an
/// array of 8,192 slots each, with the reservation's margin), not as a fill
/// grows it (4,096 each, for about 1,875 entries a shard; under Miri, 2 shards
/// of 200 entries: 512 slots against 256).
#[test]
fn extend_reserves_from_the_size_hint() {
    let (shards, n) = if cfg!(miri) { (2, 200) } else { (8, 15_000) };
    let mut extended: AtomicMap<u64, u64> = Builder::new().shards(shards).build();
    extended.extend((0..n).map(|i| (i, i)));
    let reserved: AtomicMap<u64, u64> = Builder::new().shards(shards).build();
    reserved.reserve(n as usize);
    assert_eq!(extended.capacity(), reserved.capacity());
    let grown: AtomicMap<u64, u64> = Builder::new().shards(shards).build();
    for i in 0..n {
        grown.insert(i, i);
    }
    assert!(
        grown.capacity() < extended.capacity(),
        "the hint made no room"
    );
    // Torn down here, not behind the next test's wait (under Miri, whose clock
    // runs with the instructions, a teardown left to the reclaimer outlasted
    // another test's `shutdown`).
    for map in [extended, reserved, grown] {
        map.shutdown();
    }
    // An iterator whose hint is past memory is refused nothing: it inserts.
    struct Lying(std::ops::Range<u64>);
    impl Iterator for Lying {
        type Item = (u64, u64);
        fn next(&mut self) -> Option<(u64, u64)> {
            self.0.next().map(|i| (i, i))
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (usize::MAX, None)
        }
    }
    let map: AtomicMap<u64, u64> = Lying(0..10).collect();
    assert_eq!(map.len(), 10);
}

#[test]
fn public_types_default_the_hasher() {
    // Each of these names the type without its hasher parameter (E0107 before).
    fn takes(_: &Snapshot<String, u32>, _: &ReadGuard<String, u32>) {}
    let map: AtomicMap<String, u32> = AtomicMap::new();
    map.insert("k".into(), 1);
    let snapshot: Snapshot<String, u32> = map.snapshot();
    let guard: ReadGuard<String, u32> = map.pin();
    takes(&snapshot, &guard);
    let iter: atomic_map::Iter<String, u32> = snapshot.iter();
    assert_eq!(iter.count(), 1);
}

/// A generic type holding the map, a snapshot, a guard and an iterator, with no
/// bounds of its own (this did not compile while the structs carried bounds:
/// E0277 on every field), and `derive(Clone)` through `Snapshot`'s unbounded clone.
#[derive(Clone)]
struct Tenants<K, V> {
    map: Arc<AtomicMap<K, V>>,
    last: Option<Snapshot<K, V>>,
}

struct Reading<K, V> {
    _guard: ReadGuard<K, V>,
    _iter: atomic_map::Iter<K, V>,
}

impl<K, V> Tenants<K, V>
where
    K: Eq + std::hash::Hash + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn new() -> Self {
        Tenants {
            map: Arc::new(AtomicMap::new()),
            last: None,
        }
    }

    fn keep_snapshot(&mut self) {
        self.last = Some(self.map.snapshot());
    }

    fn reading(&self) -> Reading<K, V> {
        Reading {
            _guard: self.map.pin(),
            _iter: self.map.snapshot().iter(),
        }
    }
}

#[test]
fn generic_wrappers_need_no_bounds_on_their_structs() {
    let mut tenants = Tenants::<String, u32>::new();
    tenants.map.insert("a".into(), 1);
    tenants.keep_snapshot();
    let copy = tenants.clone();
    drop(copy.map.clear_async());
    assert_eq!(copy.last.as_ref().map(Snapshot::len), Some(1));
    assert!(tenants.map.is_empty());
    drop(tenants.reading());
}

/// `'static` is what the map needs from keys; a `&'static str` key is fine.
#[test]
fn static_borrowed_keys_work() {
    let map = AtomicMap::<&'static str, u32>::new();
    map.insert("tenant", 1);
    assert_eq!(map.get("tenant").as_deref(), Some(&1));
}

#[test]
fn shutdown_waits_for_the_generation_a_pinned_reader_elsewhere_held_up() {
    // A reader of another map, pinned across the drop: the map's generation is
    // released after its grace period, which that pin holds up for a while.
    let other: AtomicMap<u8, u8> = AtomicMap::new();
    let pinned = Arc::new(std::sync::Barrier::new(2));
    let reader = {
        let pinned = Arc::clone(&pinned);
        std::thread::spawn(move || {
            let guard = other.pin();
            pinned.wait();
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(guard);
        })
    };
    let drops = Arc::new(AtomicUsize::new(0));
    let map = AtomicMap::new();
    map.insert(1, Counted(1, drops.clone()));
    pinned.wait();
    map.shutdown();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "shutdown returned before the teardown"
    );
    reader.join().unwrap();
}

/// A key whose equality and hash see only its `id`, so that two equal keys can be
/// told apart by their `label`.
#[derive(Debug)]
struct Labeled {
    id: u32,
    label: &'static str,
}

impl PartialEq for Labeled {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Labeled {}

impl std::hash::Hash for Labeled {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// `ReadGuard::get_key_value` lends the key the map stores, not the one asked
/// with: after a replacing insert of an equal key, the new key (where
/// `HashMap::insert` keeps the old one: `AtomicMap::insert`'s documentation); and
/// the pair stays readable after a remove, until the guard drops.
#[test]
fn get_key_value_lends_the_stored_key() {
    use std::collections::HashMap;
    let map = AtomicMap::new();
    let mut std_map = HashMap::new();
    for (label, value) in [("first", 10), ("second", 20)] {
        map.insert(Labeled { id: 1, label }, value);
        std_map.insert(Labeled { id: 1, label }, value);
    }
    map.insert(
        Labeled {
            id: 2,
            label: "two",
        },
        2,
    );
    let query = Labeled {
        id: 1,
        label: "query",
    };
    let guard = map.pin();
    let (key, value) = guard.get_key_value(&query).expect("mapped");
    assert_eq!((key.label, *value), ("second", 20));
    let (std_key, std_value) = std_map.get_key_value(&query).expect("mapped");
    assert_eq!((std_key.label, *std_value), ("first", 20));
    map.remove(&query);
    assert!(map.get(&query).is_none());
    assert_eq!((key.label, *value), ("second", 20));
    assert_eq!(guard.get_key_value(&Labeled { id: 3, label: "" }), None);
    let mut walked: Vec<(u32, i32)> = (&guard).into_iter().map(|(k, v)| (k.id, *v)).collect();
    walked.sort();
    assert_eq!(walked, [(2, 2)]);
}
