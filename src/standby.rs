//! `Standby`: the generations a clear needs, kept off the clearer's path, and what a
//! map needs to make new generations.
//!
//! * The **spare**: the next empty generation, built ahead. Building an empty table
//!   allocates its shard array (`shards × 128` bytes); on the clearer that
//!   allocation was the costly part of a clear: at 64 shards it misses the
//!   allocator's per-thread cache and contends for the arena lock with the
//!   reclaimer, which is freeing the previous generation into the same arena
//!   (measured with a throwaway probe: clear median 6 µs, p99 260 µs). So the
//!   reclaimer builds the next empty generation and parks it here; `clear_async`
//!   takes it with one atomic swap and builds one inline only when none is ready
//!   (a map's first clear, a burst of clears, manual mode between passes).
//! * The **hand-off**: the clearer's reference to the generation it just retired.
//!   Dropping it on the clearer would, when it is the last, run the generation's
//!   drop there (touching cold lines, freeing its `Arc`). Instead the clearer parks
//!   it here with one swap, in the same cache line as the spare it has just taken
//!   (so a clear misses one line of the map, not two), and the reclaimer releases
//!   it at its next pass. If one is still parked (a burst of clears), the clearer
//!   releases that older one itself: still O(1).
//!
//! The reclaimer reaches every map's standby through its domain's registry: a map
//! registers its standby as a [`MapService`] when it is built (one push), each pass
//! calls [`MapService::service`] on every registered map, and the map's drop marks
//! its standby so that the next pass lets go of it. (A job pushed by each clear onto
//! the domain's shared list instead cost one more cold line per clear: 3.7–5.4 µs
//! against 3.0–3.9 µs at 1,000,000 entries, `docs/BENCHMARKS.md`.)
//!
//! The standby also holds the map's ownership of its account (`reclaim/home.rs`),
//! and the hasher and shard count every generation is built with.

use std::hash::{BuildHasher, Hash};
use std::ptr;

use crate::generation::Generation;
use crate::reclaim::domain::MapService;
use crate::reclaim::home::HomeOwner;
use crate::store::Store;
use crate::sync::{Arc, AtomicBool, AtomicPtr, Ordering, WeakableArc};

/// What the map and its reclaimer need to build and release generations.
///
/// `repr(C)`: the spare and the hand-off slots, which a clear swaps one after the
/// other, come first, 16 bytes into a 16-byte aligned allocation (after the `Arc`'s
/// counts), so they always share a cache line. (Aligning the whole standby to a
/// line would put each map's creation on glibc's slower `memalign` path: 4% of a
/// 1,000-map creation profile.)
#[repr(C)]
pub(crate) struct Standby<K, V, S> {
    /// The spare: an `Arc<Generation>` turned into a raw pointer, or null.
    slot: AtomicPtr<Generation<K, V, S>>,
    /// The hand-off: an `Arc<Generation>` turned into a raw pointer, or null.
    retired: AtomicPtr<Generation<K, V, S>>,
    /// Set by the map's drop: the next pass releases what is parked and lets go.
    dropped: AtomicBool,
    /// The map's ownership of its account.
    owner: HomeOwner,
    hasher: S,
    shards: usize,
}

impl<K, V, S> Standby<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// A standby, registered with its map's reclaimer.
    pub(crate) fn new(owner: HomeOwner, hasher: S, shards: usize) -> WeakableArc<Self> {
        let standby = WeakableArc::new(Standby {
            slot: AtomicPtr::new(ptr::null_mut()),
            retired: AtomicPtr::new(ptr::null_mut()),
            dropped: AtomicBool::new(false),
            owner,
            hasher,
            shards,
        });
        let service: WeakableArc<dyn MapService> = standby.clone();
        standby.owner.home().get().domain().register(service);
        standby
    }

    pub(crate) fn owner(&self) -> &HomeOwner {
        &self.owner
    }

    pub(crate) fn hasher(&self) -> &S {
        &self.hasher
    }

    /// An empty table with this map's hasher and shard count.
    pub(crate) fn empty_store(&self) -> Store<K, V, S> {
        self.store_for(0)
    }

    /// An empty table with this map's hasher and shard count, sized for about
    /// `capacity` entries.
    pub(crate) fn store_for(&self, capacity: usize) -> Store<K, V, S> {
        Store::new(self.hasher.clone(), self.shards, capacity)
    }

    /// A new unpublished generation holding `store`.
    pub(crate) fn generation(&self, store: Store<K, V, S>) -> Generation<K, V, S> {
        Generation::new(store, self)
    }

    /// The parked spare, or a new empty generation built here. The result is
    /// unshared (its id can still be set).
    pub(crate) fn take_or_build(&self) -> Arc<Generation<K, V, S>> {
        self.take()
            .unwrap_or_else(|| Arc::new(self.generation(self.empty_store())))
    }

    /// Parks a new empty generation if none is parked. Runs on the reclaimer.
    fn refill(&self) {
        // Relaxed: a hint to skip building; the exchange below decides.
        if !self.slot.load(Ordering::Relaxed).is_null() {
            return;
        }
        let spare = Arc::new(self.generation(self.empty_store()));
        let raw = Arc::into_raw(spare).cast_mut();
        // Release: pairs with the Acquire swap in `take`. Relaxed on failure: the
        // slot is simply kept as it is.
        if let Err(_parked) =
            self.slot
                .compare_exchange(ptr::null_mut(), raw, Ordering::Release, Ordering::Relaxed)
        {
            // SAFETY: `raw` is `Arc::into_raw`'s, just above; the exchange failed, so
            // it was never published: its count is still ours, given back once here.
            drop(unsafe { Arc::from_raw(raw) });
        }
    }
}

