//! Scenario 1: a pinned reader against `clear_async` and a reclaim pass.
//! The reader sees the old value or none, never freed memory; the value is
//! destroyed exactly once.

mod common;

use common::{finish, map_with_one_value, spawn_with, unwrap};

#[test]
fn pinned_reader_vs_clear_async() {
    common::model("pinned_reader_vs_clear_async", || {
        let (drops, map) = map_with_one_value();

        let reader = spawn_with(&map, |map| {
            let guard = map.pin();
            let seen = guard.get_borrowed(&1).map(|v| v.read());
            assert!(seen.is_none() || seen == Some(7));
            // Reading again at the end of the section: still alive.
            if seen.is_some() {
                assert_eq!(guard.get_borrowed(&1).map(|v| v.read()), seen);
            }
        });
        let retired = map.clear_async();
        map.reclaim();
        reader.join().unwrap();
        map.reclaim();
        assert!(retired.is_reclaimed());
        assert_eq!(drops.count(), 1);
        finish(unwrap(map));
        assert_eq!(drops.count(), 1);
    });
}
