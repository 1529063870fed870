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
//! publishes a fresh empty generation with one atomic compare-and-swap and returns.
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
//! let map = Arc::new(AtomicMap::new());
//! map.insert("tenant-1".to_string(), vec![1u8, 2, 3]);
//!
//! // A retained handle: survives clears and the map.
//! let held = map.get("tenant-1").unwrap();
//!
//! // A short pinned read section: borrowed reads, no reference counting.
//! {
//!     let guard = map.pin();
//!     assert_eq!(guard.get("tenant-1").map(Vec::len), Some(3));
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
//! ```
//!
//! The operations, each with an example on its method:
//!
//! | operation | what it does |
//! |---|---|
//! | [`AtomicMap::get`] | a retained [`ValueRef`] (one atomic increment) |
//! | [`AtomicMap::pin`] → [`ReadGuard::get`] | a borrowed `&V`, valid while the guard lives |
//! | [`AtomicMap::insert`], [`remove`](AtomicMap::remove), [`upsert`](AtomicMap::upsert), [`compute`](AtomicMap::compute) | writes to the current generation |
//! | [`AtomicMap::get_or_insert_with`], [`try_insert`](AtomicMap::try_insert) | insert only if absent (read-through caches) |
//! | [`AtomicMap::remove_if`], [`retain`](AtomicMap::retain) | conditional removal, eviction |
//! | [`AtomicMap::with_capacity`], [`Builder::capacity`], `Extend for &AtomicMap` | sizing and bulk loading |
//! | [`AtomicMap::snapshot`] → [`Snapshot`] | a long-lived view of one generation: `get`, `iter`, `len` |
//! | [`AtomicMap::clear_async`] → [`Retired`] | O(1) clear; the ticket waits for the teardown: [`wait`](Retired::wait), or `.await` (a runtime-agnostic `Future`) |
//! | [`AtomicMap::replace`] → [`Retired`] | atomic clear-and-fill: old contents or new, never a mix |
//! | [`AtomicMap::stats`] → [`Stats`] | generation id, garbage pending, totals reclaimed |
//! | [`AtomicMap::reclaim`] | runs the reclamation on this thread ([`ReclaimMode::Manual`]) |
//! | [`Reclaimer`], [`Builder::reclaimer`] | the process-wide reclaimer, or one shared by maps you choose |
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
//! * A pinned [`ReadGuard`] delays the reclamation of its generation and of every
//!   value removed while it lives: keep pins short; use snapshots to hold on.
//! * Reads go through `dashmap`'s shard read locks (a write to a shared cache line),
//!   so raw read throughput is below that of lock-free maps such as `papaya`.
//! * Background mode costs one thread for the whole process (the process-wide
//!   [`Reclaimer`], started with the first map, parked between passes: 1 ms after
//!   work, up to 16 ms when idle), shared by every map. Destructors of all those
//!   maps run on it, one after another: give maps with slow destructors a
//!   [`Reclaimer`] of their own ([`Builder::reclaimer`]). [`ReclaimMode::Manual`]
//!   has no thread.
//!
//! # How it works
//!
//! * The current generation sits in an `arc_swap::ArcSwap`. `pin` loads it with a
//!   cheap guard and enters a `crossbeam-epoch` epoch; `snapshot` takes a full `Arc`.
//! * Each generation owns a `dashmap::DashMap<K, ValueRef<V>>`, i.e. one reference
//!   to each of its values.
//! * `clear_async` builds an empty generation and compare-and-swaps it in. The old
//!   generation's `Arc` drops when its last holder lets go; its `Drop` pushes the
//!   table onto a lock-free list in O(1). The reclaimer (the process-wide
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

#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod builder;
mod generation;
mod map;
mod occupied;
mod read;
mod reclaim;
mod snapshot;
mod standby;
mod stats;
mod store;
mod sync;
mod value;

pub use builder::Builder;
pub use map::AtomicMap;
pub use occupied::Occupied;
pub use read::ReadGuard;
pub use reclaim::{ReclaimMode, Reclaimer, Retired};
pub use snapshot::{Iter, Snapshot};
pub use stats::Stats;
pub use value::ValueRef;

/// The README's Rust example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
