//! Scenario 28: a function registered with `Retired::on_reclaimed` against the
//! teardown that runs it. One thread registers it, while the other drops the
//! generation's last holder (a snapshot) and runs a reclaim pass. Whatever the
//! interleaving, the function runs exactly once: at once (the registration saw the
//! flag up) or from the teardown (it was registered before the teardown took the
//! registry); never lost between the check of the flag and the registration.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{finish, map_with_one_value, unwrap};
use loom::thread;

#[test]
fn on_reclaimed_vs_last_release_and_teardown() {
    common::model("on_reclaimed_vs_last_release_and_teardown", || {
        let (drops, map) = map_with_one_value();
        let snapshot = map.snapshot();
        let retired = map.clear_async();
        // Counts the runs (a std atomic: bookkeeping for the assertion, read after
        // the join, not part of the synchronization under test).
        let runs = std::sync::Arc::new(AtomicUsize::new(0));

        let registrar = {
            let runs = std::sync::Arc::clone(&runs);
            thread::spawn(move || {
                retired.on_reclaimed(move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                });
                retired
            })
        };
        // The last holder goes, and a pass tears the generation down.
        drop(snapshot);
        map.reclaim();
        let retired = registrar.join().unwrap();

        assert!(retired.is_reclaimed());
        let ran = runs.load(Ordering::SeqCst);
        assert_eq!(ran, 1, "the function ran {ran} times");
        assert_eq!(drops.count(), 1);
        drop(retired);
        finish(unwrap(map));
    });
}
