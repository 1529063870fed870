//! Scenario 3: `remove` against a borrowed read of the same key under a pin. The
//! removed value is doomed, not freed: the reclaimer destroys it only after a grace
//! period past the pinned reader (see `src/doomed.rs`).

mod common;

use common::{finish, map_with_one_value, spawn_with, unwrap};
use loom::thread;

#[test]
fn remove_vs_pinned_read() {
    common::model("remove_vs_pinned_read", || {
        let (drops, map) = map_with_one_value();

        let reader = spawn_with(&map, |map| {
            let guard = map.pin();
            if let Some(v) = guard.get_borrowed(&1) {
                thread::yield_now();
                assert_eq!(v.read(), 7);
            }
        });
        let removed = map.remove(&1).expect("the entry was there");
        assert_eq!(removed.read(), 7);
        drop(removed); // the last reference: doomed, not freed here
        map.reclaim(); // may run while the reader is still pinned
        reader.join().unwrap();
        map.reclaim(); // the reader is gone: the grace period is over
        assert_eq!(drops.count(), 1);
        finish(unwrap(map));
        assert_eq!(drops.count(), 1);
    });
}
