//! Scenario 23: a write racing the release and the teardown of the generation it
//! writes into. Writers pin no epoch: a writer takes its shard's lock, then loads
//! the current generation, and the lock keeps that generation alive, because a pass
//! releases a retired generation only after it has taken and released each of the
//! map's shard locks once (`src/table/locks.rs`). Here the writer replaces key 1's
//! value while the program replaces the map's contents (key 1 mapped to a new
//! value) and runs the reclaimer (manual mode, nobody pinned, so the grace period
//! is over at once). The pass either finds the
//! writer's lock held and leaves the generation parked for a later pass (the
//! model's quiesce tries each lock once), or comes before the writer's lock (which
//! then loads the new generation), or after its release. Either way the write lands
//! in exactly one generation, linearizably, each value is destroyed exactly once,
//! and a writer that lands in the new generation reads the value it replaced
//! whole. Without the quiesce
//! (`docs/broken-builds/teardown-without-quiescing-the-writers.patch`), the
//! teardown frees the old table's array while the writer probes it: loom reports
//! the race on the array's `freed` flag.

mod common;

use common::{finish, map_with_one_value, spawn_with, unwrap};

#[test]
fn unpinned_write_vs_teardown() {
    common::model("unpinned_write_vs_teardown", || {
        let (drops, map) = map_with_one_value();
        let writer = {
            let drops = drops.clone();
            spawn_with(&map, move |map| {
                map.insert(1, drops.probe(9)).map(|old| old.read())
            })
        };
        let retired = map.replace([(1, drops.probe(5))]);
        map.reclaim();
        let replaced = writer.join().unwrap();
        // With the writer gone, the quiesce succeeds: the next passes release the
        // retired generation and tear it down.
        for _ in 0..4 {
            if retired.is_reclaimed() {
                break;
            }
            map.reclaim();
        }
        assert!(retired.is_reclaimed());
        let now = map.get(&1).map(|v| v.read());
        match replaced {
            // Ordered before the replace: the 9 was retired with the old generation
            // (destroyed by its teardown), the 7 handed back to the writer.
            Some(7) => assert_eq!(now, Some(5)),
            // Ordered after it: the 7 went with the old generation, the 5 was
            // handed back to the writer, the 9 is mapped.
            Some(5) => assert_eq!(now, Some(9)),
            other => panic!("replaced {other:?}"),
        }
        finish(unwrap(map));
        assert_eq!(drops.count(), 3);
    });
}
