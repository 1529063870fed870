//! Scenario 8: the reclaimer against a reader's last unpin. Whichever order the
//! reader's guard drop (which hands the retired table over) and the reclaim pass
//! take, the generation is torn down exactly once and only after the unpin; with a
//! dedicated background reclaimer, the reclaimer's `shutdown` waits for its thread to
//! finish the map's work and exit.

mod common;

use atomic_map::Reclaimer;
use common::{Drops, finish, map_with_one_value, spawn_with, unwrap};
use loom::sync::Arc;

#[test]
fn manual_reclaim_vs_last_unpin() {
    common::model("manual_reclaim_vs_last_unpin", || {
        let (drops, map) = map_with_one_value();
        let reader = spawn_with(&map, |map| {
            let guard = map.pin();
            let seen = guard.get_borrowed(&1).map(|v| v.read());
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
        let reclaimer = Reclaimer::new();
        let map = Arc::new(common::builder().reclaimer(&reclaimer).build());
        map.insert(1u8, drops.probe(7));

        let reader = spawn_with(&map, |map| {
            let guard = map.pin();
            if let Some(v) = guard.get_borrowed(&1) {
                assert_eq!(v.read(), 7);
            }
        });
        map.clear_async();
        reader.join().unwrap();
        // The reclaimer's thread exits once its last user and the map's account are
        // gone, i.e. after the map's last value is destroyed; `shutdown` joins it.
        drop(unwrap(map));
        reclaimer.shutdown();
        assert_eq!(drops.count(), 1);
        common::flush_epoch();
    });
}
