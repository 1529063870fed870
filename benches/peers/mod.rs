//! The maps the benchmarks compare, behind one trait, so every benchmark runs the
//! same code against each of them.
//!
//! `AtomicMap` appears twice: read through a pinned section (`pin().get_borrowed`, no
//! reference count touched) and through a retained handle (`get`, one increment and
//! one decrement). Its writes and clears are the same in both rows.

#![allow(dead_code)] // each bench binary uses a different part of this module

pub mod cases;
pub mod process;

/// With the `mimalloc` feature, every benchmark that compares the peers allocates
/// through mimalloc instead of the system's allocator (glibc's here).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::hash::Hash;
use std::hint::black_box;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use atomic_map::{AtomicMap, DefaultHashBuilder, Retired};
use dashmap::DashMap;

/// A key type of the benchmarks: `u64`, or `String` (with 64-byte `Vec<u8>` values).
pub trait Key: Hash + Eq + Clone + Send + Sync + 'static {
    /// The value stored under it.
    type Value: Clone + Send + Sync + 'static;
    /// A name for tables ("u64", "string").
    const NAME: &'static str;
    fn key(i: u64) -> Self;
    fn value(i: u64) -> Self::Value;
    /// Reads the value (so that a lookup cannot be optimised into a presence test).
    fn touch(v: &Self::Value) -> u64;
}

impl Key for u64 {
    type Value = u64;
    const NAME: &'static str = "u64";
    fn key(i: u64) -> Self {
        i
    }
    fn value(i: u64) -> u64 {
        i
    }
    fn touch(v: &u64) -> u64 {
        *v
    }
}

impl Key for String {
    type Value = Vec<u8>;
    const NAME: &'static str = "string";
    fn key(i: u64) -> Self {
        format!("key-{i:012}")
    }
    fn value(i: u64) -> Vec<u8> {
        vec![i as u8; 64]
    }
    fn touch(v: &Vec<u8>) -> u64 {
        u64::from(v[0]) + v.len() as u64
    }
}

/// What a clear left to other threads: `AtomicMap`'s retired generation, torn
/// down by its reclaimer. Peers free everything inside the call.
pub type Leftover = Option<Retired>;

/// One of the maps under test.
pub trait Peer<K: Key>: Send + Sync + 'static {
    /// The row label in tables and plots.
    fn name(&self) -> &'static str;
    /// Fills keys `0..n` into the (empty) map; not timed. Every map is filled the
    /// same way, one insert per key, as a user fills a map: `AtomicMap` was filled
    /// with `replace` until 2026-12-02, which sized its tables ahead (half as full
    /// as inserts leave them at 10,000 keys) and ended with a publish that warmed
    /// the lines the next clear touches (`docs/BENCHMARKS.md`, "History",
    /// "Every map filled alike").
    fn fill(&self, n: u64) {
        for i in 0..n {
            self.insert(K::key(i), K::value(i));
        }
    }
    /// Looks `k` up and reads its value; 0 when absent.
    fn read(&self, k: &K) -> u64;
    /// Looks every key up inside one read section, where the map has one: one
    /// `pin()` (`AtomicMap` pinned, papaya), one read or lock guard (`RwLock`,
    /// `Mutex`), one `load` (`ArcSwap`); the others look each key up alone.
    fn read_section(&self, keys: &[K]) -> u64 {
        keys.iter().fold(0, |sum, k| sum.wrapping_add(self.read(k)))
    }
    fn insert(&self, k: K, v: K::Value);
    fn remove(&self, k: &K);
    /// Replaces the value of `k` if it is present (conc-map-bench's "update"). The
    /// default looks up, then inserts: two steps, for maps with no update in place.
    fn update(&self, k: &K) {
        if self.read(k) != 0 {
            self.insert(k.clone(), K::value(1));
        }
    }
    /// The map's clear, timed on the calling thread.
    fn clear(&self) -> (Duration, Leftover);
    fn len(&self) -> usize;
    /// Garbage waiting for reclamation, as the map reports it: retired generations
    /// not yet torn down and values awaiting destruction (`AtomicMap` only).
    fn garbage(&self) -> Option<(usize, usize)> {
        None
    }
}

/// Times `f` on the calling thread.
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = black_box(f());
    (start.elapsed(), out)
}

/// `AtomicMap` read through `pin().get_borrowed`.
pub struct AtomicPinned<K: Key>(pub AtomicMap<K, K::Value>);
/// `AtomicMap` read through `get` (a retained `ValueRef`).
pub struct AtomicRetained<K: Key>(pub AtomicMap<K, K::Value>);

/// Sums `touch` over the values found through `get` (a read section's lookups).
fn sum_found<'a, K: Key>(keys: &[K], get: impl Fn(&K) -> Option<&'a K::Value>) -> u64 {
    keys.iter()
        .fold(0, |sum, k| sum.wrapping_add(get(k).map_or(0, K::touch)))
}

