//! Scenario 5: an `insert` racing a `clear_async`. The write lands in exactly one
//! generation and is destroyed exactly once; the outcome is linearizable: either the
//! insert is ordered after the clear (the value is in the new generation) or before
//! it (the value was retired with the old one).

mod common;

use common::{Drops, finish, manual_map, unwrap};
use loom::sync::Arc;
use loom::thread;

#[test]
fn insert_vs_clear_async() {
    common::model("insert_vs_clear_async", || {
        let drops = Drops::default();
        let map = Arc::new(manual_map());

        let writer = {
            let (map, drops) = (Arc::clone(&map), drops.clone());
            thread::spawn(move || assert!(map.insert(2, drops.probe(9)).is_none()))
        };
        let retired = map.clear_async();
        writer.join().unwrap();
        map.reclaim();
        assert!(retired.is_reclaimed());
        let in_new = map.get(&2).map(|v| v.read());
        let retired_with_old = drops.count() == 1;
        assert!(
            (in_new == Some(9)) ^ retired_with_old,
            "in the new generation: {in_new:?}, destroyed with the old one: {retired_with_old}"
        );
        finish(unwrap(map));
        assert_eq!(drops.count(), 1);
    });
}
