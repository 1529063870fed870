//! Scenario 4: two concurrent `clear_async` calls and a reader. The retired ids are
//! distinct, both old generations are reclaimed, and nothing is destroyed twice.

mod common;

use common::{finish, map_with_one_value, spawn_with, unwrap};

#[test]
fn two_clears_and_a_reader() {
    common::model("two_clears_and_a_reader", || {
        let (drops, map) = map_with_one_value();

        let clearer = spawn_with(&map, |map| map.clear_async());
        let reader = spawn_with(&map, |map| {
            if let Some(v) = map.pin().get_borrowed(&1) {
                assert_eq!(v.read(), 7);
            }
        });
        let mine = map.clear_async();
        let theirs = clearer.join().unwrap();
        reader.join().unwrap();
        assert_ne!(mine.id(), theirs.id());
        let mut ids = [mine.id(), theirs.id()];
        ids.sort_unstable();
        assert_eq!(ids, [0, 1], "ids of published generations grow by one");
        assert_eq!(map.generation(), 2);
        map.reclaim();
        assert!(mine.is_reclaimed() && theirs.is_reclaimed());
        assert_eq!(drops.count(), 1);
        finish(unwrap(map));
        assert_eq!(drops.count(), 1);
    });
}
