//! Scenario 27: a pinned reader probing a shard's array while a writer removes
//! entries and shrinks the table (`AtomicMap::shrink_to_fit`): the shard moves to
//! a smaller array, published as a grow's is (Release, against the reader's
//! Acquire load), or, emptied, to none; either way the array it leaves is retired
//! through an epoch deferral. The reader, pinned before, must be able to finish
//! probing the old array (the grace period: under loom an array's free is a write
//! loom sees) and must see the new one as the rehash built it.

mod common;

use common::{finish, keys_in_one_shard, manual_map, spawn_with, unwrap};
use loom::sync::Arc;

/// Three entries in one shard (an array of 8 slots under loom: at most half live),
/// two removed and the table shrunk to the 4 slots that hold the third.
#[test]
fn pinned_read_vs_shrink() {
    common::model("pinned_read_vs_shrink", || {
        let drops = common::Drops::default();
        let keys = keys_in_one_shard(3);
        let (a, b, d) = (keys[0], keys[1], keys[2]);
        let map = Arc::new(manual_map());
        map.insert(a, drops.probe(10));
        map.insert(b, drops.probe(11));
        map.insert(d, drops.probe(13));

        let reader = spawn_with(&map, move |map| {
            let guard = map.pin();
            if let Some(v) = guard.get_borrowed(&a) {
                assert_eq!(v.read(), 10);
            }
            // Mapped throughout, in the old array or the new one.
            assert_eq!(guard.get_borrowed(&b).map(|v| v.read()), Some(11));
        });
        drop(map.remove(&a));
        drop(map.remove(&d));
        let before = atomic_map::loom_rehashes();
        map.shrink_to_fit();
        assert_eq!(
            atomic_map::loom_rehashes(),
            before + 1,
            "the shrink must move the shard to a smaller array"
        );
        map.reclaim();
        reader.join().unwrap();
        map.reclaim();
        assert_eq!(drops.count(), 2);
        let map = unwrap(map);
        assert_eq!(map.len(), 1);
        finish(map);
        assert_eq!(drops.count(), 3);
    });
}

/// One entry, removed, and the table shrunk: the emptied shard's array is retired
/// (the shard then has none) while the reader may still be probing it, or
/// walking it.
#[test]
fn pinned_read_vs_shrink_to_nothing() {
    common::model("pinned_read_vs_shrink_to_nothing", || {
        let drops = common::Drops::default();
        let a = keys_in_one_shard(1)[0];
        let map = Arc::new(manual_map());
        map.insert(a, drops.probe(10));

        let reader = spawn_with(&map, move |map| {
            let guard = map.pin();
            if let Some(v) = guard.get_borrowed(&a) {
                assert_eq!(v.read(), 10);
            }
            // A walk of the table, which loads each shard's array too.
            for (key, v) in guard.iter() {
                assert_eq!((*key, v.read()), (a, 10));
            }
        });
        drop(map.remove(&a));
        assert!(map.capacity() > 0);
        map.shrink_to_fit();
        assert_eq!(map.capacity(), 0, "the emptied shards keep no array");
        map.reclaim();
        reader.join().unwrap();
        map.reclaim();
        assert_eq!(drops.count(), 1);
        finish(unwrap(map));
    });
}
