//! Scenario 25: a releasing thread's help (`Domain::help`) against the background
//! reclaimer's thread. Two maps share a dedicated background reclaimer: `plain`
//! holds `u64`s (no destructor), `probes` holds values with one. The program
//! releases a probe, then a `u64`. Under loom a help comes before every other push
//! into a ring (`HELP_EVERY`), so the `u64`'s release helps: unless the
//! reclaimer's pass holds the lock (or has taken the ring first), it takes the
//! ring, the probe with it. The probe must then be destroyed by the reclaimer's
//! thread, never on the releasing thread, and once; the `u64` by either thread,
//! once. (A reader pinned on the probe meanwhile made a model that did not finish
//! in 5 minutes; the grace period the help starts is the pass's own
//! `start_value_grace`, which scenario 3 covers.) Every value is destroyed once (`docs/broken-builds/help-destroys-values-with-destructors.patch` fails here).

mod common;

use atomic_map::{AtomicMap, Reclaimer};
use common::{Drops, Fixed, Probe, flush_epoch};

loom::thread_local! {
    /// Set on the thread that releases the values: no destructor may run there.
    static RELEASING: std::cell::Cell<bool> = std::cell::Cell::new(false);
}

/// A probe (held for its drop count) whose destructor must not run on the
/// releasing thread.
struct OnTheReclaimer {
    _probe: Probe,
}

impl Drop for OnTheReclaimer {
    fn drop(&mut self) {
        assert!(
            !RELEASING.with(std::cell::Cell::get),
            "a value's destructor ran on the thread that released it"
        );
    }
}

#[test]
fn release_helps_its_reclaimer() {
    common::model("release_helps_its_reclaimer", || {
        let drops = Drops::default();
        let reclaimer = Reclaimer::new();
        let plain: AtomicMap<u8, u64, Fixed> = common::builder().reclaimer(&reclaimer).build();
        let probes: AtomicMap<u8, OnTheReclaimer, Fixed> =
            common::builder().reclaimer(&reclaimer).build();
        probes.insert(
            1,
            OnTheReclaimer {
                _probe: drops.probe(7),
            },
        );
        plain.insert(1, 10);

        RELEASING.with(|r| r.set(true));
        // Each release is the value's last: it is doomed into this thread's ring.
        drop(probes.remove(&1));
        drop(plain.remove(&1)); // the ring's second push: a help first
        RELEASING.with(|r| r.set(false));

        // The reclaimer's thread exits once both maps' homes are freed, i.e. once
        // every value made for them was destroyed, each counted once (a value lost
        // or destroyed twice keeps the thread from exiting, and the model fails).
        drop(plain);
        drop(probes);
        reclaimer.shutdown();
        assert_eq!(drops.count(), 1);
        flush_epoch();
    });
}