macro_rules! atomic_peer {
    // The optional second closure overrides `read_section` (one pin for all keys).
    ($ty:ident, $name:literal, |$map:ident, $k:ident| $read:expr $(, |$smap:ident, $keys:ident| $section:expr)?) => {
        impl<K: Key> Peer<K> for $ty<K> {
            fn name(&self) -> &'static str {
                $name
            }
            fn read(&self, $k: &K) -> u64 {
                let $map = &self.0;
                $read
            }
            $(fn read_section(&self, $keys: &[K]) -> u64 {
                let $smap = &self.0;
                $section
            })?
            fn insert(&self, k: K, v: K::Value) {
                self.0.insert(k, v);
            }
            fn remove(&self, k: &K) {
                self.0.remove(k);
            }
            fn update(&self, k: &K) {
                // Values are shared with readers: an update builds a new value.
                drop(self.0.compute(k.clone(), |old| match old {
                    Some(_) => atomic_map::Operation::<_>::Insert(K::value(1)),
                    None => atomic_map::Operation::Keep,
                }));
            }
            fn clear(&self) -> (Duration, Leftover) {
                let (took, retired) = timed(|| self.0.clear_async());
                (took, Some(retired))
            }
            fn len(&self) -> usize {
                self.0.len()
            }
            fn garbage(&self) -> Option<(usize, usize)> {
                let s = self.0.stats();
                Some((s.retired_generations, s.pending_values))
            }
        }
    };
}
atomic_peer!(
    AtomicPinned,
    "AtomicMap (pinned get)",
    |map, k| map.pin().get_borrowed(k).map_or(0, K::touch),
    |map, keys| {
        let guard = map.pin();
        sum_found(keys, |k| guard.get_borrowed(k))
    }
);
atomic_peer!(AtomicRetained, "AtomicMap (retained get)", |map, k| map
    .get(k)
    .map_or(0, |v| K::touch(&v)));

/// `DashMap` on its default hasher (std's SipHash), or on ours (`AtomicMap`'s
/// default, foldhash): the second shows how much of a ratio is the hasher.
macro_rules! dashmap_peer {
    ($ty:ty, $name:literal, |$map:ident| $inner:expr) => {
        impl<K: Key> Peer<K> for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn read(&self, k: &K) -> u64 {
                let $map = self;
                $inner.get(k).map_or(0, |v| K::touch(&v))
            }
            fn insert(&self, k: K, v: K::Value) {
                let $map = self;
                $inner.insert(k, v);
            }
            fn remove(&self, k: &K) {
                let $map = self;
                $inner.remove(k);
            }
            fn update(&self, k: &K) {
                let $map = self;
                if let Some(mut v) = $inner.get_mut(k) {
                    *v = K::value(1);
                }
            }
            fn clear(&self) -> (Duration, Leftover) {
                let $map = self;
                (timed(|| $inner.clear()).0, None)
            }
            fn len(&self) -> usize {
                let $map = self;
                $inner.len()
            }
        }
    };
}
dashmap_peer!(DashMap<K, K::Value>, "DashMap", |map| map);
dashmap_peer!(DashMapSameHasher<K>, "DashMap (foldhash)", |map| map.0);

/// `DashMap` with `AtomicMap`'s default hasher ([`DefaultHashBuilder`]).
pub struct DashMapSameHasher<K: Key>(pub DashMap<K, K::Value, DefaultHashBuilder>);

impl<K: Key> Default for DashMapSameHasher<K> {
    fn default() -> Self {
        DashMapSameHasher(DashMap::with_hasher(DefaultHashBuilder::new()))
    }
}

/// A `HashMap` behind one lock: `$read` takes it for reads, `$write` for writes
/// (the same method for a `Mutex`).
macro_rules! locked_peer {
    ($lock:ident, $name:literal, $read:ident, $write:ident) => {
        impl<K: Key> Peer<K> for $lock<HashMap<K, K::Value>> {
            fn name(&self) -> &'static str {
                $name
            }
            fn read(&self, k: &K) -> u64 {
                self.$read().unwrap().get(k).map_or(0, K::touch)
            }
            fn read_section(&self, keys: &[K]) -> u64 {
                let map = self.$read().unwrap();
                sum_found(keys, |k| map.get(k))
            }
            fn insert(&self, k: K, v: K::Value) {
                self.$write().unwrap().insert(k, v);
            }
            fn remove(&self, k: &K) {
                self.$write().unwrap().remove(k);
            }
            fn clear(&self) -> (Duration, Leftover) {
                (timed(|| self.$write().unwrap().clear()).0, None)
            }
            fn len(&self) -> usize {
                self.$read().unwrap().len()
            }
        }
    };
}
locked_peer!(RwLock, "RwLock<HashMap>", read, write);
locked_peer!(Mutex, "Mutex<HashMap>", lock, lock);

