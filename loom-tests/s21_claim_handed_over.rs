//! Scenario 21: a stripe's claim handed over between two running threads. The
//! first thread to count claims the stripe (`reclaim/stripe.rs`), dooms a value
//! into its ring (`reclaim/doom_ring.rs`: plain stores and a Release of the tail)
//! and exits, giving the claim back; a second thread, started alongside it and not
//! joined with it, dooms another value: if the first has exited, it takes the
//! claim over and pushes into the same ring, reading the tail (Relaxed), the
//! producer's cached head (a plain cell) and the ring's pointer (Relaxed) that its
//! predecessor left. Only the claim's hand-over (SeqCst give-back and claim) orders
//! those reads after the predecessor's writes; without it the second producer can
//! reuse the first one's slot or allocate a second ring, and a cell is lost or
//! destroyed twice. Both values are destroyed once, by the passes.

mod common;

use common::{Drops, finish, manual_map, unwrap};
use loom::sync::Arc;
use loom::thread;

#[test]
fn claim_handed_over() {
    common::model("claim_handed_over", || {
        let drops = Drops::default();
        // Built, not counted: the first thread that counts is `first`.
        let map = Arc::new(manual_map());
        let first = {
            let (map, drops) = (Arc::clone(&map), drops.clone());
            thread::spawn(move || {
                map.insert(1, drops.probe(1)); // counts: this thread claims
                map.insert(2, drops.probe(2));
                drop(map.remove(&1)); // doomed into this thread's ring
            }) // exits: the claim is given back
        };
        let second = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                // Key 2 appears once `first` inserted it (the shard lock orders
                // that insert before this remove, not `first`'s later doom).
                loop {
                    if let Some(value) = map.remove(&2) {
                        drop(value); // doomed: into the ring if `first` has exited
                        break;
                    }
                    thread::yield_now();
                }
            })
        };
        first.join().unwrap();
        second.join().unwrap();
        map.reclaim();
        map.reclaim();
        assert_eq!(drops.count(), 2, "each doomed value destroyed once");
        finish(unwrap(map));
        assert_eq!(drops.count(), 2);
    });
}
