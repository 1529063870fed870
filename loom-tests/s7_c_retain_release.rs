//! Scenario 7: C-style retain/release (the raw-pointer functions the C ABI calls)
//! against generation teardown and the map's drop. The destructor runs exactly
//! once, after the last release.

mod common;

use atomic_map::ValueRef;
use common::{flush_epoch, map_with_one_value, unwrap};
use loom::thread;

/// A raw value pointer as C holds it.
struct CHeld(*const common::Probe);
// SAFETY: the pointer owns a reference; `Probe` is Send + Sync.
unsafe impl Send for CHeld {}

#[test]
fn c_retain_release_vs_teardown_and_map_drop() {
    common::model("c_retain_release_vs_teardown_and_map_drop", || {
        let (drops, map) = map_with_one_value();
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
        flush_epoch();
        assert_eq!(drops.count(), 1);
    });
}
