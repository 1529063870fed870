//! A reference-counted concurrent map whose `clear` is an O(1) swap of generations.
//!
//! # Motivation
//!
//! Services keep shared maps (caches, per-tenant contexts, config tables) that must
//! sometimes be wiped or replaced wholesale while readers, and C code holding
//! pointers to values, are still using them. The usual maps make that hurt:
//!
//! * `DashMap::clear`, `RwLock<HashMap>::clear` and friends walk every entry while
//!   holding locks: readers stall for the whole clear (milliseconds at a million
//!   entries), and the values are freed inline on the clearing thread.
//! * A value that other code still points at (a C caller, another thread) is freed
//!   by the clear: the holder then reads freed memory.
//!
//! # The naive fix and why it is not enough
//!
//! Keep the map behind an atomic pointer (`ArcSwap<HashMap>`) and clear by swapping
//! in a new empty map. Readers are never blocked, but the old map is dropped by
//! whichever thread lets go of it last: the clearer, or a reader that happened to
//! hold it, which then pays the O(n) free (milliseconds) on its hot path. And a value
//! still cannot be held on its own past the map that contained it.
//!
//! # This crate
//!
//! [`AtomicMap`] keeps the contents in *generations*. Readers pin one; a clear
//! publishes a fresh empty generation with one atomic swap and returns.
//! Every value is reference-counted on its own, so a [`ValueRef`] (or a C retain)
//! outlives clears, removes and the map. Retired generations are torn down off the
//! hot path by a reclaimer, once their last holder lets go; value frees are deferred
//! past an epoch grace period so that a reader that borrowed a value is never left
//! dangling.
//!
//! ```
//! use atomic_map::AtomicMap;
//! use std::sync::Arc;
//!
//! # #[cfg(feature = "loom")] fn main() {} // (loom's types work only inside a model)
//! # #[cfg(not(feature = "loom"))] fn main() {
//! let map = Arc::new(AtomicMap::new());
//! map.insert("tenant-1".to_string(), vec![1u8, 2, 3]);
//!
//! // A retained handle: survives clears and the map.
//! let held = map.get("tenant-1").unwrap();
//!
//! // A short pinned read section: borrowed reads, no reference counting.
//! {
//!     let guard = map.pin();
//!     assert_eq!(guard.get_borrowed("tenant-1").map(Vec::len), Some(3));
//! }
//!
//! // Clear in O(1) from any thread; readers are not blocked.
//! let retired = {
//!     let map = Arc::clone(&map);
//!     std::thread::spawn(move || map.clear_async()).join().unwrap()
//! };
//! assert!(map.is_empty());
//! assert_eq!(*held, [1, 2, 3]);
//! retired.wait(); // the old generation has been torn down off the hot path
//! # }
//! ```
//!
//! The operations, each with an example on its method:
//!
//! | operation | what it does |
//! |---|---|
//! | [`AtomicMap::get`] | a retained [`ValueRef`] (one atomic increment) |
//! | [`AtomicMap::pin`] → [`ReadGuard::get_borrowed`] | a borrowed `&V`, valid while the guard lives |
//! | [`ReadGuard::iter`] | every entry of the pinned generation, keys and values borrowed (no counting, no lock) |
//! | [`AtomicMap::insert`], [`remove`](AtomicMap::remove), [`upsert`](AtomicMap::upsert) | writes to the current generation |
//! | [`AtomicMap::compute`] with an [`Operation`] → [`Compute`] | insert, remove, keep or abort, decided from the current value in one step |
//! | [`AtomicMap::get_or_insert_with`], [`try_insert`](AtomicMap::try_insert) | insert only if absent (read-through caches) |
//! | [`AtomicMap::remove_if`], [`retain`](AtomicMap::retain) | conditional removal, eviction |
//! | [`AtomicMap::with_capacity`], [`Builder::capacity`], [`reserve`](AtomicMap::reserve), [`shrink_to_fit`](AtomicMap::shrink_to_fit), `Extend for &AtomicMap` | sizing and bulk loading |
//! | `Clone`, `PartialEq`/`Eq` (maps and snapshots), `From<[(K, V); N]>`, `FromIterator`, `Default` | as for `HashMap`: a copy built alike, comparison by entries (`Debug` shows the generation, length and reclaim mode, not the entries) |
//! | [`AtomicMap::snapshot`] → [`Snapshot`] | a long-lived view of one generation: `get`, `iter`, `len` |
//! | [`AtomicMap::clear_async`] → [`Retired`] | O(1) clear; the ticket waits for the teardown: [`wait`](Retired::wait), `.await` (a runtime-agnostic `Future`), or a function run right after it ([`on_reclaimed`](Retired::on_reclaimed)) |
//! | [`AtomicMap::replace`] → [`Retired`] | atomic clear-and-fill: old contents or new, never a mix |
//! | [`AtomicMap::stats`] → [`Stats`] | generation id, garbage pending, totals reclaimed |
//! | [`AtomicMap::reclaim`] | runs the reclamation on this thread ([`ReclaimMode::Manual`]) |
//! | [`Reclaimer`], [`Builder::reclaimer`] | the process-wide reclaimer, or one shared by maps you choose |
//!
//! # Names
//!
//! One word, one meaning, on every type that has it:
//!
//! | name | returns | on | valid for |
//! |---|---|---|---|
//! | `get` | `Option<ValueRef<V>>`, a retained handle (one atomic increment) | [`AtomicMap`], [`Snapshot`], [`ReadGuard`] | as long as you keep it: past clears, removes and the map |
//! | `get_borrowed` | `Option<&V>`, a borrow (no count touched) | [`ReadGuard`] only (the one handle that pins) | while the guard lives |
//! | `iter` | `(K, ValueRef<V>)` pairs: keys cloned, values retained | [`Snapshot`] | as long as you keep them |
//! | `iter` (and `keys`, `values`) | `(&K, &V)` pairs, borrowed (no count touched, no lock held) | [`ReadGuard`] | while the guard lives |
//! | `contains_key`, `len`, `is_empty`, `generation` | the same answers, for the generation the receiver sees | [`AtomicMap`] (the current one), [`Snapshot`], [`ReadGuard`] (their own) | — |
//! | `pin` | [`ReadGuard`]: a short borrowed-read section | [`AtomicMap`], [`Snapshot`] | the section |
//! | `snapshot` | [`Snapshot`]: a long-lived, `Send` view | [`AtomicMap`] | as long as you keep it |
//! | `insert`, `remove`, `remove_if`, `try_insert` | the value they replaced or removed, as a `ValueRef` (the table's own reference, handed over: no extra count) | [`AtomicMap`] | as long as you keep it |
//! | `clear_async`, `replace` | [`Retired`], the ticket of the generation they retired | [`AtomicMap`] | — |
//!
//! # When to pick it
//!
//! Measured on a 2-core VM with the peers in the same run (`docs/BENCHMARKS.md`,
//! "Current figures": the full run of 2026-12-05 23:51, and for values that own
//! heap memory three rounds of 2026-12-06; 1 / 2 threads; these move by up to 2×
//! between runs, and the README's table has the ranges; `DashMap`'s 2-thread
//! reads ran below its 1-thread rate in that run, so the 2-thread read ratios
//! are generous):
//!
//! | you need | pick | measured |
//! |---|---|---|
//! | a map wiped or replaced while readers (or C code) keep using it | **atomic-map** | clear of 1,000,000 `u64` entries with 2 readers: 543 ns on the caller; `DashMap::clear` 7.69 ms, `scc` 8.79 ms, `papaya` 1.31 s, `RwLock<HashMap>` 142 µs; readers never block, the teardown runs on the reclaimer |
//! | values that outlive a clear, a remove or the map itself (handles, C retains) | **atomic-map** | each value is counted on its own and destroyed once, after its last holder, off the hot path |
//! | the fastest reads, with rare or no clears | **atomic-map** (pinned reads), or `DashMap` on a fast hasher | pinned gets over 100,000 uniform keys: 1.09× / 3.56× `DashMap`; 16 gets per pin: 2.3× `papaya`; retained gets ([`ValueRef`]): 0.71× / 1.77×; against `DashMap` on our default hasher, 0.73× at 1 thread |
//! | the fastest writes | `DashMap` | over 10,000 keys: insert/remove 0.90× / 1.00×, a mixed exchange 0.86× / 1.06×, upsert 0.61× / 0.90×; over 100,000 keys and more, the exchange 0.66–0.71× |
//! | values that own heap memory, replaced all the time | `DashMap`, or **atomic-map** with [`Builder::destructors_on_releasing_threads`] or on mimalloc | replacing `String` → `Vec` values on glibc: 0.32–0.42× `DashMap`'s rate by default, 0.49–0.59× with that option |
//! | a small table written rarely and read by many | `ArcSwap<HashMap>` | reads 0.81× / 2.71× `DashMap`; but every write copies the whole map |
//! | the least memory per entry | `DashMap` | `u64` → `u64` after a fill of 1,000,000: 49 bytes per entry against 36; with `String` values atomic-map takes less (193 against 215) |
//!
//! Add it to `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! atomic-map = "0.1"
//! ```
//!
//! `examples/tenant_cache.rs` in the repository is a whole program written from
//! these docs: a per-tenant cache behind a generic wrapper, read through with
//! `get_or_insert_with`, evicted with `retain`, reloaded with `replace` and cleared
//! while 4 threads read it.
//!
//! # Consistency
//!
//! * A [`ReadGuard`] and a [`Snapshot`] each see exactly one generation. A clear or
//!   replace never tears it: they keep reading the old contents until dropped. They
//!   do see later writes to that same generation.
//! * [`AtomicMap::get`], `insert`, `remove`, `upsert`, `len` act on the generation
//!   current when they load it. A write racing a clear may land in the generation
//!   being retired; it is then ordered before the clear (it is never lost into the
//!   new generation, nor half applied), and its value is reclaimed with that
//!   generation. A caller that must not lose such a write takes a snapshot after it,
//!   or serializes clears with its writes.
//! * [`AtomicMap::replace`] is atomic: readers see all of the old contents or all
//!   of the new ones.
//! * `len` sums the table's shards one by one: under concurrent writes it is a
//!   sample, not a point-in-time count.
//!
//! # Trade-offs
//!
//! * Values are immutable once shared: `upsert` builds a new value; readers holding
//!   the old one keep it.
//! * Memory: each value is its own allocation with a reference count (an extra
//!   pointer-sized count and a pointer to the map's account). After a clear, the old
//!   generation's memory comes back only once its last holder lets go.
//! * A pinned [`ReadGuard`] (like any `crossbeam-epoch` guard) delays the
//!   reclamation of every generation retired and every value removed while it lives,
//!   in every map of the process: keep pins short; use snapshots to hold on.
//! * A value lives in a cell of its own (with its key), so a get reads the table's
//!   slot and then the cell: two cache misses on a large map where `DashMap<K, V>`
//!   with small values reads one (`docs/BENCHMARKS.md` has the figures).
//! * Writers call `Hash` on keys other than their own, under the write lock of
//!   the shard: a growing shard hashes its live keys again (its slots keep 16 bits
//!   of each hash), and a removal may hash a key that lies just after it (to tell
//!   whether the slot it frees is on that key's probe path). So a key's `Hash`
//!   must not call into the same map (that deadlocks), and one that panics fails
//!   the write that called it, whichever key the write was for; the map stays as
//!   it was (as with `HashMap`, a key whose `Hash` changes while it is mapped is a
//!   logic error: lookups may miss it, nothing unsound follows).
//! * Background mode costs one thread for the whole process (the process-wide
//!   [`Reclaimer`], started with the first map, parked between passes: 1 ms after
//!   work, up to 16 ms when idle), shared by every map. Destructors of all those
//!   maps run on it, one after another: give maps with slow destructors a
//!   [`Reclaimer`] of their own ([`Builder::reclaimer`]). [`ReclaimMode::Manual`]
//!   has no thread.
//! * Keys and values that own heap memory are dropped on the reclaimer's thread,
//!   not the writer's. glibc's `malloc` serves a thread from the chunks that thread
//!   freed, so a writer that replaces such values takes its allocator's slow path
//!   for each new one: replacing `String` → 64-byte `Vec<u8>` entries ran at
//!   0.45–0.64× `DashMap`'s rate on glibc, 0.67–0.84× with both maps on mimalloc,
//!   an allocator built for frees on other threads (`docs/BENCHMARKS.md`, "Values
//!   that own heap memory, on mimalloc"). Value cells themselves are recycled by
//!   the crate and need no such help.
//!
//! # Bounds: where they are and why
//!
//! The types ([`AtomicMap`], [`Snapshot`], [`ReadGuard`], [`Iter`]) carry no bounds,
//! so a generic type can hold one without repeating them; the bounds sit on the
//! impls that need them, as in `std` and `dashmap`:
//!
//! * `K: Eq + Hash` and `S: BuildHasher + Clone`: to look keys up (the hasher is
//!   cloned into every new generation).
//! * `K, V, S: Send + Sync`: readers on many threads share keys and values (`Sync`),
//!   and both are destroyed on the reclaimer's thread, or another (`Send`).
//! * `K, V, S: 'static`: a retired generation and a released value are destroyed by
//!   the reclaimer *later*, possibly after the map and the scope that built it are
//!   gone, so they may not borrow from that scope. This is the one place `'static`
//!   is truly required; a borrowed key type such as `&'a str` cannot be used unless
//!   `'a` is `'static` (own the key: `String`, `Box<str>`, `Arc<str>`).
//!
//! ```
//! use std::hash::Hash;
//! use std::sync::Arc;
//! use atomic_map::{AtomicMap, ValueRef};
//!
//! // No bounds on the struct: only on the impl that uses the map.
//! #[derive(Clone)]
//! struct Cache<K, V> {
//!     map: Arc<AtomicMap<K, V>>,
//! }
//!
//! impl<K, V> Cache<K, V>
//! where
//!     K: Eq + Hash + Send + Sync + 'static,
//!     V: Send + Sync + 'static,
//! {
//!     fn get_or_load(&self, key: K, load: impl FnOnce() -> V) -> ValueRef<V> {
//!         self.map.get_or_insert_with(key, load)
//!     }
//! }
//!
//! # #[cfg(feature = "loom")] fn main() {}
//! # #[cfg(not(feature = "loom"))] fn main() {
//! let cache: Cache<String, u32> = Cache { map: Arc::new(AtomicMap::new()) };
//! assert_eq!(*cache.get_or_load("a".into(), || 1), 1);
//! assert_eq!(*cache.clone().get_or_load("a".into(), || 2), 1);
//! # }
//! ```
//!
//! A key that borrows from a local does not compile (its values would be destroyed
//! after the borrow ends):
//!
//! ```compile_fail
//! let name = String::from("tenant");
//! let map = atomic_map::AtomicMap::new();
//! map.insert(name.as_str(), 1); // error: `name` does not live long enough
//! drop(map);
//! ```
//!
//! # How it works
//!
//! * The current generation sits in an `arc_swap::ArcSwapAny` (on arc-swap's
//!   `RwLock<()>` strategy: a clear's swap takes a short lock instead of
//!   walking every thread's debt slots), through which `snapshot` takes a full `Arc`. `pin` and `get` enter a
//!   `crossbeam-epoch` epoch and follow a plain pointer to the same generation (one
//!   protection per read, no count); a write takes its key's shard lock (the map's,
//!   used for every generation) and then follows that pointer, with no epoch pin:
//!   the reclaimer takes each shard lock once before it releases a retired
//!   generation.
//! * Each generation owns a hash table of its own (`src/table/`) mapping each key to
//!   a value cell, i.e. one reference to each of its values; readers probe it
//!   without locks, writers lock one shard.
//! * `clear_async` takes an empty generation (built ahead by the reclaimer) and
//!   swaps it in, under a lock only clears and replaces take. The slot's reference to the old generation is
//!   released after the writers' shard locks were each taken once and an epoch
//!   grace period; when the generation's last reference
//!   goes, its `Drop` pushes the table onto a lock-free list in O(1). The reclaimer (the process-wide
//!   background thread, a dedicated one, or [`AtomicMap::reclaim`]) walks the table, releasing its reference to every
//!   value and destroying the values nobody else holds.
//! * Releasing a value's last reference anywhere else (a dropped handle, a
//!   `remove`) only marks it doomed (a lock-free push). The reclaimer destroys
//!   doomed values after an epoch grace period that it drives itself, past every
//!   reader that may have borrowed them; readers never run destructors. Each
//!   value's destructor runs exactly once; a panicking destructor is contained and
//!   counted in [`Stats::destructor_panics`].
//!
//! `docs/DESIGN.md` in the repository has the protocol step by step, every atomic
//! ordering and what it pairs with, and what runs on which thread.
//!
//! # Cargo features
//!
//! * `serde` (off by default): `Serialize` for `AtomicMap` and `Snapshot`, and
//!   `Deserialize` for `AtomicMap` when the hasher is `Default`, as a map of keys
//!   to values, e.g. to load a config cache from JSON and dump it back
//!   (`serde_json::from_str`, `serde_json::to_string(&map)`). Serializing writes
//!   exactly one generation (through a snapshot; a concurrent clear or replace never
//!   mixes two) and needs `K: Clone` (keys are copied out of each shard, so that
//!   nothing is borrowed while user code runs). Deserializing keeps the last of duplicate
//!   keys, as `HashMap` does.
//!
//! ```
//! # #[cfg(feature = "serde")]
//! # {
//! use atomic_map::AtomicMap;
//! use serde::Deserialize;
//! use serde::de::value::{Error, MapDeserializer};
//!
//! // Any serde format works the same way (`serde_json::from_str` for JSON);
//! // serde's own in-memory one stands in here. Port → weight:
//! let input = MapDeserializer::<_, Error>::new([(80u16, 3u32), (443, 5)].into_iter());
//! let weights = AtomicMap::<u16, u32>::deserialize(input).unwrap();
//! assert_eq!(*weights.get(&443).unwrap(), 5);
//!
//! fn dump<T: serde::Serialize>(_: &T) {}
//! dump(&weights); // one generation, as a map
//! dump(&weights.snapshot());
//! # }
//! ```