/// Copy-on-write: every write clones the whole map and swaps it in; a clear swaps in
/// an empty map, and the old one is freed by the last reader to let go of it, on
/// that reader's thread.
impl<K: Key> Peer<K> for ArcSwap<HashMap<K, K::Value>> {
    fn name(&self) -> &'static str {
        "ArcSwap<HashMap> (copy-on-write)"
    }
    fn fill(&self, n: u64) {
        self.store(Arc::new((0..n).map(|i| (K::key(i), K::value(i))).collect()));
    }
    fn read(&self, k: &K) -> u64 {
        self.load().get(k).map_or(0, K::touch)
    }
    fn read_section(&self, keys: &[K]) -> u64 {
        let map = self.load();
        sum_found(keys, |k| map.get(k))
    }
    fn insert(&self, k: K, v: K::Value) {
        self.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(k.clone(), v.clone());
            m
        });
    }
    fn remove(&self, k: &K) {
        self.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.remove(k);
            m
        });
    }
    fn clear(&self) -> (Duration, Leftover) {
        // The swap returns the old map; dropping it here, as a caller would, frees it
        // inline unless a reader still holds it.
        (timed(|| drop(self.swap(Arc::default()))).0, None)
    }
    fn len(&self) -> usize {
        self.load().len()
    }
}

impl<K: Key> Peer<K> for papaya::HashMap<K, K::Value> {
    fn name(&self) -> &'static str {
        "papaya"
    }
    fn read(&self, k: &K) -> u64 {
        self.pin().get(k).map_or(0, K::touch)
    }
    fn read_section(&self, keys: &[K]) -> u64 {
        let map = self.pin();
        sum_found(keys, |k| map.get(k))
    }
    fn insert(&self, k: K, v: K::Value) {
        self.pin().insert(k, v);
    }
    fn remove(&self, k: &K) {
        self.pin().remove(k);
    }
    fn clear(&self) -> (Duration, Leftover) {
        (timed(|| self.pin().clear()).0, None)
    }
    fn len(&self) -> usize {
        papaya::HashMap::len(self)
    }
}

impl<K: Key> Peer<K> for scc::HashMap<K, K::Value> {
    fn name(&self) -> &'static str {
        "scc"
    }
    fn read(&self, k: &K) -> u64 {
        self.read_sync(k, |_, v| K::touch(v)).unwrap_or(0)
    }
    fn insert(&self, k: K, v: K::Value) {
        self.upsert_sync(k, v);
    }
    fn remove(&self, k: &K) {
        self.remove_sync(k);
    }
    fn clear(&self) -> (Duration, Leftover) {
        (timed(|| self.clear_sync()).0, None)
    }
    fn len(&self) -> usize {
        scc::HashMap::len(self)
    }
}

/// Every map under test, empty. `with_retained` adds the retained-get row of
/// `AtomicMap` (read benchmarks); clear benchmarks need one `AtomicMap` row.
pub fn all<K: Key>(with_retained: bool) -> Vec<Arc<dyn Peer<K>>> {
    let mut maps: Vec<Arc<dyn Peer<K>>> = vec![Arc::new(AtomicPinned::<K>(AtomicMap::new()))];
    if with_retained {
        maps.push(Arc::new(AtomicRetained::<K>(AtomicMap::new())));
    }
    maps.push(Arc::new(DashMap::<K, K::Value>::new()));
    maps.push(Arc::new(RwLock::new(HashMap::<K, K::Value>::new())));
    maps.push(Arc::new(Mutex::new(HashMap::<K, K::Value>::new())));
    maps.push(Arc::new(ArcSwap::from_pointee(
        HashMap::<K, K::Value>::new(),
    )));
    maps.push(Arc::new(papaya::HashMap::<K, K::Value>::new()));
    maps.push(Arc::new(scc::HashMap::<K, K::Value>::new()));
    maps
}

/// Small deterministic generator (xorshift64), one per thread.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Key indices in `0..n`, Zipf-distributed with exponent `s` (rank 0 the most
/// frequent), drawn by inverse CDF; ranks are scattered over the key space so the
/// hot keys do not share a shard.
pub fn zipf_indices(n: u64, s: f64, count: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n as usize);
    let mut total = 0.0;
    for rank in 1..=n {
        total += 1.0 / (rank as f64).powf(s);
        cdf.push(total);
    }
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let rank = cdf.partition_point(|&c| c < u) as u64;
            rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n
        })
        .collect()
}

/// Key indices in `0..n`, uniform.
pub fn uniform_indices(n: u64, count: usize, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed);
    (0..count).map(|_| rng.below(n)).collect()
}
