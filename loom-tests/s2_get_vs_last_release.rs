//! Scenario 2: a retained `get` against the last release of the value by clear +
//! teardown. The handle keeps the value alive; it is destroyed exactly once, by
//! whichever of the two lets go last.

mod common;

use common::{finish, map_with_one_value, spawn_with, unwrap};
use loom::thread;

#[test]
fn retained_get_vs_clear_and_teardown() {
    common::model("retained_get_vs_clear_and_teardown", || {
        let (drops, map) = map_with_one_value();

        let reader = spawn_with(&map, |map| {
            if let Some(v) = map.get(&1) {
                assert_eq!(v.read(), 7);
                thread::yield_now();
                assert_eq!(v.read(), 7);
            }
        });
        map.clear_async();
        map.reclaim();
        reader.join().unwrap();
        finish(unwrap(map));
        assert_eq!(drops.count(), 1);
    });
}
