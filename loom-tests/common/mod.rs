//! Shared by the loom models: a value whose payload is a loom `UnsafeCell`, so that
//! loom flags any read of it that is not ordered before its destruction, and that
//! counts its drops.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

use atomic_map::{AtomicMap, Builder, ReclaimMode};
use loom::cell::UnsafeCell;

/// Written into the payload by `Drop`.
pub const DEAD: u64 = u64::MAX;

/// Counts drops of the probes made from it (a std atomic: bookkeeping for the
/// assertions, not part of the synchronization under test).
#[derive(Clone, Default)]
pub struct Drops(std::sync::Arc<AtomicUsize>);

impl Drops {
    /// A probe holding `payload`, written after the cell is made: loom tracks that
    /// write, so a read on another thread not ordered after it (a value published
    /// without Release, read without Acquire) is a causality violation too.
    pub fn probe(&self, payload: u64) -> Probe {
        let probe = Probe {
            payload: UnsafeCell::new(0),
            drops: self.clone(),
        };
        // SAFETY: the probe is not shared yet.
        probe.payload.with_mut(|p| unsafe { *p = payload });
        probe
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A map value: reading it after (or concurrently with) its drop is a loom error.
pub struct Probe {
    payload: UnsafeCell<u64>,
    drops: Drops,
}

// SAFETY: the payload is written only by `Drop` (through `&mut self`), and loom
// itself checks that no shared read races that write: this is what the models test.
unsafe impl Sync for Probe {}

impl Probe {
    /// Reads the payload; loom fails the model if this races the drop.
    pub fn read(&self) -> u64 {
        // SAFETY: the payload is only written by `Drop`; loom checks the ordering.
        let v = self.payload.with(|p| unsafe { *p });
        assert_ne!(v, DEAD, "read a destroyed value");
        v
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // SAFETY: `&mut self`; loom checks that no read races this write.
        self.payload.with_mut(|p| unsafe { *p = DEAD });
        self.drops.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Takes the map back from the last `Arc` (every other holder has been joined).
pub fn unwrap<T>(shared: loom::sync::Arc<T>) -> T {
    match loom::sync::Arc::try_unwrap(shared) {
        Ok(value) => value,
        Err(_) => panic!("the map is still shared"),
    }
}

/// A fixed hasher: loom replays each interleaving, so the model must be
/// deterministic, and `RandomState` would change shard choice and iteration order
/// from one execution to the next.
pub type Fixed = BuildHasherDefault<DefaultHasher>;

/// The map type of the models.
pub type Map = AtomicMap<u8, Probe, Fixed>;

/// A builder for the models: fixed hasher, 2 shards.
pub fn builder() -> Builder<Fixed> {
    Builder::new().hasher(Fixed::default()).shards(2)
}

/// A map reclaimed by the model itself (no background thread).
pub fn manual_map() -> Map {
    builder().reclaim_mode(ReclaimMode::Manual).build()
}

/// Drops the map (tearing everything down on this thread) and runs the epoch's
/// ripe frees, so that loom's leak check sees every `Arc` returned.
pub fn finish(map: Map) {
    drop(map);
    flush_epoch();
}

/// Runs every deferred free whose readers are gone (the stand-in's `flush`).
pub fn flush_epoch() {
    let probe = manual_map();
    probe.reclaim();
}

/// The preemption bound when `LOOM_MAX_PREEMPTIONS` is not set: what CI runs, so
/// that `cargo test --features loom` as typed needs no environment (the bound that
/// keeps every model to seconds; see `docs/DESIGN.md`, "What loom checks").
const DEFAULT_PREEMPTIONS: usize = 3;

/// Runs `f` under a loom model and reports how many executions loom explored.
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    // `Builder::new` reads the `LOOM_*` environment variables.
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    // Each map operation walks the table's atomics (shard arrays, slots) as well
    // as the protocol's: one execution of the larger models takes more than loom's
    // default 1,000 branch points.
    builder.max_branches = builder.max_branches.max(20_000);
    let bound = builder.preemption_bound;
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!(
        "{name}: loom explored {} executions (preemption bound {bound:?})",
        runs.load(Ordering::Relaxed)
    );
}

/// The usual start of a model: a manual-mode map shared through a loom `Arc`, with
/// key 1 mapped to a probe holding 7.
pub fn map_with_one_value() -> (Drops, loom::sync::Arc<Map>) {
    let drops = Drops::default();
    let map = loom::sync::Arc::new(manual_map());
    map.insert(1, drops.probe(7));
    (drops, map)
}

/// A map served by `reclaimer` (one of its users), with key 1 mapped to a probe
/// holding 7 made from `drops`.
pub fn map_on(reclaimer: &atomic_map::Reclaimer, drops: &Drops) -> Map {
    let map = builder().reclaimer(reclaimer).build();
    map.insert(1, drops.probe(7));
    map
}

/// Runs `body` on a new loom thread with its own handle on `map`.
pub fn spawn_with<T: Send + 'static>(
    map: &loom::sync::Arc<Map>,
    body: impl FnOnce(loom::sync::Arc<Map>) -> T + Send + 'static,
) -> loom::thread::JoinHandle<T> {
    let map = loom::sync::Arc::clone(map);
    loom::thread::spawn(move || body(map))
}

/// `n` distinct keys that the models' fixed hasher puts in the same shard of a
/// 2-shard table (the hash's top bit chooses it: `src/table/`), so that a model
/// can fill one shard's smallest array (4 slots under loom) and make it rehash.
pub fn keys_in_one_shard(n: usize) -> Vec<u8> {
    use std::hash::BuildHasher;
    let hasher = Fixed::default();
    let shard = |k: u8| hasher.hash_one(k) >> 63;
    let first = shard(1);
    (1..=u8::MAX)
        .filter(|&k| shard(k) == first)
        .take(n)
        .collect()
}

/// A key that the models' fixed hasher puts in shard 0 of a 2-shard table, and one
/// it puts in shard 1 (the hash's top bit chooses: `src/table/`).
pub fn one_key_per_shard() -> (u8, u8) {
    use std::hash::BuildHasher;
    let hasher = Fixed::default();
    let in_shard = |shard: u64| {
        (1..=u8::MAX)
            .find(|&k| hasher.hash_one(k) >> 63 == shard)
            .expect("the fixed hasher uses both shards")
    };
    (in_shard(0), in_shard(1))
}