#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
// Under `--features loom` the crate is built on loom's types, which work only inside
// a loom model: the doctests (plain programs) cannot run then, so the crate shows
// rustdoc no items to collect them from, and `cargo test --features loom` runs the
// models alone (`loom-tests/`; every other test file is gated the same way). The
// crate-level examples are collected anyway: they gate their own `main`.
#![cfg(not(all(doctest, feature = "loom")))]
#![doc(test(attr(deny(warnings))))]

mod builder;
mod compute;
mod generation;
mod hasher;
mod map;
mod mapped;
mod occupied;
mod prefetch;
mod read;
mod reclaim;
#[cfg(feature = "serde")]
mod serde_impls;
mod snapshot;
mod standby;
mod stats;
mod std_traits;
mod store;
mod sync;
mod table;
mod try_reserve;
mod value;

pub use builder::Builder;
pub use compute::{Compute, Operation};
pub use hasher::{DefaultHashBuilder, DefaultMapHasher};
pub use map::AtomicMap;
pub use occupied::Occupied;
pub use read::{BorrowedIter, ReadGuard};
pub use reclaim::{ReclaimMode, Reclaimer, Retired};
pub use snapshot::{Iter, Snapshot};
pub use stats::Stats;
pub use try_reserve::TryReserveError;
pub use value::ValueRef;

/// The table shards' rehashes so far in this process, under the `loom` feature
/// only: for the models that race a rehash to check that one happened
/// (`src/sync/model.rs`). Not part of the API.
#[cfg(feature = "loom")]
#[doc(hidden)]
pub fn loom_rehashes() -> usize {
    sync::rehashes()
}

/// The README's Rust example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
