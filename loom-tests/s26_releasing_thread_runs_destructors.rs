//! Scenario 26: a releasing thread's help runs the destructors of a map built
//! with `destructors_on_releasing_threads` (`Domain::help`), racing the
//! reclaimer's thread for the ring and the pass lock. The map is on a dedicated
//! background reclaimer, whose thread exits with its last user. The program
//! releases two probes; under loom a help comes before every other push into a
//! ring (`HELP_EVERY`), so the second release helps: unless the reclaimer's pass
//! holds the lock (or took the ring first), it takes both probes, starts their
//! grace period and, when no other thread is pinned, destroys them on the
//! releasing thread. Every probe is destroyed once (the reclaimer's thread exits
//! only then), on whichever thread; and in some execution on the releasing thread
//! (`docs/broken-builds/helps-leave-destructors-to-the-reclaimer.patch` fails
//! here, as in the unit test).

mod common;

use atomic_map::{AtomicMap, Reclaimer};
use common::{Drops, Fixed, Probe, flush_epoch};
use std::sync::atomic::{AtomicBool, Ordering};

loom::thread_local! {
    /// Set on the thread that releases the values.
    static RELEASING: std::cell::Cell<bool> = std::cell::Cell::new(false);
}

/// Whether some execution destroyed a probe on the releasing thread (a std
/// atomic: bookkeeping across executions, not part of what is checked).
static RAN_ON_THE_RELEASING_THREAD: AtomicBool = AtomicBool::new(false);

/// A probe (held for its drop count) that records whether its destructor ran on
/// the releasing thread.
struct Recorded {
    _probe: Probe,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if RELEASING.with(std::cell::Cell::get) {
            RAN_ON_THE_RELEASING_THREAD.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn releasing_thread_runs_destructors() {
    common::model("releasing_thread_runs_destructors", || {
        let drops = Drops::default();
        let reclaimer = Reclaimer::new();
        let map: AtomicMap<u8, Recorded, Fixed> = common::builder()
            .reclaimer(&reclaimer)
            .destructors_on_releasing_threads(true)
            .build();
        map.insert(
            1,
            Recorded {
                _probe: drops.probe(7),
            },
        );
        map.insert(
            2,
            Recorded {
                _probe: drops.probe(8),
            },
        );

        RELEASING.with(|r| r.set(true));
        // Each release is the value's last: it is doomed into this thread's ring.
        drop(map.remove(&1));
        drop(map.remove(&2)); // the ring's second push: a help first
        RELEASING.with(|r| r.set(false));

        // The reclaimer's thread exits once the map's home is freed, i.e. once
        // both values were destroyed, each counted once.
        drop(map);
        reclaimer.shutdown();
        assert_eq!(drops.count(), 2);
        flush_epoch();
    });
    assert!(
        RAN_ON_THE_RELEASING_THREAD.load(Ordering::SeqCst),
        "no execution ran a destructor in the releasing thread's help"
    );
}
