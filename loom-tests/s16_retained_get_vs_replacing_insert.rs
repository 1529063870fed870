//! Scenario 16: a retained `get` (a lock-free lookup, then a compare-and-swap on
//! the value's count that succeeds only while a table maps the value) racing a
//! replacing `insert` of the same key and the release of the old value. The key is
//! mapped throughout, so `get` must return a handle, on the old value or the new,
//! never `None`: a reader that finds the old value unmapped probes again, and the
//! unmapping's Release (after the slot was changed), paired with the reader's
//! Acquire, makes it see the new slot. The old value, never revived, is destroyed
//! once, after its last holder.

mod common;

use common::{finish, manual_map, map_with_one_value, spawn_with, unwrap};

#[test]
fn retained_get_vs_replacing_insert() {
    common::model("retained_get_vs_replacing_insert", || scenario(false));
}

/// The same, with the one stripe's claim held by another thread (the shim gives
/// it to the first thread that counts, until that thread exits): the main thread's
/// release then pushes the old value onto the doomed list, whose tagged link a
/// stale reader reads as "unmapped", where the claimant puts it into its ring with
/// a tag.
#[test]
fn retained_get_vs_replacing_insert_claim_elsewhere() {
    common::model("retained_get_vs_replacing_insert_claim_elsewhere", || {
        scenario(true)
    });
}

fn scenario(claim_elsewhere: bool) {
    // The claimant counts first, then waits until the scenario is over: its exit
    // would give the claim back.
    let claimant = claim_elsewhere.then(|| {
        let (counted, claimed) = loom::sync::mpsc::channel();
        let (over, wait) = loom::sync::mpsc::channel::<()>();
        let thread = loom::thread::spawn(move || {
            let scratch = manual_map();
            scratch.insert(0, common::Drops::default().probe(0));
            finish(scratch);
            counted.send(()).unwrap();
            wait.recv().unwrap();
        });
        claimed.recv().unwrap();
        (over, thread)
    });
    let (drops, map) = map_with_one_value();

    let reader = spawn_with(&map, |map| {
        let handle = map.get(&1).expect("key 1 is mapped throughout");
        let v = handle.read();
        assert!(v == 7 || v == 8, "read {v}");
    });
    let probe = drops.probe(8);
    let old = map.insert(1, probe).expect("key 1 was mapped");
    assert_eq!(old.read(), 7);
    drop(old); // the old value's last reference, unless the reader holds one
    map.reclaim();
    reader.join().unwrap();
    map.reclaim();
    map.reclaim();
    assert_eq!(drops.count(), 1, "the old value, destroyed once");
    finish(unwrap(map));
    assert_eq!(drops.count(), 2);
    if let Some((over, thread)) = claimant {
        over.send(()).unwrap();
        thread.join().unwrap();
    }
}
