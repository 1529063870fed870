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
//!   reclaimer builds the next empty generation and parks it here, numbered with
//!   the id the map's next publish gives (so that the clear never writes its
//!   head, a line the reclaimer's core wrote last); `clear_async` takes it with one
//!   atomic swap, under the map's publish lock, and builds one inline only when
//!   none is ready (a map's first clear, a burst of clears, manual mode between
//!   passes).
//! * The **hand-off**: the slot's reference to the generation a clear just retired.
//!   It may not be dropped on the clearer: pinned readers and writers may still be
//!   using the generation through the map's `pinned` pointer, without a count, so
//!   the reference must outlive the writers' shard locks and an epoch grace period
//!   (below); and dropping it there would,
//!   when it is the last, run the generation's drop on the clearer (cold lines).
//!   Instead the clearer pushes it here with one compare-and-swap (linked through
//!   the generation's own `parked` field: no allocation), in the same cache line as
//!   the spare it has just taken (so a clear misses one line of the map, not two),
//!   before its move of `pinned` (so that the CAS waits for no store to a line the
//!   readers hold), and the reclaimer's next pass releases every parked generation
//!   that `pinned` has moved off (the publish's `mark_published`, after the move)
//!   after a grace period (`release_after_grace`).
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
use crate::sync::{Arc, AtomicBool, AtomicPtr, AtomicU64, Ordering, WeakableArc};
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
    /// The spare: an `Arc<Generation>` turned into a raw pointer, already numbered
    /// with the id the map's next publish gives; or, when no spare is parked, that
    /// id as a tag (`SpareSlot`: shifted left once, the low bit set, where a
    /// generation's address is even). Numbered ahead so that a clear never writes
    /// the spare's head, a line the reclaimer's core wrote last.
    slot: AtomicPtr<Generation<K, V, S>>,
    /// The hand-off: a list of `Arc<Generation>`s turned into raw pointers, linked
    /// through their `parked` fields; null when empty.
    retired: AtomicPtr<Generation<K, V, S>>,
    /// The id of the generation the map's last publish made current, stored after
    /// its move of `pinned` (`mark_published`). A publish hands the retired
    /// generation off before that move, so that its push waits for nothing (see
    /// `hand_off_and_register`); a pass releases a parked generation only once
    /// this id has passed it, that is once `pinned` has moved off it.
    published_id: AtomicU64,
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
            // The map's first generation is numbered 0 (`AtomicMap::from_builder`).
            slot: AtomicPtr::new(next_id_tag(1)),
            retired: AtomicPtr::new(ptr::null_mut()),
            published_id: AtomicU64::new(0),
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
    ///
    /// Called before the publish moves `pinned` off `retired` (and before
    /// `mark_published`): the push's `lock cmpxchg` then waits for no store to a
    /// line that readers hold, where after the move it waited for the store to
    /// `pinned` to reach every reader's core. A pass that takes the hand-off
    /// before `mark_published` parks it again.
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

    /// Records that the publish giving `id` has moved `pinned` to that generation:
    /// every generation numbered below it may now be released (after the quiesce
    /// and the grace period). Called by the publish, under its lock, after its
    /// store to `pinned`.
    pub(crate) fn mark_published(&self, id: u64) {
        // Release: pairs with the Acquire load in `release_handed_off`, so that a
        // pass that sees `id` sees `pinned` moved (the store before this one), and
        // its quiesce of the shard locks comes after that move.
        self.published_id.store(id, Ordering::Release);
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

    /// Takes the parked spare for the publish that gives `id`, leaving the tag of
    /// `id + 1`; `None` if none is parked. The spare is unshared and already
    /// numbered `id` (the slot's invariant, kept by `refill` and `renumber_spare`):
    /// the clear writes nothing to it before publishing it.
    ///
    /// # Safety
    /// The caller holds its map's publish lock and publishes the result with `id`,
    /// or else the map's next publish gives `id` (the lock orders every publish, so
    /// the tag it leaves stays true).
    #[inline]
    pub(crate) unsafe fn take_spare(&self, id: u64) -> Option<Arc<Generation<K, V, S>>> {
        // Acquire: pairs with the Release of the exchange in `refill`, so the
        // generation built (and numbered) there is fully visible here.
        let raw = self
            .slot
            .swap(next_id_tag(id.wrapping_add(1)), Ordering::Acquire);
        if is_tag(raw) {
            return None;
        }
        // SAFETY: a slot that holds no tag holds a pointer from `Arc::into_raw` in
        // `refill` (the only writer of pointers), owning one count; the swap made
        // us its only owner.
        let spare = unsafe { Arc::from_raw(raw) };
        if spare_id_may_be_stale(id) {
            // SAFETY: ours alone (just taken), published only after this call.
            unsafe { spare.prepare_publish(id) };
        }
        debug_assert_eq!(spare.id(), id, "the parked spare is numbered ahead");
        Some(spare)
    }

    /// Keeps the slot's invariant after a publish that gave `id - 1` to a
    /// generation other than the spare (a `replace`): the parked spare, or the
    /// tag, is renumbered `id`. Writes the spare's head: a `replace` is O(n)
    /// anyway. (A clear that finds no spare leaves the right tag in `take_spare`.)
    ///
    /// # Safety
    /// The caller holds its map's publish lock, and the map's next publish gives
    /// `id`.
    pub(crate) unsafe fn renumber_spare(&self, id: u64) {
        // SeqCst: Acquire would do (it pairs with `refill`'s Release exchange, so
        // that a parked spare's numbering is rewritten after `refill` wrote it),
        // but nothing can fail on a stronger one, and a `replace` is O(n): it
        // takes the ordering that needs no model. (A plain load on x86.)
        let mut current = self.slot.load(Ordering::SeqCst);
        loop {
            if !is_tag(current) {
                // A parked spare, as in `take_spare`; no other thread touches it
                // while it stays parked: `refill` never writes a slot that holds
                // a pointer, and every taker holds the publish lock, as the
                // caller does.
                // SAFETY: `prepare_publish`'s third case (above).
                unsafe { (*current).prepare_publish(id) };
                return;
            }
            // SeqCst, as the load above (on failure, the spare a racing `refill`
            // parked meanwhile is renumbered next turn).
            match self.slot.compare_exchange_weak(
                current,
                next_id_tag(id),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return,
                Err(now) => current = now,
            }
        }
    }

    /// A new empty generation, built here when no spare is parked, kept out of
    /// line so that a clear's code stays on as few lines as it can. Unnumbered.
    #[cold]
    #[inline(never)]
    pub(crate) fn build_empty(&self) -> Arc<Generation<K, V, S>> {
        Arc::new(self.generation(self.empty_store()))
    }

    /// Parks a new empty generation if none is parked, numbered with the id the
    /// slot's tag names. Runs on the reclaimer.
    fn refill(&self) {
        // Relaxed: a hint to skip building, and the tag, a number with no data
        // behind it; the exchange below decides.
        let mut expected = self.slot.load(Ordering::Relaxed);
        if !is_tag(expected) {
            return;
        }
        let raw = Arc::into_raw(Arc::new(self.generation(self.empty_store()))).cast_mut();
        loop {
            // SAFETY: `raw` is ours alone until the exchange below parks it.
            unsafe { (*raw).prepare_publish(tag_id(expected)) };
            // Release: pairs with the Acquire swap in `take_spare` (and the Acquire
            // loads in `renumber_spare`): the generation, numbered, is seen whole.
            // Relaxed on failure: a new tag (a publish came between) is only a
            // number; a pointer means another refill parked one, and ours goes.
            match self
                .slot
                .compare_exchange(expected, raw, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) if is_tag(now) => expected = now,
                Err(_) => {
                    // SAFETY: `raw` is `Arc::into_raw`'s, above; never parked, so its
                    // count is still ours, given back once here.
                    discard_spare(unsafe { Arc::from_raw(raw) });
                    return;
                }
            }
        }
    }
}

