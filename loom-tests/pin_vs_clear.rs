//! Loom: a pinned reader against `clear_async` and a manual reclaim.
//!
//! The reader sees the old value or none, never freed memory, and the value is
//! destroyed exactly once, after the reader unpinned. Runs only with
//! `--features loom` (see `docs/DESIGN.md`, "What loom checks").

use std::sync::atomic::{AtomicUsize, Ordering};

use atomic_map::{Builder, ReclaimMode};
use loom::sync::Arc;
use loom::thread;

/// A value that records its destruction and checks it is read only while alive.
struct Probe {
    alive: std::sync::atomic::AtomicBool,
    drops: std::sync::Arc<AtomicUsize>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        assert!(self.alive.swap(false, Ordering::SeqCst), "dropped twice");
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn pinned_reader_vs_clear_async() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        RUNS.fetch_add(1, Ordering::SeqCst);
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let map = Arc::new(
            Builder::new()
                .reclaim_mode(ReclaimMode::Manual)
                .shards(2)
                .build(),
        );
        map.insert(
            1u8,
            Probe {
                alive: true.into(),
                drops: drops.clone(),
            },
        );

        let reader = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                let guard = map.pin();
                if let Some(v) = guard.get(&1) {
                    assert!(v.alive.load(Ordering::SeqCst), "read a destroyed value");
                }
            })
        };
        map.clear_async();
        map.reclaim();
        reader.join().unwrap();
        map.reclaim();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "destroyed exactly once, once unpinned"
        );
    });
    eprintln!("explored {} interleavings", RUNS.load(Ordering::SeqCst));
}
