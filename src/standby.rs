//! `Standby`: what a map needs to make new generations, and the next one, built
//! ahead (the **spare**).
//!
//! Building an empty table allocates its shard array (`shards × 128` bytes); on the
//! clearer that allocation was the costly part of a clear: at 64 shards it misses
//! the allocator's per-thread cache and contends for the arena lock with the
//! reclaimer, which is freeing the previous generation into the same arena
//! (measured with a throwaway probe: clear median 6 µs, p99 260 µs). So the
//! reclaimer builds the next empty generation when it releases the generation a
//! clear handed off (`Generation::hand_off`), and parks it here; `clear_async`
//! takes it with one atomic swap and builds one inline only when none is ready
//! (the map's first clear, a burst of clears, manual mode between passes).
//!
//! The standby also holds the map's ownership of its account (`reclaim/home.rs`),
//! so that the account lives as long as the map, and the hasher and shard count
//! every generation is built with. Jobs refer to it through a `Weak`: a parked
//! spare holds a job that names the standby, and the standby holds the spare.

use std::hash::{BuildHasher, Hash};
use std::ptr;

use crate::generation::Generation;
use crate::reclaim::home::HomeOwner;
use crate::store::Store;
use crate::sync::{Arc, AtomicPtr, Ordering, WeakableArc};

/// What the map and its reclaimer need to build generations.
pub(crate) struct Standby<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// The spare: an `Arc<Generation>` turned into a raw pointer, or null.
    slot: AtomicPtr<Generation<K, V, S>>,
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
    pub(crate) fn new(owner: HomeOwner, hasher: S, shards: usize) -> Self {
        Standby {
            slot: AtomicPtr::new(ptr::null_mut()),
            owner,
            hasher,
            shards,
        }
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
    pub(crate) fn generation(
        self: &WeakableArc<Self>,
        store: Store<K, V, S>,
    ) -> Generation<K, V, S> {
        Generation::new(store, self)
    }

    /// The parked spare, or a new empty generation built here. The result is
    /// unshared (its id can still be set).
    pub(crate) fn take_or_build(self: &WeakableArc<Self>) -> Arc<Generation<K, V, S>> {
        self.take()
            .unwrap_or_else(|| Arc::new(self.generation(self.empty_store())))
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

    /// Parks a new empty generation if none is parked. Runs on the reclaimer.
    pub(crate) fn refill(self: &WeakableArc<Self>) {
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
            // SAFETY: the exchange failed, so `raw` was never published: still ours.
            drop(unsafe { Arc::from_raw(raw) });
        }
    }
}

impl<K, V, S> Drop for Standby<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        // An unused spare is an empty, unpublished generation: its drop hands an
        // empty table to the reclaimer, which does not count it as retired.
        drop(self.take());
    }
}
