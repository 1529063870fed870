//! Scenario 8: the reclaimer against a reader's last unpin. Whichever order the
//! reader's guard drop (which hands the retired table over) and the reclaim pass
//! take, the generation is torn down exactly once and only after the unpin; with the
//! background reclaimer, the map's drop lets its thread finish the work.

mod common;

use atomic_map::ReclaimMode;
use common::{Drops, finish, map_with_one_value, spawn_with, unwrap};
use loom::sync::Arc;

#[test]
fn manual_reclaim_vs_last_unpin() {
    common::model("manual_reclaim_vs_last_unpin", || {
        let (drops, map) = map_with_one_value();
        let reader = spawn_with(&map, |map| {
            let guard = map.pin();
            let seen = guard.get(&1).map(|v| v.read());
            drop(guard); // possibly the last holder of the retired generation
            seen
        });
        let retired = map.clear_async();
        map.reclaim();
        let seen = reader.join().unwrap();
        assert!(seen.is_none() || seen == Some(7));
        map.reclaim();
        assert!(retired.is_reclaimed());
        assert_eq!(drops.count(), 1);
        finish(unwrap(map));
    });
}

#[test]
fn background_reclaimer_vs_last_unpin() {
    common::model("background_reclaimer_vs_last_unpin", || {
        let drops = Drops::default();
        let map = Arc::new(
            common::builder()
                .reclaim_mode(ReclaimMode::Background)
                .build(),
        );
        map.insert(1u8, drops.probe(7));

        let reader = spawn_with(&map, |map| {
            let guard = map.pin();
            if let Some(v) = guard.get(&1) {
                assert_eq!(v.read(), 7);
            }
        });
        map.clear_async();
        reader.join().unwrap();
        // Closing the reclaimer: its thread makes a last pass, exits, and is joined.
        unwrap(map).shutdown();
        common::flush_epoch();
    });
}
