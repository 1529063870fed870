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
        let map = Arc::new(manual_map());
        map.insert(1, drops.probe(1));
        map.insert(2, drops.probe(2));

        let reader = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                let guard = map.pin();
                let mut seen = Vec::new();
                for (key, value) in guard.iter() {
                    assert_eq!(u64::from(*key), value.read() % 100, "a torn entry");
                    seen.push(*key);
                }
                if guard.generation() > 0 {
                    // Pinned after the clear: the new generation is empty.
                    assert!(seen.is_empty(), "{seen:?}");
                }
                assert!(
                    guard.generation() > 0 || seen.iter().filter(|&&k| k == 1).count() == 1,
                    "key 1: {seen:?}"
                );
                assert!(seen.iter().filter(|&&k| k == 2).count() <= 1, "{seen:?}");
                assert!(seen.iter().filter(|&&k| k == 3).count() <= 1, "{seen:?}");
            })
        };
        drop(map.remove(&2));
        map.insert(3, drops.probe(3));
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
