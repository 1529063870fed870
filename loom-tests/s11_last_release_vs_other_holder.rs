//! Scenario 11: two holders of one removed value, on two threads, each reading it
//! and letting go, while the main thread runs reclaim passes. Whichever lets go
//! last dooms the value (a handle's last release, `ValueRef::drop`), and a pass
//! destroys it, possibly before the other thread is joined: every read, on either
//! thread, must be ordered before the destruction. What orders them is the release
//! protocol of a handle and of the doomed list: each holder's Release decrement and
//! the last one's Acquire fence (`release_units`), and the doomed list's Release push
//! and Acquire take (`reclaim/doomed.rs`). Nothing else links the two threads.

mod common;

use common::{finish, map_with_one_value, unwrap};
use loom::thread;

#[test]
fn last_release_vs_other_holder() {
    common::model("last_release_vs_other_holder", || {
        let (drops, map) = map_with_one_value();
        // The table's reference becomes `mine`; `theirs` is a second holder.
        let mine = map.remove(&1).expect("the entry was there");
        let theirs = mine.clone();

        let other = thread::spawn(move || {
            assert_eq!(theirs.read(), 7);
            drop(theirs); // possibly the last reference: doomed on this thread
        });
        assert_eq!(mine.read(), 7);
        drop(mine); // possibly the last reference: doomed on this thread
        // No guard is pinned: a pass that finds the value doomed destroys it at once,
        // maybe while the other thread is still running.
        map.reclaim();
        other.join().unwrap();
        map.reclaim();
        assert_eq!(drops.count(), 1);
        finish(unwrap(map));
        assert_eq!(drops.count(), 1);
    });
}
