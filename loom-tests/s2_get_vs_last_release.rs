//! Scenario 2: a retained `get` against the last release of the value by clear +
//! teardown. The handle keeps the value alive; it is destroyed exactly once, by
//! whichever of the two lets go last.

mod common;

use common::{Drops, finish, manual_map, unwrap};
use loom::sync::Arc;
use loom::thread;

#[test]
fn retained_get_vs_clear_and_teardown() {
    common::model("retained_get_vs_clear_and_teardown", || {
        let drops = Drops::default();
        let map = Arc::new(manual_map());
        map.insert(1, drops.probe(7));

        let reader = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                if let Some(v) = map.get(&1) {
                    assert_eq!(v.read(), 7);
                    thread::yield_now();
                    assert_eq!(v.read(), 7);
                }
            })
        };
        map.clear_async();
        map.reclaim();
        reader.join().unwrap();
        finish(unwrap(map));
        assert_eq!(drops.count(), 1);
    });
}
