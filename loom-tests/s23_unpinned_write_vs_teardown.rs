//! Scenario 23: a write racing the release and the teardown of the generation it
//! writes into. Writers pin no epoch: a writer takes its shard's lock, then loads
//! the current generation, and the lock keeps that generation alive, because a pass
//! releases a retired generation only after it has taken and released each of the
//! map's shard locks once, after it took the generation off the parked list
//! (`src/table/locks.rs`). Here a writer replaces key 1's value while a second
//! thread replaces the map's contents (key 1 mapped to a new value) and the program
//! runs the reclaimer (manual mode, nobody pinned, so the grace period is over at
//! once), all three at once, with an earlier generation already parked. The pass
//! either finds the writer's lock held and leaves the generations parked for a
//! later pass (the model's quiesce tries each lock once), or comes before the
//! writer's lock (which then loads the new generation), or after its release.
//! Either way the write lands in exactly one generation, linearizably, each value is
//! destroyed exactly once, and a writer that lands in the new generation reads the
//! value it replaced whole. Broken builds it fails on: without the quiesce
//! (`docs/broken-builds/teardown-without-quiescing-the-writers.patch`) or with the
//! quiesce made before the pass takes the parked list
//! (`docs/broken-builds/quiesce-before-the-take.patch`), the teardown frees the
//! table while the writer is in it: loom reports the race on the table's `freed`
//! flag (or the writer's read of the freed memory).

mod common;

use common::{Drops, finish, manual_map, spawn_with, unwrap};
use loom::sync::Arc;

#[test]
fn unpinned_write_vs_teardown() {
    common::model("unpinned_write_vs_teardown", || {
        let drops = Drops::default();
        let map = Arc::new(manual_map());
        // A first clear registers the map with its reclaimer and leaves the first
        // generation parked, so that the pass below always has a parked list to
        // take: the racing replace may hand its generation off between the pass's
        // quiesce and its take, where a quiesce made before the take would not
        // cover a writer that loaded that generation in between.
        map.clear_async();
        map.insert(1, drops.probe(7));
        let writer = {
            let drops = drops.clone();
            spawn_with(&map, move |map| {
                map.insert(1, drops.probe(9)).map(|old| old.read())
            })
        };
        let replacer = {
            let drops = drops.clone();
            spawn_with(&map, move |map| map.replace([(1, drops.probe(5))]))
        };
        map.reclaim();
        let replaced = writer.join().unwrap();
        let retired = replacer.join().unwrap();
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
