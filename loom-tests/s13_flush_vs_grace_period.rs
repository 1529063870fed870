//! Scenario 13: `Reclaimer::flush` against a grace period held open by a pinned
//! guard. One thread releases the last handle of a removed value (doomed) and
//! flushes once (`Duration::ZERO`: one look, one pass of its own, one more look);
//! the main thread holds a guard pinned across two passes, then unpins (which
//! moves the batch to the ripe stack). `flush` may only say "idle" once the value
//! is destroyed. What it reads is racy by design; what makes the answer true is
//! `idle`'s second look under the pass lock (a flush that counts a pass sees the
//! batch it put in its grace period, `in_grace`: the pass count itself is Relaxed)
//! and `in_grace`'s Release decrement / Acquire load (a flush that sees the count
//! drop sees the batch on the ripe stack).

mod common;

use std::time::Duration;

use atomic_map::Reclaimer;
use common::{Drops, flush_epoch, unwrap};
use loom::sync::Arc;
use loom::thread;

#[test]
fn flush_vs_grace_period() {
    common::model("flush_vs_grace_period", || {
        let drops = Drops::default();
        let reclaimer = Reclaimer::manual();
        let map = Arc::new(common::builder().reclaimer(&reclaimer).build());
        map.insert(1, drops.probe(7));
        let removed = map.remove(&1).expect("the entry was there");
        // Pinned before the value is doomed: its grace period lasts until this
        // guard goes.
        let guard = map.pin();

        let flusher = {
            let (reclaimer, drops) = (reclaimer.clone(), drops.clone());
            thread::spawn(move || {
                drop(removed); // the last reference: doomed
                if reclaimer.flush(Duration::ZERO) {
                    assert_eq!(
                        drops.count(),
                        1,
                        "flush said everything released was destroyed, but the value is pending"
                    );
                }
            })
        };
        // The second pass may end before the flusher looks; the value stays in its
        // grace period until the guard goes, and on the ripe stack until a pass.
        map.reclaim();
        map.reclaim();
        drop(guard);
        flusher.join().unwrap();

        map.reclaim();
        assert_eq!(drops.count(), 1);
        drop(unwrap(map));
        drop(reclaimer);
        flush_epoch();
    });
}