/// The tag of an empty spare slot: `id`, shifted left once with the low bit set
/// (never a generation's address, which is even). An `id` too large to shift
/// (past 2^63 publishes, or 2^31 on a 32-bit target) is tagged 0's tag, and
/// `take_spare` renumbers the spare itself from then on (`spare_id_may_be_stale`).
fn next_id_tag<G>(id: u64) -> *mut G {
    let tag = usize::try_from(id)
        .ok()
        .filter(|&id| id <= usize::MAX >> 1)
        .map_or(1, |id| (id << 1) | 1);
    ptr::without_provenance_mut(tag)
}

/// Whether the slot holds a tag rather than a parked spare.
fn is_tag<G>(slot: *mut G) -> bool {
    slot.addr() & 1 == 1
}

/// The id a tag names (see `next_id_tag`).
fn tag_id<G>(tag: *mut G) -> u64 {
    (tag.addr() >> 1) as u64
}

/// Whether a spare taken for `id` may carry another number: `id` or the next is
/// past what a tag holds (see `next_id_tag`).
fn spare_id_may_be_stale(id: u64) -> bool {
    id.wrapping_add(1) > (usize::MAX >> 1) as u64
}

/// Drops a spare that was never published: marked so first, since a generation
/// numbered ahead counts as published (`Generation::unpublish`).
fn discard_spare<K, V, S>(mut spare: Arc<Generation<K, V, S>>) {
    if let Some(spare) = Arc::get_mut(&mut spare) {
        spare.unpublish();
    }
    drop(spare);
}

