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

/// A probe (held for its drop count) that records whether its destructor ran on
/// the releasing thread. Recorded, not asserted there: a destructor's panic is
/// contained and counted (`stats().destructor_panics`), so an assertion in it
/// would fail the model only in a debug build (through the help's own
/// `debug_assert`), and `docs/broken-builds/run.sh` runs the models optimized.
struct OnTheReclaimer {
    _probe: Probe,
    on_the_releasing_thread: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for OnTheReclaimer {
    fn drop(&mut self) {
        if RELEASING.with(std::cell::Cell::get) {
            // A std atomic: bookkeeping for the assertion, not part of the
            // synchronization under test.
            self.on_the_releasing_thread
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[test]
fn release_helps_its_reclaimer() {
    common::model("release_helps_its_reclaimer", || {
        let drops = Drops::default();
        let wrong_thread = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let reclaimer = Reclaimer::new();
        let plain: AtomicMap<u8, u64, Fixed> = common::builder().reclaimer(&reclaimer).build();
        let probes: AtomicMap<u8, OnTheReclaimer, Fixed> =
            common::builder().reclaimer(&reclaimer).build();
        probes.insert(
            1,
            OnTheReclaimer {
                _probe: drops.probe(7),
                on_the_releasing_thread: std::sync::Arc::clone(&wrong_thread),
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
        assert_eq!(
            wrong_thread.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "a value's destructor ran on the thread that released it"
        );
        flush_epoch();
    });
}
