//! `Standby`: the generations a clear needs, kept off the clearer's path, and what a
//! map needs to make new generations.
//!
//! * The **spare**: the next empty generation, built ahead. Building an empty table
//!   allocates its shard array (`shards × 128` bytes, plus 127 to align it:
//!   `table/shards.rs`); on the clearer that
//!   allocation was the costly part of a clear: at 64 shards it misses the
//!   allocator's per-thread cache and contends for the arena lock with the
//!   reclaimer, which is freeing the previous generation into the same arena
//!   (measured with a throwaway probe: clear median 6 µs, p99 260 µs). So the
//!   reclaimer builds the next empty generation and parks it here; `clear_async`
//!   takes it with one atomic swap and builds one inline only when none is ready
//!   (a map's first clear, a burst of clears, manual mode between passes).
//! * The **hand-off**: the slot's reference to the generation a clear just retired.
//!   It may not be dropped on the clearer: pinned readers and writers may still be
//!   using the generation through the map's `pinned` pointer, without a count, so
//!   the reference must outlive the writers' shard locks and an epoch grace period
//!   (below); and dropping it there would,
//!   when it is the last, run the generation's drop on the clearer (cold lines).
//!   Instead the clearer pushes it here with one compare-and-swap (linked through
//!   the generation's own `parked` field: no allocation), in the same cache line as
//!   the spare it has just taken (so a clear misses one line of the map, not two),
//!   and the reclaimer's next pass releases every parked generation after a grace
//!   period (`release_after_grace`).
//!
//! The reclaimer reaches a map's standby through its domain's registry: a map
//! registers its standby as a [`MapService`] at its first hand-off (one push, by
//! the first clear or replace), each pass calls [`MapService::service`] on every
//! registered map, and the map's drop marks its standby so that the next pass lets
//! go of it. A map never cleared is never registered: it has nothing to hand off
//! and needs no spare, so building it pushes nothing to the reclaimer, and passes
//! never visit it (with 100,000 maps registered at creation, each pass walked them
//! all, and the registry's nodes, allocated by the creating thread and freed by the
//! reclaimer's, contended for the allocator's arena lock with the next maps being
//! built: `docs/BENCHMARKS.md`, map creation). (A job pushed by each clear onto
//! the domain's shared list instead cost one more cold line per clear: 3.7–5.4 µs
//! against 3.0–3.9 µs at 1,000,000 entries, `docs/BENCHMARKS.md`.)
//!
//! A pass releases a map's parked generations only once it has *quiesced* the
//! map's shard locks (taken and released each once, `table/locks.rs`): writers
//! pin no epoch, and hold their shard's lock while they use the generation they
//! found current, so the grace period alone would not wait for them. A lock held
//! through the quiesce's tries (a writer's long closure) leaves the generations
//! parked for a later pass.
//!
//! The standby also holds the map's ownership of its account (`reclaim/home.rs`),
//! and the hasher and shard locks every generation is built with.

use std::hash::{BuildHasher, Hash};
use std::ptr;

use crate::generation::{Generation, release_after_grace};
use crate::reclaim::domain::{MapService, Serviced};
use crate::reclaim::home::HomeOwner;
use crate::store::Store;
use crate::sync::{Arc, AtomicBool, AtomicPtr, Ordering, WeakableArc};
use crate::table::ShardLocks;

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
    /// The hand-off: a list of `Arc<Generation>`s turned into raw pointers, linked
    /// through their `parked` fields; null when empty.
    retired: AtomicPtr<Generation<K, V, S>>,
    /// Set by the map's drop: the next pass releases what is parked and lets go.
    dropped: AtomicBool,
    /// Set by the first hand-off, which registers the standby with the domain.
    registered: AtomicBool,
    /// The map's ownership of its account.
    owner: HomeOwner,
    hasher: S,
    /// The writers' locks of every generation's table.
    locks: ShardLocks,
}

