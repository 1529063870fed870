//! Scenario 14: a ticket seen reclaimed on another thread than the pass that tore
//! its generation down. A waiter that sees `is_reclaimed()` must see the teardown's
//! effects: the map's counters updated (`Stats::reclaimed_generations`,
//! `reclaimed_values`). Nothing links the two threads but the ticket's flag: its
//! Release store (`Retirement::mark_torn_down`) and Acquire load (`is_torn_down`).

mod common;

use common::{finish, map_with_one_value, spawn_with, unwrap};

#[test]
fn ticket_seen_reclaimed_elsewhere() {
    common::model("ticket_seen_reclaimed_elsewhere", || {
        let (drops, map) = map_with_one_value();
        let retired = map.clear_async();

        let pass = spawn_with(&map, |map| {
            map.reclaim();
        });
        if retired.is_reclaimed() {
            let stats = map.stats();
            assert_eq!(
                (stats.reclaimed_generations, stats.reclaimed_values),
                (1, 1),
                "the ticket is reclaimed but the counters do not show it"
            );
        }
        pass.join().unwrap();

        map.reclaim();
        assert!(retired.is_reclaimed());
        assert_eq!(drops.count(), 1);
        finish(unwrap(map));
    });
}
