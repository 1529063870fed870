//! Scenario 9: two maps sharing one reclaimer. A generation of each is retired
//! concurrently (one clear per thread), and one map is dropped meanwhile, with a
//! value of it still held by a handle. Each value is destroyed exactly once, the
//! dropped map's held value only after its handle goes, and each map's statistics
//! count only its own values; the shared reclaimer's passes (run by the model, in
//! manual mode, one of them racing the drop) finish both maps' work.

mod common;

use atomic_map::Reclaimer;
use common::{Drops, Map, flush_epoch};
use loom::sync::Arc;
use loom::thread;

#[test]
fn two_maps_one_reclaimer() {
    common::model("two_maps_one_reclaimer", || {
        let (drops_a, drops_b) = (Drops::default(), Drops::default());
        let shared = Reclaimer::manual();
        let a: Arc<Map> = Arc::new(common::builder().reclaimer(&shared).build());
        let b: Map = common::builder().reclaimer(&shared).build();
        a.insert(1, drops_a.probe(1));
        b.insert(1, drops_b.probe(2));
        b.insert(2, drops_b.probe(3));
        let held = b.get(&2).unwrap();

        let other = {
            let (a, shared) = (Arc::clone(&a), shared.clone());
            thread::spawn(move || {
                let retired = a.clear_async();
                drop(a);
                // A pass racing b's clear and drop on the other thread.
                shared.reclaim();
                retired
            })
        };
        // Meanwhile: clear b and drop it, with one of its values still held.
        let retired_b = b.clear_async();
        drop(b);
        let retired_a = other.join().unwrap();

        // The grace period of a value released later takes a few passes.
        for _ in 0..2 {
            shared.reclaim();
        }
        assert!(retired_a.is_reclaimed() && retired_b.is_reclaimed());
        assert_eq!(drops_a.count(), 1);
        assert_eq!(drops_b.count(), 1, "b's held value must outlive its map");
        assert_eq!(held.read(), 3);
        let stats = a.stats();
        assert_eq!(
            (stats.reclaimed_values, stats.reclaimed_generations),
            (1, 1)
        );

        drop(held);
        for _ in 0..3 {
            shared.reclaim();
        }
        assert_eq!(drops_b.count(), 2);
        let a = common::unwrap(a);
        drop(a);
        drop(shared);
        assert_eq!((drops_a.count(), drops_b.count()), (1, 2));
        flush_epoch();
    });
}
