//! Scenario 12: the spare generation, built by a pass on one thread and taken by a
//! clear on another. After a clear hands its old generation off, a pass (on the
//! other thread) releases it and parks a new empty generation as the map's spare;
//! the next clear takes it with one swap and publishes it. Everything in the spare
//! was written by the pass's thread (its `Retirement` flag among others), and the
//! clearer reaches it only through the spare's slot: the slot's Release exchange
//! (`Standby::refill`) and Acquire swap (`Standby::take`) must order them. The third
//! clear retires the spare, and its ticket reads the flag.

mod common;

use common::{finish, map_with_one_value, spawn_with, unwrap};

#[test]
fn spare_built_by_a_pass_vs_a_clear() {
    common::model("spare_built_by_a_pass_vs_a_clear", || {
        let (drops, map) = map_with_one_value();
        // Generation 0 is handed off; no spare is parked yet (generation 1 is built
        // here, inline).
        let first = map.clear_async();

        // A pass releases the hand-off (generation 0 is torn down) and parks the
        // next spare.
        let pass = spawn_with(&map, |map| {
            map.reclaim();
        });
        // Takes the spare if it is parked by now (or builds one here), publishes it
        // as generation 2, and retires generation 1.
        map.clear_async();
        // Retires generation 2 (the spare, if it was taken); its ticket reads the
        // generation's flag, written when the pass built it.
        let third = map.clear_async();
        let _ = third.is_reclaimed();
        pass.join().unwrap();

        map.reclaim();
        assert!(first.is_reclaimed() && third.is_reclaimed());
        assert_eq!(drops.count(), 1);
        finish(unwrap(map));
    });
}
