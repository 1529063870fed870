//! `Standby`: the generations a clear needs, kept off the clearer's path.
//!
//! * The **spare**: the next empty generation, built ahead. Building an empty table
//!   allocates its shard array (`shards × 128` bytes); on the clearer that
//!   allocation was the costly part of a clear: at 64 shards it misses the
//!   allocator's per-thread cache and contends for the arena lock with the
//!   reclaimer, which is freeing the previous generation into the same arena
//!   (measured with a throwaway probe: clear median 6 µs, p99 260 µs). So the
//!   reclaimer builds the next empty generation after each pass and parks it here;
//!   `clear_async` takes it with one atomic swap and builds one inline only when
//!   none is ready (a burst of clears, manual mode between `reclaim` calls).
//! * The **hand-off**: the clearer's reference to the generation it just retired.
//!   Dropping it on the clearer would, when it is the last, run the generation's
//!   drop there (touching cold lines, freeing its `Arc`). Instead the clearer parks it
//!   here with one swap, and the reclaimer releases it at the start of its next pass.
//!   If one is still parked (a burst of clears), the clearer releases that older one
//!   itself: still O(1).

use std::hash::{BuildHasher, Hash};
use std::ptr;

use crate::generation::Generation;
use crate::reclaim::Reclaimer;
use crate::store::Store;
use crate::sync::{Arc, AtomicPtr, Ordering};

/// What the reclaimer needs to build spares for one map.
pub(crate) struct Standby<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    /// The spare: an `Arc<Generation>` turned into a raw pointer, or null.
    slot: AtomicPtr<Generation<K, V, S>>,
    /// The hand-off: an `Arc<Generation>` turned into a raw pointer, or null.
    retired: AtomicPtr<Generation<K, V, S>>,
    hasher: S,
    shards: usize,
}

impl<K, V, S> Standby<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    pub(crate) fn new(hasher: S, shards: usize) -> Self {
        Standby {
            slot: AtomicPtr::new(ptr::null_mut()),
            retired: AtomicPtr::new(ptr::null_mut()),
            hasher,
            shards,
        }
    }

    /// An empty table with this map's hasher and shard count.
    pub(crate) fn empty_store(&self) -> Store<K, V, S> {
        Store::new(self.hasher.clone(), self.shards)
    }

    /// The parked spare, or a new empty generation built here. The result is
    /// unshared (its id can still be set).
    pub(crate) fn take_or_build(&self, reclaimer: &Arc<Reclaimer>) -> Arc<Generation<K, V, S>> {
        self.take()
            .unwrap_or_else(|| Arc::new(Generation::new(0, self.empty_store(), reclaimer)))
    }

    /// Takes the parked spare, if any.
    pub(crate) fn take(&self) -> Option<Arc<Generation<K, V, S>>> {
        // Acquire: pairs with the Release of the exchange in `refill`, so the
        // generation built there is fully visible here.
        let raw = self.slot.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: a non-null pointer in the slot came from `Arc::into_raw` in `refill`
        // and the swap made us its only owner.
        (!raw.is_null()).then(|| unsafe { Arc::from_raw(raw) })
    }

    /// Parks the clearer's reference to the generation it just retired; releases
    /// an older one still parked. O(1).
    pub(crate) fn hand_off(&self, retired: Arc<Generation<K, V, S>>) {
        let raw = Arc::into_raw(retired).cast_mut();
        // AcqRel: Release hands the reference to the Acquire swap in
        // `release_handed_off`; Acquire takes over an older one from another clearer.
        let older = self.retired.swap(raw, Ordering::AcqRel);
        if !older.is_null() {
            // SAFETY: the pointer came from `Arc::into_raw` above (on some clearer)
            // and the swap made us its only owner.
            drop(unsafe { Arc::from_raw(older) });
        }
    }

    /// Releases the parked retired generation, if any. Runs on the reclaimer.
    pub(crate) fn release_handed_off(&self) {
        // Acquire: pairs with the AcqRel swap in `hand_off`.
        let raw = self.retired.swap(ptr::null_mut(), Ordering::Acquire);
        if !raw.is_null() {
            // SAFETY: as in `hand_off`: ours after the swap.
            drop(unsafe { Arc::from_raw(raw) });
        }
    }

    /// Parks a new empty generation if none is parked. Runs on the reclaimer.
    pub(crate) fn refill(&self, reclaimer: &Arc<Reclaimer>) {
        // Relaxed: a hint to skip building; the exchange below decides.
        if !self.slot.load(Ordering::Relaxed).is_null() {
            return;
        }
        let spare = Arc::new(Generation::new(0, self.empty_store(), reclaimer));
        let raw = Arc::into_raw(spare).cast_mut();
        // Release: pairs with the Acquire swap in `take`. Relaxed on failure: the
        // slot is simply kept as it is.
        if let Err(_parked) =
            self.slot
                .compare_exchange(ptr::null_mut(), raw, Ordering::Release, Ordering::Relaxed)
        {
            // SAFETY: the exchange failed, so `raw` was never published: still ours.
            drop(unsafe { Arc::from_raw(raw) });
        }
    }
}

impl<K, V, S> Standby<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    pub(crate) fn hasher(&self) -> &S {
        &self.hasher
    }
}

impl<K, V, S> Drop for Standby<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    fn drop(&mut self) {
        // An unused spare is an empty, unpublished generation: its drop hands an
        // empty table to the reclaimer, which does not count it as retired.
        drop(self.take());
        self.release_handed_off();
    }
}
