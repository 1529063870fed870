//! Scenario 10: a ticket awaited as a future against the teardown that completes
//! it. One thread polls the ticket once, with a waker that counts its wakes (in
//! manual mode the poll runs a pass of its own), while the other drops the
//! generation's last holder (a snapshot) and runs a reclaim pass. Whatever the
//! interleaving, the poll is ready or its waker is woken afterwards: no wake-up is
//! lost between the poll's check of the flag and its registration.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};

use common::{finish, map_with_one_value, unwrap};
use loom::thread;

/// Counts its wakes (a std atomic: bookkeeping for the assertion, read after the
/// join, not part of the synchronization under test).
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn poll_vs_last_release_and_teardown() {
    common::model("poll_vs_last_release_and_teardown", || {
        let (drops, map) = map_with_one_value();
        let snapshot = map.snapshot();
        let mut retired = map.clear_async();
        let wakes = std::sync::Arc::new(Wakes::default());

        let poller = {
            let waker = Waker::from(std::sync::Arc::clone(&wakes));
            thread::spawn(move || {
                let ready = Pin::new(&mut retired)
                    .poll(&mut Context::from_waker(&waker))
                    .is_ready();
                (retired, ready)
            })
        };
        // The last holder goes, and a pass tears the generation down (unless the
        // poller's own pass got there first).
        drop(snapshot);
        map.reclaim();
        let (retired, ready) = poller.join().unwrap();

        assert!(
            ready || wakes.0.load(Ordering::SeqCst) == 1,
            "the poll was pending and its waker was never woken"
        );
        assert!(retired.is_reclaimed());
        assert_eq!(drops.count(), 1);
        drop(retired);
        finish(unwrap(map));
    });
}