/// What needs no bounds: moving generations in and out of the slots and marking the
/// map dropped (used by the unbounded `Drop` impls of the map and the standby).
impl<K, V, S> Standby<K, V, S> {
    /// Takes the parked spare, if any, for a map that is gone (no publish is left
    /// to number), and drops it, marked never published.
    fn discard_parked_spare(&self) {
        // SeqCst: Acquire would do, as in `take_spare`; once per map, so it takes
        // the ordering that needs no model.
        let raw = self.slot.swap(next_id_tag(0), Ordering::SeqCst);
        if !is_tag(raw) {
            // SAFETY: as in `take_spare`: the swap made us the owner of its count.
            discard_spare(unsafe { Arc::from_raw(raw) });
        }
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

    /// Releases every parked retired generation that `pinned` has moved off
    /// (`mark_published`), each after a grace period, once the map's shard locks
    /// are quiesced (see the module docs; `wait`, given once the map is gone:
    /// waiting for each lock, and every parked generation counts as moved off;
    /// else giving up, the generations left parked, if one stays held). Runs on
    /// the reclaimer (or in the standby's drop). Returns whether it released any.
    fn release_handed_off(&self, wait: bool) -> bool {
        // Relaxed: a look before the swap, so that a walk past a map with nothing
        // parked writes nothing (the swap would take the line from the clearer's
        // cache at every pass). A push it misses is taken by the next walk, or by
        // the standby's drop.
        if self.retired.load(Ordering::Relaxed).is_null() {
            return false;
        }
        // Acquire: pairs with the Release of every push in `hand_off` (the link,
        // and the generation with its `Arc` allocation).
        let mut raw = self.retired.swap(ptr::null_mut(), Ordering::Acquire);
        // Acquire: pairs with the Release store in `mark_published`, which the
        // publish makes after its move of `pinned`: a generation numbered below
        // the id read here has had `pinned` moved off it, and the quiesce below
        // comes after that move.
        let published = self.published_id.load(Ordering::Acquire);
        // The generations `pinned` has moved off, linked again through `parked`
        // (ours now); the others are parked again at once, for a later pass: their
        // publish has handed them off and not yet moved `pinned`.
        let mut ready: *mut Generation<K, V, S> = ptr::null_mut();
        while !raw.is_null() {
            // SAFETY: the list holds only pointers from `Arc::into_raw` in
            // `hand_off`, each owning one count; the swap made us the owner of the
            // whole chain, each taken once as we walk it.
            let generation = unsafe { Arc::from_raw(raw) };
            // Relaxed: the link was published by the push's Release (taken above).
            raw = generation.parked().load(Ordering::Relaxed);
            // Once the map is gone (`wait`), no publish is left to move `pinned`,
            // nor `pinned` itself: all is ready (even the hand-off of a publish
            // that unwound before `mark_published`).
            if wait || generation.id() < published {
                // Relaxed: this walk's own list, read back by this thread below.
                generation.parked().store(ready, Ordering::Relaxed);
                ready = Arc::into_raw(generation).cast_mut();
            } else {
                self.hand_off(generation);
            }
        }
        let any = !ready.is_null();
        let quiesced = !any || {
            if wait {
                self.locks.quiesce();
                true
            } else {
                self.locks.try_quiesce()
            }
        };
        while !ready.is_null() {
            // SAFETY: `ready` holds pointers from `Arc::into_raw` just above, each
            // owning one count, each taken once as we walk them.
            let generation = unsafe { Arc::from_raw(ready) };
            // Relaxed: written by this thread above.
            ready = generation.parked().load(Ordering::Relaxed);
            if quiesced {
                release_after_grace(generation);
            } else {
                // Parked again, for a later pass (the move of `pinned` off it
                // happened before, as checked above).
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
            self.discard_parked_spare();
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
        self.discard_parked_spare();
        // No writer is left: the map is gone (it holds the standby).
        self.release_handed_off(true);
    }
}
