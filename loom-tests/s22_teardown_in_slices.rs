//! Scenario 22: a teardown in slices on a background reclaimer. The table holds a
//! value in each of its two shards; under loom a slice is one smallest array
//! (`TEARDOWN_SLICE` in the shim), so the reclaimer's thread drains shard 0 (whose
//! value a handle still holds), queues the rest as a job of its own, and drains
//! shard 1 (the other value, destroyed there) when that job runs. Meanwhile the
//! program reads the ticket, drops its handle and the map, and shuts the reclaimer
//! down. The ticket may read reclaimed only once both slices ran (so the unheld
//! value is destroyed by then), each value is destroyed exactly once, and the held
//! one only after its handle goes. (Each slice here ends at the end of an array, so
//! a slice's place inside an array is not exercised: a unit test in
//! `src/table/mod.rs` covers that.)

mod common;

use atomic_map::Reclaimer;
use common::{Drops, flush_epoch, one_key_per_shard};

#[test]
fn teardown_in_slices() {
    common::model("teardown_in_slices", || {
        let drops = Drops::default();
        let reclaimer = Reclaimer::new();
        let map = common::builder().reclaimer(&reclaimer).build();
        let (first, second) = one_key_per_shard();
        map.insert(first, drops.probe(1));
        map.insert(second, drops.probe(2));
        let held = map.get(&first).unwrap();

        let retired = map.clear_async();
        // Racing the reclaimer's thread: after its first slice only `first`'s entry
        // (held) has left the table, so a ticket read reclaimed there would see no
        // value destroyed.
        if retired.is_reclaimed() {
            assert_eq!(
                drops.count(),
                1,
                "the ticket read reclaimed after the first slice"
            );
        }
        assert_eq!(held.read(), 1);
        drop(held);
        drop(map);
        // The thread exits once its last user and the map's account are gone, i.e.
        // after every slice and the held value's destruction; `shutdown` joins it.
        reclaimer.shutdown();
        assert!(retired.is_reclaimed());
        assert_eq!(drops.count(), 2);
        flush_epoch();
    });
}
