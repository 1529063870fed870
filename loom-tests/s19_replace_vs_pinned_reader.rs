//! Scenario 19: a `replace` (a populated table built on the writer's thread, then
//! published) racing a pinned reader that follows the map's `pinned` pointer with
//! no count, and reclaim passes. The reader sees all of the old contents or all of
//! the new, each entry as it was built (the pointer's Release publication, its
//! Acquire load); the old generation, which the reader may still be in, is torn
//! down only after the reader unpins (the slot's reference released after a grace
//! period). Each value dropped once.

mod common;

use common::{finish, map_with_one_value, spawn_with, unwrap};

#[test]
fn replace_vs_pinned_reader() {
    common::model("replace_vs_pinned_reader", || {
        let (drops, map) = map_with_one_value();
        let new = drops.probe(8);

        let reader = spawn_with(&map, |map| {
            let guard = map.pin();
            let old = guard.get_borrowed(&1).map(|v| v.read());
            let new = guard.get_borrowed(&2).map(|v| v.read());
            // One generation: the old one (key 1 → 7) or the new one (key 2 → 8).
            assert!(
                matches!((old, new), (Some(7), None) | (None, Some(8))),
                "{old:?} {new:?}"
            );
            // Still readable at the end of the section, whatever was reclaimed.
            assert_eq!(guard.get_borrowed(&1).map(|v| v.read()), old);
        });
        let retired = map.replace([(2, new)]);
        map.reclaim();
        reader.join().unwrap();
        for _ in 0..2 {
            map.reclaim();
        }
        assert!(retired.is_reclaimed());
        assert_eq!(drops.count(), 1);
        finish(unwrap(map));
        assert_eq!(drops.count(), 2);
    });
}
