//! Helpers shared by the integration tests: values that count their drops and carry
//! a canary that readers check.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atomic_map::AtomicMap;

/// Written into every live `Tracked`; overwritten on drop.
pub const LIVE: u64 = 0x5AFE_C0DE_5AFE_C0DE;
/// Written by `Tracked::drop`.
pub const DEAD: u64 = 0xDEAD_DEAD_DEAD_DEAD;

/// Per-value drop counters for up to `capacity` values, plus a total, and how
/// many drops ran on threads marked with [`mark_as_worker`].
pub struct DropLedger {
    drops: Vec<AtomicU8>,
    created: AtomicUsize,
    pub dropped: AtomicUsize,
    dropped_on_workers: AtomicUsize,
}

thread_local! {
    static WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as one of a test's workers: a `Tracked` dropped on it is
/// counted in [`DropLedger::dropped_on_workers`].
pub fn mark_as_worker() {
    WORKER.with(|w| w.set(true));
}

impl DropLedger {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(DropLedger {
            drops: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            created: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            dropped_on_workers: AtomicUsize::new(0),
        })
    }

    /// A fresh value with the next id.
    pub fn make(self: &Arc<Self>, payload: u64) -> Tracked {
        let id = self.created.fetch_add(1, Ordering::Relaxed);
        assert!(id < self.drops.len(), "ledger too small");
        Tracked {
            canary: AtomicU64::new(LIVE),
            id,
            payload,
            ledger: Arc::clone(self),
        }
    }

    pub fn created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// How many values were dropped on threads marked with [`mark_as_worker`].
    pub fn dropped_on_workers(&self) -> usize {
        self.dropped_on_workers.load(Ordering::SeqCst)
    }

    /// Asserts that every value created so far was dropped exactly once.
    pub fn assert_all_dropped_once(&self) {
        let created = self.created();
        for (id, d) in self.drops[..created].iter().enumerate() {
            assert_eq!(
                d.load(Ordering::SeqCst),
                1,
                "value {id} dropped a wrong number of times"
            );
        }
        assert_eq!(self.dropped(), created);
    }
}

/// A value that records its drop in a ledger and carries a canary.
pub struct Tracked {
    canary: AtomicU64,
    pub id: usize,
    pub payload: u64,
    ledger: Arc<DropLedger>,
}

impl Tracked {
    /// Panics if the value has been dropped (the canary was overwritten), at the
    /// caller's line.
    #[track_caller]
    pub fn check(&self) -> u64 {
        let c = self.canary.load(Ordering::SeqCst);
        assert_eq!(c, LIVE, "read a dropped value (id {})", self.id);
        self.payload
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let was = self.canary.swap(DEAD, Ordering::SeqCst);
        assert_eq!(was, LIVE, "value {} dropped twice", self.id);
        let before = self.ledger.drops[self.id].fetch_add(1, Ordering::SeqCst);
        assert_eq!(before, 0, "value {} dropped twice", self.id);
        self.ledger.dropped.fetch_add(1, Ordering::SeqCst);
        if WORKER.with(std::cell::Cell::get) {
            self.ledger
                .dropped_on_workers
                .fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Repeats `map.reclaim()` until `done()` holds, or panics after `limit`.
///
/// Deferred value frees wait in per-thread epoch bags; reclaiming from this thread
/// pushes the epoch along until they have run.
pub fn reclaim_until<K, V>(map: &AtomicMap<K, V>, limit: Duration, done: impl Fn() -> bool)
where
    K: Eq + std::hash::Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "reclamation did not finish in {limit:?}: {:?}",
            map.stats()
        );
        map.reclaim();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A hasher that sends every key to one of three homes: the hash's low bits, which
/// pick the slot, are `base + key % 3` (for a `u64` key; other keys are folded
/// first); its high bits, which pick the shard and the tag, are constant. Keys
/// collide in runs, so that removals land in the middle and at the ends of runs
/// and lookups probe past removed slots.
#[derive(Clone, Copy, Debug)]
pub struct FewHomes {
    base: u64,
}

impl FewHomes {
    /// Homes 0, 1 and 2: the first slots of every array.
    pub const FIRST_SLOTS: FewHomes = FewHomes { base: 0 };
    /// Homes `2^32 - 3` to `2^32 - 1`: the last three slots of every array (whose
    /// length is a power of two up to 2^32), so that runs wrap around its end.
    pub const LAST_SLOTS: FewHomes = FewHomes { base: 0xffff_fffd };
}

pub struct FewHomesHasher {
    base: u64,
    folded: u64,
}

impl std::hash::Hasher for FewHomesHasher {
    fn finish(&self) -> u64 {
        0xabcd_0000_0000_0000 | (self.base + self.folded % 3)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.folded = self.folded.wrapping_mul(31).wrapping_add(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.folded = n;
    }
}

impl std::hash::BuildHasher for FewHomes {
    type Hasher = FewHomesHasher;
    fn build_hasher(&self) -> FewHomesHasher {
        FewHomesHasher {
            base: self.base,
            folded: 0,
        }
    }
}
