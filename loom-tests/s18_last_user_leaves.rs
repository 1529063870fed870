//! Scenario 18: a reclaimer's last user leaves. A domain counts its users (maps, and
//! `Reclaimer` handles) under a lock (`Domain::remove_user`): the last one decides
//! under it and sets the `unused` flag there, and the background thread reads the
//! flag under it before it checks that nothing is queued. Two users of a manual
//! reclaimer leave at once on two threads: exactly one of them is the last and
//! finishes the map's work. A map is built, used and dropped on a dedicated
//! background reclaimer, then its handle shut down: the thread exits only after
//! that work is done.

mod common;

use atomic_map::Reclaimer;
use common::{Drops, flush_epoch};
use loom::thread;

#[test]
fn two_users_leave_a_manual_reclaimer_at_once() {
    common::model("two_users_leave_a_manual_reclaimer_at_once", || {
        let drops = Drops::default();
        let reclaimer = Reclaimer::manual();
        let map = common::map_on(&reclaimer, &drops);

        // The map's handle on the reclaimer goes on one thread, the model's on the
        // other: whichever is last runs the passes that destroy the value.
        let other = thread::spawn(move || drop(map));
        drop(reclaimer);
        other.join().unwrap();
        assert_eq!(
            drops.count(),
            1,
            "the last user of the reclaimer left its work undone"
        );
        flush_epoch();
    });
}

#[test]
fn background_thread_exits_after_the_last_users_work() {
    common::model("background_thread_exits_after_the_last_users_work", || {
        let drops = Drops::default();
        // The thread starts before the map exists: it may see nothing queued and no
        // home before the map's work arrives.
        let reclaimer = Reclaimer::new();
        let map = common::map_on(&reclaimer, &drops);
        drop(map);
        // The last user: `shutdown` joins the thread once it has exited.
        reclaimer.shutdown();
        assert_eq!(
            drops.count(),
            1,
            "the reclaimer's thread exited with its last user's work left"
        );
        flush_epoch();
    });
}