/// What needs no bounds: moving generations in and out of the slots and marking the
/// map dropped (used by the unbounded `Drop` impls of the map and the standby).
impl<K, V, S> Standby<K, V, S> {
    /// Takes the parked spare, if any.
    pub(crate) fn take(&self) -> Option<Arc<Generation<K, V, S>>> {
        // Acquire: pairs with the Release of the exchange in `refill`, so the
        // generation built there is fully visible here.
        let raw = self.slot.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: a non-null pointer in the slot came from `Arc::into_raw` in `refill`
        // (the only writer of non-null) and owns one count; the swap made us its
        // only owner.
        (!raw.is_null()).then(|| unsafe { Arc::from_raw(raw) })
    }

    /// Parks the clearer's reference to the generation it just retired; releases
    /// an older one still parked. O(1).
    pub(crate) fn hand_off(&self, retired: Arc<Generation<K, V, S>>) {
        let raw = Arc::into_raw(retired).cast_mut();
        // AcqRel: Release hands the reference to the Acquire swap in
        // `release_handed_off`; Acquire takes over an older one from another clearer.
        // Both publish the generation's `Arc` itself: one built on a clearer's
        // thread (inline, or by `replace`) reaches the thread that drops this
        // reference by no other path, and that drop's decrement reads its count.
        let older = self.retired.swap(raw, Ordering::AcqRel);
        if !older.is_null() {
            // SAFETY: `retired` holds only pointers from `Arc::into_raw` in this
            // function (on some clearer), each owning one count; the swap made us its
            // only owner.
            drop(unsafe { Arc::from_raw(older) });
        }
    }

    /// Releases the parked retired generation, if any. Runs on the reclaimer.
    fn release_handed_off(&self) -> bool {
        // Acquire: pairs with the AcqRel swap in `hand_off`.
        let raw = self.retired.swap(ptr::null_mut(), Ordering::Acquire);
        if raw.is_null() {
            return false;
        }
        // SAFETY: as in `hand_off`: ours after the swap.
        drop(unsafe { Arc::from_raw(raw) });
        true
    }

    /// The map is being dropped: the next pass releases what is parked here and
    /// lets go of the standby.
    pub(crate) fn map_dropped(&self) {
        // Relaxed: the flag orders nothing. After it the pass only swaps the two
        // slots (read-modify-writes: each reads the latest value, and its own
        // Acquire pairs with whatever was parked there) and lets go of the standby,
        // whose drop, wherever it runs, the standby's `Arc` count orders (scenario 9
        // drops a map while a pass runs).
        self.dropped.store(true, Ordering::Relaxed);
    }
}

impl<K, V, S> MapService for Standby<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn service(&self) -> bool {
        let released = self.release_handed_off();
        // Relaxed: see `map_dropped`.
        if self.dropped.load(Ordering::Relaxed) {
            // A hand-off parked just before the drop was released above; the spare
            // (unpublished, not counted as retired) goes with the rest.
            drop(self.take());
            return false;
        }
        if released {
            self.refill();
        }
        true
    }
}

impl<K, V, S> Drop for Standby<K, V, S> {
    fn drop(&mut self) {
        // Normally empty (the last pass took both); a map dropped with no pass after
        // it (a domain dropped meanwhile) still hands its generations over here.
        drop(self.take());
        self.release_handed_off();
    }
}