impl<K, V, S> Standby<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// A standby, registered with its map's reclaimer by its first hand-off.
    pub(crate) fn new(owner: HomeOwner, hasher: S, shards: usize) -> WeakableArc<Self> {
        WeakableArc::new(Standby {
            slot: AtomicPtr::new(ptr::null_mut()),
            retired: AtomicPtr::new(ptr::null_mut()),
            dropped: AtomicBool::new(false),
            registered: AtomicBool::new(false),
            owner,
            hasher,
            locks: ShardLocks::new(shards),
        })
    }

    /// Parks the slot's reference to the generation a clear just retired (see
    /// [`hand_off`](Self::hand_off)), and registers the standby with the domain if
    /// this is the map's first hand-off, so that a pass releases it.
    pub(crate) fn hand_off_and_register(
        this: &WeakableArc<Self>,
        retired: Arc<Generation<K, V, S>>,
    ) {
        this.hand_off(retired);
        // The push above comes first: the pass that takes the registration (with
        // Acquire) then finds the hand-off. A clearer that loses the swap to a
        // racing first clearer leaves its hand-off for whichever pass, after that
        // registration, comes next; the map is serviced until it drops.
        // Relaxed load: a hint that skips the swap on every later clear (a stale
        // `false` only leads to the swap). Relaxed swap: exactly one caller sees
        // `false`, whatever the ordering; the registration is published by the
        // registry's own push.
        if !this.registered.load(Ordering::Relaxed)
            && !this.registered.swap(true, Ordering::Relaxed)
        {
            let service: WeakableArc<dyn MapService> = this.clone();
            this.owner.home().get().domain().register(service);
        }
    }

    pub(crate) fn owner(&self) -> &HomeOwner {
        &self.owner
    }

    pub(crate) fn hasher(&self) -> &S {
        &self.hasher
    }

    /// The writers' locks of every generation's table.
    pub(crate) fn locks(&self) -> &ShardLocks {
        &self.locks
    }

    /// An empty table with this map's hasher and shard count.
    pub(crate) fn empty_store(&self) -> Store<K, V, S> {
        self.store_for(0)
    }

    /// An empty table with this map's hasher and shard count, sized for about
    /// `capacity` entries.
    pub(crate) fn store_for(&self, capacity: usize) -> Store<K, V, S> {
        Store::new(self.hasher.clone(), self.locks.len(), capacity)
    }

    /// A new unpublished generation holding `store`.
    pub(crate) fn generation(&self, store: Store<K, V, S>) -> Generation<K, V, S> {
        Generation::new(store, self)
    }

    /// The parked spare, or a new empty generation built here. The result is
    /// unshared (its id can still be set).
    #[inline]
    pub(crate) fn take_or_build(&self) -> Arc<Generation<K, V, S>> {
        self.take().unwrap_or_else(|| self.build_empty())
    }

    /// A new empty generation, built here: the slow path of `take_or_build`, kept
    /// out of line so that a clear's code stays on as few lines as it can.
    #[cold]
    #[inline(never)]
    fn build_empty(&self) -> Arc<Generation<K, V, S>> {
        Arc::new(self.generation(self.empty_store()))
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
    #[inline]
    pub(crate) fn take(&self) -> Option<Arc<Generation<K, V, S>>> {
        // Acquire: pairs with the Release of the exchange in `refill`, so the
        // generation built there is fully visible here.
        let raw = self.slot.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: a non-null pointer in the slot came from `Arc::into_raw` in `refill`
        // (the only writer of non-null) and owns one count; the swap made us its
        // only owner.
        (!raw.is_null()).then(|| unsafe { Arc::from_raw(raw) })
    }

    /// Parks the slot's reference to the generation a clear just retired, for the
    /// reclaimer to release after a grace period. O(1), lock-free.
    fn hand_off(&self, retired: Arc<Generation<K, V, S>>) {
        let raw = Arc::into_raw(retired).cast_mut();
        // Relaxed: a guess for the compare-and-swap below.
        let mut head = self.retired.load(Ordering::Relaxed);
        loop {
            // SAFETY: `raw` is the reference just turned into a pointer: alive, and
            // ours until the push below publishes it.
            // Relaxed: published by the Release of the push.
            unsafe { &*raw }.parked().store(head, Ordering::Relaxed);
            // Release: publishes the link and the clearer's reference (with the
            // generation it was built with) to the Acquire swap in
            // `release_handed_off`. Relaxed on failure: a new guess.
            match self.retired.compare_exchange_weak(
                head,
                raw,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Releases every parked retired generation, each after a grace period, once
    /// the map's shard locks are quiesced (see the module docs; `wait`: waiting
    /// for each lock, else giving up, the generations left parked, if one stays
    /// held). Runs on the reclaimer (or in the standby's drop). Returns whether it
    /// released any.
    fn release_handed_off(&self, wait: bool) -> bool {
        // Relaxed: a look before the swap, so that a walk past a map with nothing
        // parked writes nothing (the swap would take the line from the clearer's
        // cache at every pass). A push it misses is taken by the next walk, or by
        // the standby's drop.
        if self.retired.load(Ordering::Relaxed).is_null() {
            return false;
        }
        // Acquire: pairs with the Release of every push in `hand_off`, which comes
        // after the clear's move of `pinned` off the generation: the quiesce below
        // comes after that move too.
        let mut raw = self.retired.swap(ptr::null_mut(), Ordering::Acquire);
        let any = !raw.is_null();
        let quiesced = !any || {
            if wait {
                self.locks.quiesce();
                true
            } else {
                self.locks.try_quiesce()
            }
        };
        while !raw.is_null() {
            // SAFETY: the list holds only pointers from `Arc::into_raw` in
            // `hand_off`, each owning one count; the swap made us the owner of the
            // whole chain, each taken once as we walk it.
            let generation = unsafe { Arc::from_raw(raw) };
            // Relaxed: the link was published by the push's Release (taken above).
            raw = generation.parked().load(Ordering::Relaxed);
            if quiesced {
                release_after_grace(generation);
            } else {
                // Parked again, for a later pass (the move of `pinned` off it
                // happened before, as for every parked generation).
                self.hand_off(generation);
            }
        }
        any && quiesced
    }

    /// The map is being dropped: the next pass releases what is parked here and
    /// lets go of the standby.
    pub(crate) fn map_dropped(&self) {
        // SeqCst: Release would do (it pairs with the load in `service`, which then
        // sees every hand-off the map made), but nothing can fail on a weaker one:
        // the standby's own drop releases whatever a pass missed. Once per map, so
        // it takes the ordering that needs no model.
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl<K, V, S> MapService for Standby<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn service(&self) -> Serviced {
        // SeqCst: pairs with the store in `map_dropped` (Acquire would do; see
        // there), which comes after every hand-off of the map: read first, so that
        // the look of `release_handed_off` sees them all once the map is dropped.
        // (A plain load on x86.)
        let dropped = self.dropped.load(Ordering::SeqCst);
        // Once the map is dropped, no writer is left to wait for.
        let released = self.release_handed_off(dropped);
        if !dropped && !released && !self.retired.load(Ordering::Relaxed).is_null() {
            // Relaxed: a look, as in `release_handed_off`; a hand-off parked again
            // (or a new one) is found by the next walk either way.
            return Serviced::Deferred;
        }
        if dropped {
            // A hand-off parked before the drop was released above; the spare
            // (unpublished, not counted as retired) goes with the rest.
            drop(self.take());
            return Serviced::Gone;
        }
        if released {
            self.refill();
            return Serviced::Released;
        }
        Serviced::Idle
    }
}

impl<K, V, S> Drop for Standby<K, V, S> {
    fn drop(&mut self) {
        // Normally empty (the last pass took both); a map dropped with no pass after
        // it (a domain dropped meanwhile) still hands its generations over here.
        drop(self.take());
        // No writer is left: the map is gone (it holds the standby).
        self.release_handed_off(true);
    }
}
