//! Scenario 24: a write that rehashes its shard in a generation being retired and
//! torn down. The writer (no epoch pin, its shard's lock held) inserts a third key
//! into a shard whose smallest array (4 slots under loom, whose live entries may
//! fill at most half) already holds two, so its insert builds a new array, publishes it and retires the old one through an
//! epoch deferral once the lock is released (`Locked`'s drop). Meanwhile the
//! program clears the map and runs the reclaimer, which quiesces the shard locks,
//! releases the old generation and tears its table down. The insert lands in the
//! old generation (and its value is destroyed by that teardown, with the two
//! others) or in the new one (where it stays mapped); either way each value is
//! destroyed once, and neither the rehash's retired array nor the table is freed
//! twice or used after its free (the loom-only `freed` flags of arrays and tables).

mod common;

use common::{Drops, finish, keys_in_one_shard, manual_map, spawn_with, unwrap};
use loom::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Executions in which the writer's insert rehashed (it may land in the new
/// generation's empty table instead, which makes no rehash to race).
static RACED_A_REHASH: AtomicUsize = AtomicUsize::new(0);

#[test]
fn rehashing_write_vs_teardown() {
    common::model("rehashing_write_vs_teardown", || {
        let drops = Drops::default();
        let keys = keys_in_one_shard(3);
        let map = Arc::new(manual_map());
        // Two keys fill the shard's smallest array (4 slots, at most 2 live: until
        // 2026-12-05 this scenario put three there, which since arrays are kept at
        // most half live already rehashed before the race, and the writer's insert
        // then fitted).
        for (i, &key) in keys[..2].iter().enumerate() {
            map.insert(key, drops.probe(10 + i as u64));
        }
        let third = keys[2];
        let writer = {
            let drops = drops.clone();
            spawn_with(&map, move |map| {
                // No other thread of the model inserts: a rehash between the two
                // counts is this insert's.
                let before = atomic_map::loom_rehashes();
                assert!(map.insert(third, drops.probe(13)).is_none());
                if atomic_map::loom_rehashes() > before {
                    RACED_A_REHASH.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let retired = map.clear_async();
        map.reclaim();
        writer.join().unwrap();
        for _ in 0..4 {
            if retired.is_reclaimed() {
                break;
            }
            map.reclaim();
        }
        assert!(retired.is_reclaimed());
        match map.get(&third).map(|v| v.read()) {
            // Ordered after the clear: the only value left.
            Some(13) => assert_eq!(drops.count(), 2),
            // Ordered before it: torn down with the other two.
            None => assert_eq!(drops.count(), 3),
            other => panic!("the third key reads {other:?}"),
        }
        finish(unwrap(map));
        assert_eq!(drops.count(), 3);
    });
    assert!(
        RACED_A_REHASH.load(Ordering::Relaxed) > 0,
        "no execution's insert rehashed: the model races no rehash"
    );
}
