//! Scenario 20: a map is shut down while a snapshot of it lives on another thread.
//! `AtomicMap::shutdown` keeps an owner of the map's account (its home) past the
//! map's drop, reads the account while it waits, and lets go of the owner last. The
//! snapshot's generation holds another owner: released on the other thread, its
//! teardown drops the last owner there and a pass of that thread frees the home.
//! Nothing else orders the shutdown's reads of the home before that free: only the
//! owner count's release on the shutting-down thread and its acquire by the last
//! owner (`HomeOwner::drop`, as `Arc::drop`).

mod common;

use atomic_map::Reclaimer;
use common::{Drops, flush_epoch};
use loom::thread;

#[test]
fn shutdown_while_a_snapshot_is_held() {
    common::model("shutdown_while_a_snapshot_is_held", || {
        let drops = Drops::default();
        let reclaimer = Reclaimer::manual();
        let map = common::map_on(&reclaimer, &drops);
        let snapshot = map.snapshot();
        let passes = reclaimer.clone();
        let holder = thread::spawn(move || {
            assert_eq!(snapshot.get(&1).map(|v| v.read()), Some(7));
            drop(snapshot);
            // The teardown of the snapshot's generation, then the free of the home.
            for _ in 0..3 {
                passes.reclaim();
            }
        });
        map.shutdown();
        holder.join().unwrap();
        drop(reclaimer);
        assert_eq!(drops.count(), 1, "the value was not destroyed");
        flush_epoch();
    });
}
