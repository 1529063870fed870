//! Scenario 7: C-style retain/release (the raw-pointer functions the C ABI calls)
//! against generation teardown and the map's drop. The destructor runs exactly
//! once, after the last release. The model keeps a handle on the map's (manual)
//! reclaimer, so that the map's drop is not its last user and the model runs the
//! passes that destroy the value after the C release.

mod common;

use atomic_map::{Reclaimer, ValueRef};
use common::{Drops, flush_epoch, unwrap};
use loom::thread;

/// A raw value pointer as C holds it.
struct CHeld(*const common::Probe);
// SAFETY: the pointer owns a reference; `Probe` is Send + Sync.
unsafe impl Send for CHeld {}

#[test]
fn c_retain_release_vs_teardown_and_map_drop() {
    common::model("c_retain_release_vs_teardown_and_map_drop", || {
        let drops = Drops::default();
        let reclaimer = Reclaimer::manual();
        let map = loom::sync::Arc::new(common::builder().reclaimer(&reclaimer).build());
        map.insert(1, drops.probe(7));
        let held = CHeld(ValueRef::into_raw(map.get(&1).unwrap()));

        let c_thread = thread::spawn(move || {
            let held = held;
            // SAFETY: `held` owns a reference for the whole block; each retain is
            // matched by one release, and the last release gives up the original.
            unsafe {
                ValueRef::increment_count(held.0);
                assert_eq!((*held.0).read(), 7);
                ValueRef::decrement_count(held.0);
                thread::yield_now();
                assert_eq!((*held.0).read(), 7);
                ValueRef::decrement_count(held.0);
            }
        });
        map.clear_async();
        map.reclaim();
        drop(unwrap(map));
        c_thread.join().unwrap();
        // The grace period of a value doomed by the C release takes a few passes.
        for _ in 0..3 {
            reclaimer.reclaim();
        }
        assert_eq!(drops.count(), 1);
        drop(reclaimer);
        flush_epoch();
    });
}
