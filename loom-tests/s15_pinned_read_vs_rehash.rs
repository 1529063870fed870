//! Scenario 15: a pinned reader probing a shard's array while a writer inserts a
//! key, which makes the shard rehash, and removes the key it is reading: the new
//! array is published (Release, against the reader's Acquire load) and the old one is
//! retired through an epoch deferral. The reader, pinned before, must be able to
//! finish probing the old array (the grace period: under loom an array's free is a
//! write loom sees) and must see the new one as the rehash built it (the
//! publication).

mod common;

use common::{finish, keys_in_one_shard, manual_map, unwrap};
use loom::sync::Arc;
use loom::thread;

#[test]
fn pinned_read_vs_rehash() {
    common::model("pinned_read_vs_rehash", || {
        let drops = common::Drops::default();
        let keys = keys_in_one_shard(3);
        let (a, b, d) = (keys[0], keys[1], keys[2]);
        let map = Arc::new(manual_map());
        // Two keys fill the shard's smallest array: 4 slots, of which live entries
        // may fill at most half (`MAX_LIVE` in `src/table/mod.rs`).
        map.insert(a, drops.probe(10));
        map.insert(b, drops.probe(11));

        let reader = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                let guard = map.pin();
                if let Some(v) = guard.get_borrowed(&a) {
                    assert_eq!(v.read(), 10);
                }
                // Probes that land in whichever array is current: `b` is mapped
                // throughout, in the old array or the new one.
                assert_eq!(guard.get_borrowed(&b).map(|v| v.read()), Some(11));
                // `d`, inserted meanwhile: absent, or published whole.
                if let Some(v) = guard.get_borrowed(&d) {
                    assert_eq!(v.read(), 13);
                }
            })
        };
        // Insert `d`: a third live entry in 4 slots makes the shard rehash into 8
        // while the reader may be probing the old array (checked: the count of
        // rehashes). Then remove `a` from the new one. (With the removal first, as
        // this scenario had it until arrays were kept at most half live, `d`
        // fitted in the old array and nothing rehashed, and the broken builds of
        // the array's publication and grace period passed.)
        let before = atomic_map::loom_rehashes();
        map.insert(d, drops.probe(13));
        assert_eq!(
            atomic_map::loom_rehashes(),
            before + 1,
            "the race's insert must rehash the shard"
        );
        drop(map.remove(&a));
        map.reclaim();
        reader.join().unwrap();
        map.reclaim();
        assert_eq!(drops.count(), 1);
        let map = unwrap(map);
        assert_eq!(map.len(), 2);
        finish(map);
        assert_eq!(drops.count(), 3);
    });
}
