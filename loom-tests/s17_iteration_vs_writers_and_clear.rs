//! Scenario 17: a pinned iteration (`ReadGuard::iter`, keys and values borrowed,
//! no lock) racing a writer that removes one entry, inserts another and clears
//! the map. The guard's generation is the one it pinned: an entry mapped
//! throughout is yielded exactly once; everything yielded, even what is removed or
//! cleared away during the walk, stays readable until the guard drops.

mod common;

use common::{finish, manual_map, unwrap};
use loom::sync::Arc;
use loom::thread;

#[test]
fn iteration_vs_writers_and_clear() {
    common::model("iteration_vs_writers_and_clear", || {
        let drops = common::Drops::default();
        // Three keys of one shard, so that the insert during the walk lands in the
        // array the walk reads (published by the slot's Release alone).
        let keys = common::keys_in_one_shard(3);
        let (k1, k2, k3) = (keys[0], keys[1], keys[2]);
        let map = Arc::new(manual_map());
        map.insert(k1, drops.probe(u64::from(k1)));
        map.insert(k2, drops.probe(u64::from(k2)));

        let reader = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                let guard = map.pin();
                // Lets the writer run between the pin and the walk without spending
                // a preemption of loom's bound on it.
                thread::yield_now();
                let mut seen = Vec::new();
                for (key, value) in guard.iter() {
                    assert_eq!(u64::from(*key), value.read(), "a torn entry");
                    seen.push(*key);
                }
                if guard.generation() > 0 {
                    // Pinned after the clear: the new generation is empty.
                    assert!(seen.is_empty(), "{seen:?}");
                }
                assert!(
                    guard.generation() > 0 || seen.iter().filter(|&&k| k == k1).count() == 1,
                    "{k1}: {seen:?}"
                );
                assert!(seen.iter().filter(|&&k| k == k2).count() <= 1, "{seen:?}");
                assert!(seen.iter().filter(|&&k| k == k3).count() <= 1, "{seen:?}");
            })
        };
        drop(map.remove(&k2));
        map.insert(k3, drops.probe(u64::from(k3)));
        drop(map.clear_async());
        map.reclaim();
        reader.join().unwrap();
        for _ in 0..3 {
            map.reclaim();
        }
        assert_eq!(drops.count(), 3);
        finish(unwrap(map));
        assert_eq!(drops.count(), 3);
    });
}
