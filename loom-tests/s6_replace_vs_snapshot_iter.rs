//! Scenario 6: `replace` against a snapshot iterator. The iterator sees all of one
//! generation and nothing of the other.

mod common;

use common::{Drops, finish, manual_map, spawn_with, unwrap};
use loom::sync::Arc;

#[test]
fn replace_vs_snapshot_iterator() {
    common::model("replace_vs_snapshot_iterator", || {
        let drops = Drops::default();
        let map = Arc::new(manual_map());
        map.insert(1, drops.probe(1));
        map.insert(2, drops.probe(2));

        let iterator = spawn_with(&map, |map| {
            let snap = map.snapshot();
            let mut seen: Vec<(u8, u64)> = snap.iter().map(|(k, v)| (k, v.read())).collect();
            seen.sort_unstable();
            assert!(
                seen == [(1, 1), (2, 2)] || seen == [(3, 3)],
                "mixed generations: {seen:?}"
            );
        });
        map.replace([(3, drops.probe(3))]);
        iterator.join().unwrap();
        map.reclaim();
        assert_eq!(drops.count(), 2);
        finish(unwrap(map));
        assert_eq!(drops.count(), 3);
    });
}
