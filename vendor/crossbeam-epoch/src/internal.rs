//! The global data and participant for garbage collection.
//!
//! # Registration
//!
//! In order to track all participants in one place, we need some form of participant
//! registration. When a participant is created, it is registered to a global lock-free
//! singly-linked list of registries; and when a participant is leaving, it is unregistered from the
//! list.
//!
//! # Pinning
//!
//! Every participant contains an integer that tells whether the participant is pinned and if so,
//! what was the global epoch at the time it was pinned. Participants also hold a pin counter that
//! aids in periodic global epoch advancement.
//!
//! When a participant is pinned, a `Guard` is returned as a witness that the participant is pinned.
//! Guards are necessary for performing atomic operations, and for freeing/dropping locations.
//!
//! # Thread-local bag
//!
//! Objects that get unlinked from concurrent data structures must be stashed away until the global
//! epoch sufficiently advances so that they become safe for destruction. Pointers to such objects
//! are pushed into a thread-local bag, and when it becomes full, the bag is marked with the current
//! global epoch and pushed into the global queue of bags. We store objects in thread-local storages
//! for amortizing the synchronization cost of pushing the garbages to a global queue.
//!
//! # Global queue
//!
//! Whenever a bag is pushed into a queue, the objects in some bags in the queue are collected and
//! destroyed along the way. This design reduces contention on data structures. The global queue
//! cannot be explicitly accessed: the only way to interact with it is by calling functions
//! `defer()` that adds an object to the thread-local bag, or `collect()` that manually triggers
//! garbage collection.
//!
//! Ideally each instance of concurrent data structure may have its own queue that gets fully
//! destroyed as soon as the data structure gets dropped.

use crate::primitive::cell::UnsafeCell;
use crate::primitive::sync::atomic::{self, AtomicUsize, Ordering};
use core::cell::Cell;
use core::mem::{self, ManuallyDrop};
use core::num::Wrapping;
use core::{fmt, ptr};

use crossbeam_utils::CachePadded;

use crate::asymmetric;
use crate::atomic::{Owned, Shared};
use crate::collector::{Collector, LocalHandle};
use crate::deferred::Deferred;
use crate::epoch::{AtomicEpoch, Epoch, EpochReprSigned};
use crate::guard::{unprotected, Guard};
use crate::sync::list::{Entry, IsElement, IterError, List};
use crate::sync::queue::Queue;

/// Maximum number of objects a bag can contain.
#[cfg(not(any(crossbeam_sanitize, miri)))]
const MAX_OBJECTS: usize = 64;
// Makes it more likely to trigger any potential data races.
#[cfg(any(crossbeam_sanitize, miri))]
const MAX_OBJECTS: usize = 4;

/// A bag of deferred functions.
pub(crate) struct Bag {
    /// Stashed objects.
    deferreds: [Deferred; MAX_OBJECTS],
    len: usize,
}

/// `Bag::try_push()` requires that it is safe for another thread to execute the given functions.
unsafe impl Send for Bag {}

impl Bag {
    /// Returns a new, empty bag.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Returns `true` if the bag is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Attempts to insert a deferred function into the bag.
    ///
    /// Returns `Ok(())` if successful, and `Err(deferred)` for the given `deferred` if the bag is
    /// full.
    ///
    /// # Safety
    ///
    /// It should be safe for another thread to execute the given function.
    pub(crate) unsafe fn try_push(&mut self, deferred: Deferred) -> Result<(), Deferred> {
        if self.len < MAX_OBJECTS {
            self.deferreds[self.len] = deferred;
            self.len += 1;
            Ok(())
        } else {
            Err(deferred)
        }
    }

    /// Seals the bag with the given epoch.
    fn seal(self, epoch: Epoch) -> SealedBag {
        SealedBag { epoch, _bag: self }
    }
}

impl Default for Bag {
    fn default() -> Self {
        Bag {
            len: 0,
            deferreds: [Deferred::NO_OP; MAX_OBJECTS],
        }
    }
}

impl Drop for Bag {
    fn drop(&mut self) {
        // Call all deferred functions.
        for deferred in &mut self.deferreds[..self.len] {
            let no_op = Deferred::NO_OP;
            let owned_deferred = mem::replace(deferred, no_op);
            owned_deferred.call();
        }
    }
}

// can't #[derive(Debug)] because Debug is not implemented for arrays 64 items long
impl fmt::Debug for Bag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bag")
            .field("deferreds", &&self.deferreds[..self.len])
            .finish()
    }
}

/// A pair of an epoch and a bag.
#[derive(Default, Debug)]
struct SealedBag {
    epoch: Epoch,
    _bag: Bag,
}

/// It is safe to share `SealedBag` because `is_expired` only inspects the epoch.
unsafe impl Sync for SealedBag {}

impl SealedBag {
    /// Checks if it is safe to drop the bag w.r.t. the given global epoch.
    fn is_expired(&self, global_epoch: Epoch) -> bool {
        // A pinned participant can witness at most one epoch advancement. Therefore, any bag that
        // is within one epoch of the current one cannot be destroyed yet.
        global_epoch.wrapping_sub(self.epoch) >= 2
    }
}

/// The global data for a garbage collector.
pub(crate) struct Global {
    /// The intrusive linked list of `Local`s.
    locals: List<Local>,

    /// The global queue of bags of deferred functions.
    queue: Queue<SealedBag>,

    /// The global epoch.
    pub(crate) epoch: CachePadded<AtomicEpoch>,

    /// How many participants pin with the light fence now (this fork's,
    /// `asymmetric.rs`): a seal or an advance issues the heavy barrier only if one
    /// may.
    light_pinners: CachePadded<AtomicUsize>,

    /// How many process-wide barriers this collector's seals and advances issued
    /// (tests only).
    #[cfg(test)]
    barriers: AtomicUsize,

    /// How many light participants seals and advances took off the count (tests
    /// only).
    #[cfg(test)]
    demotions: AtomicUsize,

    /// How many marks of `heavy_fence_demoting` were taken back (tests only).
    #[cfg(test)]
    takebacks: AtomicUsize,
}

/// `Local::light_state` (this fork's): pins with the full fence, not counted in
/// `Global::light_pinners`.
const HEAVY: usize = 0;
/// Pins light, counted.
const LIGHT: usize = 1;
/// Counted, or was: a seal or an advance found the participant idle and is taking
/// it off the count, or has (`Global::heavy_fence_demoting`). Its next pin takes
/// the full fence and turns it heavy (`Local::acknowledge_demotion`).
const DEMOTED: usize = 2;

impl Global {
    /// Number of bags to destroy.
    const COLLECT_STEPS: usize = 8;

    /// Creates a new global data for garbage collection.
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            locals: List::new(),
            queue: Queue::new(),
            epoch: CachePadded::new(AtomicEpoch::new(Epoch::starting())),
            light_pinners: CachePadded::new(AtomicUsize::new(0)),
            #[cfg(test)]
            barriers: AtomicUsize::new(0),
            #[cfg(test)]
            demotions: AtomicUsize::new(0),
            #[cfg(test)]
            takebacks: AtomicUsize::new(0),
        }
    }

    /// Advances after which a light participant that has not pinned since is taken
    /// off the light count by the next seal or advance (this fork's,
    /// `heavy_fence_demoting`). Not 1 or 2: a reader preempted for a few advances
    /// is not idle, and one taken off wrongly pays the full fence for its next
    /// `PINS_BEFORE_LIGHT` pins (about 10 µs here), where an idle one kept costs
    /// every seal and advance a `membarrier` call (about 1 µs).
    const IDLE_ADVANCES_BEFORE_DEMOTION: EpochReprSigned = 4;

    /// [`Global::heavy_fence`], which also takes the light participants that have
    /// been idle for `IDLE_ADVANCES_BEFORE_DEMOTION` advances before `global_epoch`
    /// off the light count (this fork's, `asymmetric.rs`, "Idle light
    /// participants"): a thread that read for a while and then sleeps would
    /// otherwise keep every seal and advance on the process-wide barrier until it
    /// runs again.
    ///
    /// The hand-shake, for an idle participant P: (a) a compare-and-swap of P's
    /// `light_state` from `LIGHT` to `DEMOTED`; (b) the fence, with the barrier,
    /// since P is still counted; (c) a load of P's epoch. A light pin of P stores
    /// its epoch (Y), then, after its light fence, loads its `light_state` (X); here
    /// X is stored, then the barrier, then Y is loaded: the store-buffering shape
    /// the barrier forbids both sides to miss. So either (c) sees P pinned, and P
    /// stays counted (the mark is taken back, unless P already saw it), or P's pin
    /// sees `DEMOTED` and takes the full fence itself (`Local::acknowledge_demotion`),
    /// as do all its later pins until it turns light again: then no pin of P needs
    /// the barrier any more, and (d) the count is decremented. A pin of P that
    /// ended before (c) was covered by the barrier while it ran; (c) reads its
    /// unpin's Release store with Acquire, and (d) is a Release decrement read with
    /// Acquire by `heavy_fence`, as `Local::leave_light`'s is.
    fn heavy_fence_demoting(&self, global_epoch: Epoch, guard: &Guard) {
        // Relaxed: a hint; `heavy_fence` loads the count again, with the ordering
        // it needs, and a participant missed here is looked at by a later fence.
        if self.light_pinners.load(Ordering::Relaxed) == 0 {
            self.heavy_fence();
            return;
        }
        let marked = self.mark_idle_light(global_epoch, guard);
        // (b): a marked participant is counted until (d), so this fence includes
        // the barrier.
        self.heavy_fence();
        self.demote_marked(global_epoch, marked);
    }

    /// Whether a participant whose unpinned epoch is `epoch` has been idle long
    /// enough to be taken off the light count (this fork's).
    fn idle_since(global_epoch: Epoch, epoch: Epoch) -> bool {
        !epoch.is_pinned()
            && global_epoch.wrapping_sub(epoch) >= Self::IDLE_ADVANCES_BEFORE_DEMOTION
    }

    /// Step (a) of `heavy_fence_demoting`: marks the light participants that look
    /// idle `DEMOTED`, and returns them.
    fn mark_idle_light<'g>(
        &'g self,
        global_epoch: Epoch,
        guard: &'g Guard,
    ) -> alloc::vec::Vec<&'g Local> {
        let mut marked = alloc::vec::Vec::new();
        for local in self.locals.iter(guard) {
            let Ok(local) = local else {
                break; // stalled: the rest waits for a later fence
            };
            // Relaxed: a hint (it may be stale); (c) looks again after the
            // barrier and decides.
            if Self::idle_since(global_epoch, local.epoch.load(Ordering::Relaxed))
                // Relaxed: a hint for the compare-and-swap.
                && local.light_state.load(Ordering::Relaxed) == LIGHT
                // (a). Acquire: pairs with `enter_light`'s Release store of
                // `LIGHT`, so that the increment precedes (d) in the count's
                // modification order. SeqCst on the store side would add nothing:
                // the fence that follows orders it before the barrier.
                && local
                    .light_state
                    .compare_exchange(LIGHT, DEMOTED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                marked.push(local);
            }
        }
        marked
    }

    /// Steps (c) and (d) of `heavy_fence_demoting`, after its barrier: each marked
    /// participant seen still idle, or that acknowledged the mark, is taken off
    /// the count; the mark of one seen pinned or pinned since is taken back.
    fn demote_marked(&self, global_epoch: Epoch, marked: alloc::vec::Vec<&Local>) {
        for local in marked {
            // (c). Acquire: pairs with `unpin`'s Release store, so that a heavy
            // fence that acquires (d) comes after P's last light pin.
            let epoch = local.epoch.load(Ordering::Acquire);
            // Not idle any more (pinned now, or since the first look, which may
            // also have been stale): the mark is taken back and P stays light,
            // unless P saw the mark first (it acknowledged, or left light by
            // itself, and its count is the marker's to decrement, below). P's
            // compare-and-swaps are Relaxed: what makes the decrement safe then is
            // P's own `SeqCst` fence (an acknowledging pin), or (c)'s view of
            // P's pin before the barrier (a `leave_light` during a light pin,
            // `asymmetric.rs`).
            if !Self::idle_since(global_epoch, epoch)
                && local
                    .light_state
                    .compare_exchange(DEMOTED, LIGHT, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                #[cfg(test)]
                self.takebacks.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // (d). Release: as `leave_light`'s decrement, with `heavy_fence`'s
            // Acquire load.
            self.light_pinners.fetch_sub(1, Ordering::Release);
            #[cfg(test)]
            self.demotions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The fence of a seal or an advance (this fork's, `asymmetric.rs`): a `SeqCst`
    /// fence, and the process-wide barrier when a participant may pin with the
    /// light fence.
    fn heavy_fence(&self) {
        atomic::fence(Ordering::SeqCst);
        // Acquire: pairs with the Release of `Local::leave_light`'s decrement, so a
        // participant not counted any more has its last light pin's epoch store
        // visible here. One whose increment this load misses made it after the
        // fence above, and its own fence after the increment (`enter_light`)
        // follows this one in the `SeqCst` order: its later pins see all that
        // preceded this fence. `asymmetric.rs` gives the whole argument.
        if self.light_pinners.load(Ordering::Acquire) > 0 {
            asymmetric::process_wide();
            #[cfg(test)]
            self.barriers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Pushes the bag into the global queue and replaces the bag with a new empty bag.
    pub(crate) fn push_bag(&self, bag: &mut Bag, guard: &Guard) {
        let bag = mem::replace(bag, Bag::new());

        // (This fork: the heavy side of the pins' fence, `asymmetric.rs`.)
        self.heavy_fence();

        let epoch = self.epoch.load(Ordering::Relaxed);
        self.queue.push(bag.seal(epoch), guard);
    }

    /// Collects several bags from the global queue and executes deferred functions in them.
    ///
    /// Note: This may itself produce garbage and in turn allocate new bags.
    ///
    /// `pin()` rarely calls `collect()`, so we want the compiler to place that call on a cold
    /// path. In other words, we want the compiler to optimize branching for the case when
    /// `collect()` is not called.
    #[cold]
    pub(crate) fn collect(&self, guard: &Guard) {
        let global_epoch = self.try_advance(guard);
        self.collect_in(global_epoch, guard);
    }

    /// Executes the deferred functions of several bags that expired in the current
    /// global epoch, without trying to advance it (this fork: how pins collect under
    /// asymmetric fences, `asymmetric.rs`).
    #[cold]
    pub(crate) fn collect_expired(&self, guard: &Guard) {
        // Acquire: pairs with the Release store of the epoch in `try_advance`, which
        // it made after its Acquire fence over every participant's epoch (their
        // unpins' Release stores), so the functions of a bag expired in this epoch
        // run after every use by a participant pinned when it was sealed. (Upstream
        // gets the same from the `SeqCst` fence after its own load.) A stale epoch
        // only finds fewer bags expired.
        let global_epoch = self.epoch.load(Ordering::Acquire);
        self.collect_in(global_epoch, guard);
    }

    fn collect_in(&self, global_epoch: Epoch, guard: &Guard) {
        let steps = if cfg!(crossbeam_sanitize) {
            usize::MAX
        } else {
            Self::COLLECT_STEPS
        };

        for _ in 0..steps {
            match self.queue.try_pop_if(
                &|sealed_bag: &SealedBag| sealed_bag.is_expired(global_epoch),
                guard,
            ) {
                None => break,
                Some(sealed_bag) => drop(sealed_bag),
            }
        }
    }

    /// `push_bag` then `collect` with one heavy fence for both (this fork: how
    /// `Local::flush` seals a bag under asymmetric fences, where each heavy fence is
    /// a `membarrier` call, `asymmetric.rs`).
    ///
    /// Each keeps upstream's shape around the fence: the advance loads the global
    /// epoch *before* it (as `try_advance`: load, fence, participants' epochs), the
    /// seal loads it *after* it (as `push_bag`: fence, load). If the two loads differ,
    /// another thread advanced in between; this one does not try again (its
    /// load-before no longer names the current epoch) and collects in the newer one.
    #[cold]
    pub(crate) fn seal_and_collect(&self, bag: &mut Bag, guard: &Guard) {
        let bag = mem::replace(bag, Bag::new());
        let before = self.epoch.load(Ordering::Relaxed);
        self.heavy_fence_demoting(before, guard);
        // Acquire: when the advance below is skipped, this epoch is what the bags
        // are collected in, and must be read as `collect_expired` reads it.
        let epoch = self.epoch.load(Ordering::Acquire);
        self.queue.push(bag.seal(epoch), guard);
        let global_epoch = if before == epoch {
            self.advance_from(before, guard)
        } else {
            epoch
        };
        self.collect_in(global_epoch, guard);
    }

    /// Attempts to advance the global epoch.
    ///
    /// The global epoch can advance only if all currently pinned participants have been pinned in
    /// the current epoch.
    ///
    /// Returns the current global epoch.
    ///
    /// `try_advance()` is annotated `#[cold]` because it is rarely called.
    #[cold]
    pub(crate) fn try_advance(&self, guard: &Guard) -> Epoch {
        // For ThreadSanitizer that does not understand fences, we simulate the effect of `load; fence`.
        let global_epoch = self.epoch.load(if cfg!(crossbeam_sanitize_thread) {
            Ordering::Acquire
        } else {
            Ordering::Relaxed
        });
        // (This fork.) While some participant pins light, the fence below is a
        // process-wide barrier. An advance that a participant pinned in an older
        // epoch refuses does not pay it: a look at the participants first, without
        // the fence, and the barrier only if none is seen behind (`lags_behind`).
        // Relaxed: a hint; `heavy_fence` loads the count again, with the ordering
        // it needs.
        if self.light_pinners.load(Ordering::Relaxed) > 0 && self.lags_behind(global_epoch, guard) {
            // Acquire: what the caller collects in, read as `collect_expired` reads
            // it (without the fence, this load's own ordering is what there is).
            return self.epoch.load(Ordering::Acquire);
        }
        // (This fork: the heavy side of the pins' fence, `asymmetric.rs`.)
        self.heavy_fence_demoting(global_epoch, guard);
        self.advance_from(global_epoch, guard)
    }

    /// Whether some participant is seen pinned in an epoch other than
    /// `global_epoch`, or the look was stalled, so that an advance from it would be
    /// refused (this fork's: `try_advance` then skips the barrier).
    ///
    /// No fence orders these loads, and none needs to: a participant seen pinned
    /// in an older epoch was pinned there when its store was made, and a store not
    /// yet visible only hides a later pin or unpin of it. So a participant seen
    /// behind may have moved on since, and the advance that is skipped would then
    /// have succeeded: the next try makes it. A participant not seen behind is
    /// looked at again after the barrier, as upstream does, before any advance.
    fn lags_behind(&self, global_epoch: Epoch, guard: &Guard) -> bool {
        for local in self.locals.iter(guard) {
            match local {
                Err(IterError::Stalled) => return true,
                Ok(local) => {
                    // Relaxed: as the function says.
                    let local_epoch = local.epoch.load(Ordering::Relaxed);
                    if local_epoch.is_pinned() && local_epoch.unpinned() != global_epoch {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// The rest of `try_advance`, after its load of the global epoch (`global_epoch`)
    /// and the fence that follows it. (This fork: split out so that `seal_and_collect`
    /// can share one heavy fence between a seal and an advance.)
    fn advance_from(&self, global_epoch: Epoch, guard: &Guard) -> Epoch {
        // For ThreadSanitizer that does not understand fences, we simulate the equivalent effect.
        // It is unfortunate that allocation is required, but without it, synchronization might
        // occur in cases where it should not, potentially causing false positives.
        #[cfg(crossbeam_sanitize_thread)]
        let mut locals = alloc::vec![];
        // TODO(stjepang): `Local`s are stored in a linked list because linked lists are fairly
        // easy to implement in a lock-free manner. However, traversal can be slow due to cache
        // misses and data dependencies. We should experiment with other data structures as well.
        for local in self.locals.iter(guard) {
            match local {
                Err(IterError::Stalled) => {
                    // A concurrent thread stalled this iteration. That thread might also try to
                    // advance the epoch, in which case we leave the job to it. Otherwise, the
                    // epoch will not be advanced.
                    return global_epoch;
                }
                Ok(local) => {
                    let local_epoch = local.epoch.load(Ordering::Relaxed);

                    // If the participant was pinned in a different epoch, we cannot advance the
                    // global epoch just yet.
                    if local_epoch.is_pinned() && local_epoch.unpinned() != global_epoch {
                        return global_epoch;
                    }

                    #[cfg(crossbeam_sanitize_thread)]
                    locals.push(local);
                }
            }
        }
        #[cfg(crossbeam_sanitize_thread)]
        for local in locals {
            local.epoch.load(Ordering::Acquire);
        }
        #[cfg(not(crossbeam_sanitize_thread))]
        atomic::fence(Ordering::Acquire);

        // All pinned participants were pinned in the current global epoch.
        // Now let's advance the global epoch...
        //
        // Note that if another thread already advanced it before us, this store will simply
        // overwrite the global epoch with the same value. This is true because `try_advance` was
        // called from a thread that was pinned in `global_epoch`, and the global epoch cannot be
        // advanced two steps ahead of it.
        let new_epoch = global_epoch.successor();
        self.epoch.store(new_epoch, Ordering::Release);
        new_epoch
    }
}

/// Participant for garbage collection.
#[repr(C)] // Note: `entry` must be the first field
pub(crate) struct Local {
    /// A node in the intrusive linked list of `Local`s.
    entry: Entry,

    /// A reference to the global data.
    ///
    /// When all guards and handles get dropped, this reference is destroyed.
    collector: UnsafeCell<ManuallyDrop<Collector>>,

    /// The local bag of deferred functions.
    pub(crate) bag: UnsafeCell<Bag>,

    /// The number of guards keeping this participant pinned.
    guard_count: Cell<usize>,

    /// The number of active handles.
    handle_count: Cell<usize>,

    /// Total number of pinnings performed.
    ///
    /// This is just an auxiliary counter that sometimes kicks off collection.
    pin_count: Cell<Wrapping<usize>>,

    /// The local epoch.
    epoch: CachePadded<AtomicEpoch>,

    /// Whether this participant pins with the light fence, counted in the
    /// global `light_pinners` (this fork's, `asymmetric.rs`).
    light: Cell<bool>,

    /// `HEAVY`, `LIGHT` or `DEMOTED` (this fork's): what other threads know of
    /// `light`, and the mark of a seal or an advance taking this idle participant
    /// off the count (`Global::heavy_fence_demoting`).
    light_state: AtomicUsize,

    /// Pins since this participant last flushed or sealed a bag (this fork's; the
    /// advances its pins try now and then do not reset it).
    quiet_pins: Cell<usize>,
}

// Make sure `Local` is less than or equal to 2048 bytes.
// https://github.com/crossbeam-rs/crossbeam/issues/551
#[cfg(not(any(crossbeam_sanitize, miri)))] // `crossbeam_sanitize` and `miri` reduce the size of `Local`
#[test]
fn local_size() {
    // TODO: https://github.com/crossbeam-rs/crossbeam/issues/869
    // assert!(
    //     core::mem::size_of::<Local>() <= 2048,
    //     "An allocation of `Local` should be <= 2048 bytes."
    // );
}

impl Local {
    /// Number of pinnings after which a participant will execute some deferred functions from the
    /// global queue.
    const PINNINGS_BETWEEN_COLLECT: usize = 128;

    /// Consecutive pins (with the full fence) without a flush or a seal after which
    /// a participant pins with the light fence (this fork's, `asymmetric.rs`): a
    /// thread that mostly reads. One that flushes or seals goes back to the full
    /// fence, so that threads that write and flush often never make the others'
    /// seals and advances pay the process-wide barrier.
    const PINS_BEFORE_LIGHT: usize = 1024;

    /// How often a pin tries to advance the epoch, while some participant pins
    /// light and garbage waits (this fork's): 65,536 pins, about a millisecond of
    /// gets, between two `membarrier` calls of one thread.
    const PINNINGS_BETWEEN_LIGHT_ADVANCES: usize = 1 << 16;

    /// Registers a new `Local` in the provided `Global`.
    pub(crate) fn register(collector: &Collector) -> LocalHandle {
        unsafe {
            // Since we dereference no pointers in this block, it is safe to use `unprotected`.

            let local = Owned::new(Local {
                entry: Entry::default(),
                collector: UnsafeCell::new(ManuallyDrop::new(collector.clone())),
                bag: UnsafeCell::new(Bag::new()),
                guard_count: Cell::new(0),
                handle_count: Cell::new(1),
                pin_count: Cell::new(Wrapping(0)),
                epoch: CachePadded::new(AtomicEpoch::new(Epoch::starting())),
                light: Cell::new(false),
                light_state: AtomicUsize::new(HEAVY),
                quiet_pins: Cell::new(0),
            })
            .into_shared(unprotected());
            collector.global.locals.insert(local, unprotected());
            LocalHandle {
                local: local.as_raw(),
            }
        }
    }

    /// Returns a reference to the `Global` in which this `Local` resides.
    #[inline]
    pub(crate) fn global(&self) -> &Global {
        &self.collector().global
    }

    /// Returns a reference to the `Collector` in which this `Local` resides.
    #[inline]
    pub(crate) fn collector(&self) -> &Collector {
        self.collector.with(|c| unsafe { &**c })
    }

    /// Returns `true` if the current participant is pinned.
    #[inline]
    pub(crate) fn is_pinned(&self) -> bool {
        self.guard_count.get() > 0
    }

    /// The epoch this participant is pinned at, or last pinned at (an unpinned
    /// participant keeps its last epoch's number: `unpin`), unmarked. (This
    /// fork's.)
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn local_epoch(&self) -> Epoch {
        // Relaxed: only this participant's thread stores its epoch (`pin`,
        // `unpin`, `repin`), and only that thread calls this, so the load reads
        // its last store.
        self.epoch.load(Ordering::Relaxed).unpinned()
    }

    /// Adds `deferred` to the thread-local bag.
    ///
    /// # Safety
    ///
    /// It should be safe for another thread to execute the given function.
    pub(crate) unsafe fn defer(&self, mut deferred: Deferred, guard: &Guard) {
        let bag = self.bag.with_mut(|b| &mut *b);

        while let Err(d) = bag.try_push(deferred) {
            self.leave_light();
            self.global().push_bag(bag, guard);
            deferred = d;
        }
    }

    pub(crate) fn flush(&self, guard: &Guard) {
        let bag = self.bag.with_mut(|b| unsafe { &mut *b });

        // (This fork: a participant that flushes pins with the full fence again.)
        self.leave_light();
        if !bag.is_empty() {
            if asymmetric::light_pins_allowed() {
                // (This fork: one `membarrier` instead of two, `asymmetric.rs`.)
                self.global().seal_and_collect(bag, guard);
                return;
            }
            self.global().push_bag(bag, guard);
        }

        self.global().collect(guard);
    }

    /// Pins the `Local`.
    #[inline]
    pub(crate) fn pin(&self) -> Guard {
        let guard = Guard { local: self };

        let guard_count = self.guard_count.get();
        self.guard_count.set(guard_count.checked_add(1).unwrap());

        if guard_count == 0 {
            let global_epoch = self.global().epoch.load(Ordering::Relaxed);
            let new_epoch = global_epoch.pinned();

            // Now we must store `new_epoch` into `self.epoch` and execute a `SeqCst` fence.
            // The fence makes sure that any future loads from `Atomic`s will not happen before
            // this store.
            let light = self.light.get();
            if light {
                // (This fork.) The light side: the heavy barrier of a seal or an
                // advance orders this store with them (`asymmetric.rs`).
                self.epoch.store(new_epoch, Ordering::Relaxed);
                asymmetric::light();
                // (This fork.) A seal or an advance found this participant idle
                // and is taking it off the count. Relaxed: the barrier of that
                // seal or advance orders this load with its mark
                // (`Global::heavy_fence_demoting`).
                if self.light_state.load(Ordering::Relaxed) == DEMOTED {
                    self.acknowledge_demotion();
                }
            } else if cfg!(all(
                any(target_arch = "x86", target_arch = "x86_64"),
                not(miri)
            )) {
                // HACK(stjepang): On x86 architectures there are two different ways of executing
                // a `SeqCst` fence.
                //
                // 1. `atomic::fence(SeqCst)`, which compiles into a `mfence` instruction.
                // 2. `_.compare_exchange(_, _, SeqCst, SeqCst)`, which compiles into a `lock cmpxchg`
                //    instruction.
                //
                // Both instructions have the effect of a full barrier, but benchmarks have shown
                // that the second one makes pinning faster in this particular case.  It is not
                // clear that this is permitted by the C++ memory model (SC fences work very
                // differently from SC accesses), but experimental evidence suggests that this
                // works fine.  Using inline assembly would be a viable (and correct) alternative,
                // but alas, that is not possible on stable Rust.
                // (This fork: an unpinned participant keeps the number of its
                // last epoch, for `Global::heavy_fence_demoting`'s look at how
                // long it has been idle. Only this thread writes it.)
                let current = self.epoch.load(Ordering::Relaxed);
                let res = self.epoch.compare_exchange(
                    current,
                    new_epoch,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                debug_assert!(res.is_ok(), "participant was expected to be unpinned");
                // We add a compiler fence to make it less likely for LLVM to do something wrong
                // here.  Formally, this is not enough to get rid of data races; practically,
                // it should go a long way.
                atomic::compiler_fence(Ordering::SeqCst);
            } else {
                self.epoch.store(new_epoch, Ordering::Relaxed);
                atomic::fence(Ordering::SeqCst);
            }

            // Increment the pin counter.
            let count = self.pin_count.get();
            self.pin_count.set(count + Wrapping(1));

            // After every `PINNINGS_BETWEEN_COLLECT` try advancing the epoch and collecting
            // some garbage.
            // (This fork.) A participant that only pins turns light after a while.
            if !light && asymmetric::light_pins_allowed() {
                let quiet = self.quiet_pins.get() + 1;
                self.quiet_pins.set(quiet);
                if quiet >= Self::PINS_BEFORE_LIGHT {
                    self.enter_light();
                }
            }

            if count.0 % Self::PINNINGS_BETWEEN_COLLECT == 0 {
                let global = self.global();
                if asymmetric::light_pins_allowed() {
                    // (This fork.) While some participant pins light, an advance is a
                    // process-wide barrier: pins then only run what has expired, and
                    // advance once every `PINNINGS_BETWEEN_LIGHT_ADVANCES` pins if
                    // garbage waits (so that garbage left by a thread that went idle,
                    // such as a table array a rehash replaced, is not kept for as
                    // long as only readers run). Measured: a thread's pins between
                    // two of its flushes advanced every 128 pins, and each advance
                    // interrupted the other, light, thread. Relaxed: hints; the
                    // advance's own fence decides what it may do.
                    let light_about = global.light_pinners.load(Ordering::Relaxed) > 0;
                    if !light_about
                        || (count.0 % Self::PINNINGS_BETWEEN_LIGHT_ADVANCES == 0
                            && !global.queue.looks_empty(&guard))
                    {
                        global.collect(&guard);
                    } else {
                        global.collect_expired(&guard);
                    }
                } else {
                    global.collect(&guard);
                }
            }
        }

        guard
    }

    /// Unpins the `Local`.
    #[inline]
    pub(crate) fn unpin(&self) {
        let guard_count = self.guard_count.get();
        self.guard_count.set(guard_count - 1);

        if guard_count == 1 {
            // (This fork: the epoch's number is kept, unpinned: how long the
            // participant has been idle, for `Global::heavy_fence_demoting`. Only
            // this thread writes it; the pinned flag is what upstream's readers
            // look at.)
            let epoch = self.epoch.load(Ordering::Relaxed);
            self.epoch.store(epoch.unpinned(), Ordering::Release);

            if self.handle_count.get() == 0 {
                self.finalize();
            }
        }
    }

    /// From the next pin on, pins with the light fence (this fork's, `asymmetric.rs`).
    #[cold]
    fn enter_light(&self) {
        // The increment, then a `SeqCst` fence before the first light pin: a seal or
        // an advance whose load of the count misses this increment has its fence
        // before this one in the `SeqCst` order (its load is coherence-ordered
        // before the increment), so the light pins that follow see everything that
        // preceded that fence. (On x86 the `lock xadd` of the increment is a full
        // barrier already; the fence is for targets where a `SeqCst`
        // read-modify-write is not.)
        self.global().light_pinners.fetch_add(1, Ordering::SeqCst);
        atomic::fence(Ordering::SeqCst);
        // Release: a seal or an advance that marks this participant `DEMOTED`
        // (Acquire) decrements the count after this increment.
        self.light_state.store(LIGHT, Ordering::Release);
        self.light.set(true);
    }

    /// The pin that finds this participant marked `DEMOTED` (this fork's,
    /// `Global::heavy_fence_demoting`): it takes the full fence after its epoch
    /// store, as a heavy pin does, and the participant pins heavy from now on
    /// (light again after `PINS_BEFORE_LIGHT` quiet pins) unless the mark was
    /// taken back meanwhile (the seal or advance saw this pin).
    #[cold]
    fn acknowledge_demotion(&self) {
        atomic::fence(Ordering::SeqCst);
        // Relaxed: the count is the marker's to decrement; nothing is published.
        if self
            .light_state
            .compare_exchange(DEMOTED, HEAVY, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.light.set(false);
            self.quiet_pins.set(0);
        }
    }

    /// Whether a flush or a seal by this participant would now interrupt other
    /// threads: some other participant pins with the light fence, so the seal's
    /// fence would include the process-wide barrier (`heavy_fence`). (This fork's,
    /// `asymmetric.rs`.)
    #[inline]
    pub(crate) fn flush_would_interrupt(&self) -> bool {
        // Relaxed: a hint for the caller's choice of when to flush, ordered with
        // nothing; `heavy_fence` loads the count again, with the ordering it needs.
        // (A participant taken off the count keeps `light` until its next pin:
        // its `light_state` says whether the count holds it.)
        let counted = self.light_state.load(Ordering::Relaxed) == LIGHT;
        self.global().light_pinners.load(Ordering::Relaxed) > usize::from(counted)
    }

    /// Pins with the full fence again, from the next pin on (this fork's): called
    /// before this participant flushes or seals a bag.
    #[inline]
    fn leave_light(&self) {
        self.quiet_pins.set(0);
        if self.light.get() {
            self.light.set(false);
            loop {
                // Relaxed: only this thread and a marker write the state; the
                // count's Release below publishes.
                match self.light_state.compare_exchange(
                    LIGHT,
                    HEAVY,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // Release: pairs with the Acquire load in
                        // `Global::heavy_fence`: a seal or an advance that no
                        // longer counts this participant sees its last light
                        // pin's epoch store (and all it did before this).
                        self.global().light_pinners.fetch_sub(1, Ordering::Release);
                        return;
                    }
                    // Marked: the marker decrements the count (it saw this
                    // participant pinned or idle, and takes the mark back only
                    // while it reads `DEMOTED`), unless it has just taken the
                    // mark back: then look again.
                    Err(_) => {
                        if self
                            .light_state
                            .compare_exchange(DEMOTED, HEAVY, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                        {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Unpins and then pins the `Local`.
    #[inline]
    pub(crate) fn repin(&self) {
        let guard_count = self.guard_count.get();

        // Update the local epoch only if there's only one guard.
        if guard_count == 1 {
            let epoch = self.epoch.load(Ordering::Relaxed);
            let global_epoch = self.global().epoch.load(Ordering::Relaxed).pinned();

            // Update the local epoch only if the global epoch is greater than the local epoch.
            if epoch != global_epoch {
                // We store the new epoch with `Release` because we need to ensure any memory
                // accesses from the previous epoch do not leak into the new one.
                self.epoch.store(global_epoch, Ordering::Release);

                // However, we don't need a following `SeqCst` fence, because it is safe for memory
                // accesses from the new epoch to be executed before updating the local epoch. At
                // worse, other threads will see the new epoch late and delay GC slightly.
            }
        }
    }

    /// Increments the handle count.
    #[inline]
    pub(crate) fn acquire_handle(&self) {
        let handle_count = self.handle_count.get();
        debug_assert!(handle_count >= 1);
        self.handle_count.set(handle_count + 1);
    }

    /// Decrements the handle count.
    #[inline]
    pub(crate) fn release_handle(&self) {
        let guard_count = self.guard_count.get();
        let handle_count = self.handle_count.get();
        debug_assert!(handle_count >= 1);
        self.handle_count.set(handle_count - 1);

        if guard_count == 0 && handle_count == 1 {
            self.finalize();
        }
    }

    /// Removes the `Local` from the global linked list.
    #[cold]
    fn finalize(&self) {
        debug_assert_eq!(self.guard_count.get(), 0);
        debug_assert_eq!(self.handle_count.get(), 0);

        // Temporarily increment handle count. This is required so that the following call to `pin`
        // doesn't call `finalize` again.
        self.handle_count.set(1);
        unsafe {
            // Pin and move the local bag into the global queue. It's important that `push_bag`
            // doesn't defer destruction on any new garbage.
            let guard = &self.pin();
            // (This fork: a participant that leaves is not counted as light.)
            self.leave_light();
            self.global()
                .push_bag(self.bag.with_mut(|b| &mut *b), guard);
        }
        // Revert the handle count back to zero.
        self.handle_count.set(0);

        unsafe {
            // Take the reference to the `Global` out of this `Local`. Since we're not protected
            // by a guard at this time, it's crucial that the reference is read before marking the
            // `Local` as deleted.
            let collector: Collector = ptr::read(self.collector.with(|c| &*(*c)));

            // Mark this node in the linked list as deleted.
            self.entry.delete(unprotected());

            // Finally, drop the reference to the global. Note that this might be the last reference
            // to the `Global`. If so, the global data will be destroyed and all deferred functions
            // in its queue will be executed.
            drop(collector);
        }
    }
}

impl IsElement<Self> for Local {
    fn entry_of(local: &Self) -> &Entry {
        // SAFETY: `Local` is `repr(C)` and `entry` is the first field of it.
        unsafe {
            let entry_ptr = (local as *const Self).cast::<Entry>();
            &*entry_ptr
        }
    }

    unsafe fn element_of(entry: &Entry) -> &Self {
        // SAFETY: `Local` is `repr(C)` and `entry` is the first field of it.
        let local_ptr = (entry as *const Entry).cast::<Self>();
        &*local_ptr
    }

    unsafe fn finalize(entry: &Entry, guard: &Guard) {
        guard.defer_destroy(Shared::from(Self::element_of(entry) as *const _));
    }
}

#[cfg(all(test, not(crossbeam_loom)))]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn check_defer() {
        static FLAG: AtomicUsize = AtomicUsize::new(0);
        fn set() {
            FLAG.store(42, Ordering::Relaxed);
        }

        let d = Deferred::new(set);
        assert_eq!(FLAG.load(Ordering::Relaxed), 0);
        d.call();
        assert_eq!(FLAG.load(Ordering::Relaxed), 42);
    }

    #[test]
    fn check_bag() {
        static FLAG: AtomicUsize = AtomicUsize::new(0);
        fn incr() {
            FLAG.fetch_add(1, Ordering::Relaxed);
        }

        let mut bag = Bag::new();
        assert!(bag.is_empty());

        for _ in 0..MAX_OBJECTS {
            assert!(unsafe { bag.try_push(Deferred::new(incr)).is_ok() });
            assert!(!bag.is_empty());
            assert_eq!(FLAG.load(Ordering::Relaxed), 0);
        }

        let result = unsafe { bag.try_push(Deferred::new(incr)) };
        assert!(result.is_err());
        assert!(!bag.is_empty());
        assert_eq!(FLAG.load(Ordering::Relaxed), 0);

        drop(bag);
        assert_eq!(FLAG.load(Ordering::Relaxed), MAX_OBJECTS);
    }

    /// (This fork.) While a participant pins light, an advance that a participant
    /// pinned in an older epoch refuses issues no process-wide barrier; once that
    /// participant unpins, the advance pays the barrier and goes through.
    #[test]
    fn an_advance_a_lagging_participant_refuses_issues_no_barrier() {
        if !crate::asymmetric::enable_light_pins() {
            return; // no membarrier here: every pin keeps upstream's full fence
        }
        let collector = crate::Collector::new();
        let global = &collector.global;
        let reader = collector.register();
        // A participant that only pins turns light.
        for _ in 0..=Local::PINS_BEFORE_LIGHT {
            drop(reader.pin());
        }
        assert_eq!(global.light_pinners.load(Ordering::SeqCst), 1);
        let held = reader.pin();
        let other = collector.register();
        let start = global.epoch.load(Ordering::SeqCst);
        // Every pinned participant is in the current epoch: the advance goes
        // through, and pays the barrier.
        let guard = other.pin();
        let barriers = global.barriers.load(Ordering::SeqCst);
        assert_eq!(global.try_advance(&guard), start.successor());
        assert_eq!(global.barriers.load(Ordering::SeqCst), barriers + 1);
        drop(guard);
        // `held` is one epoch behind now: every advance is refused, without a
        // barrier.
        let guard = other.pin();
        let barriers = global.barriers.load(Ordering::SeqCst);
        for _ in 0..100 {
            assert_eq!(global.try_advance(&guard), start.successor());
        }
        assert_eq!(
            global.barriers.load(Ordering::SeqCst),
            barriers,
            "refused advances issued barriers"
        );
        // Once it unpins, the advance goes through and pays the barrier again.
        drop(held);
        assert_eq!(global.try_advance(&guard), start.successor().successor());
        assert_eq!(global.barriers.load(Ordering::SeqCst), barriers + 1);
    }

    /// (This fork.) A light participant idle for `IDLE_ADVANCES_BEFORE_DEMOTION`
    /// advances is taken off the count by the next seal or advance, which then pays no barrier for it; its
    /// next pin turns it heavy, and quiet pins turn it light again. One pinned
    /// or recently pinned is left counted.
    #[test]
    fn an_idle_light_participant_is_taken_off_the_count() {
        if !crate::asymmetric::enable_light_pins() {
            return;
        }
        let collector = crate::Collector::new();
        let global = &collector.global;
        let reader = collector.register();
        // SAFETY: `reader` is this thread's registration and lives to the end of
        // the test; its `Local` lives at least as long.
        let local = unsafe { &*reader.local };
        for _ in 0..=Local::PINS_BEFORE_LIGHT {
            drop(reader.pin());
        }
        assert_eq!(global.light_pinners.load(Ordering::SeqCst), 1);
        let other = collector.register();
        let advance = || {
            let guard = other.pin();
            global.try_advance(&guard);
        };
        // Held pinned: never taken off, however many advances are tried.
        let held = reader.pin();
        for _ in 0..4 {
            advance();
        }
        assert_eq!(global.light_pinners.load(Ordering::SeqCst), 1);
        drop(held);
        // Pinned last in the current epoch: the advances that follow leave it
        // counted until it is `IDLE_ADVANCES_BEFORE_DEMOTION` behind. (They go
        // through: the reader is unpinned.)
        drop(reader.pin());
        for _ in 0..Global::IDLE_ADVANCES_BEFORE_DEMOTION {
            advance();
            assert_eq!(global.light_pinners.load(Ordering::SeqCst), 1);
        }
        // That far behind: the next advance takes it off, paying the barrier (it
        // was counted until then); the ones after pay none.
        let barriers = global.barriers.load(Ordering::SeqCst);
        advance();
        assert_eq!(global.light_pinners.load(Ordering::SeqCst), 0);
        assert_eq!(global.demotions.load(Ordering::SeqCst), 1);
        assert_eq!(
            global.barriers.load(Ordering::SeqCst),
            barriers + 1,
            "the advance that took the idle participant off paid no barrier"
        );
        for _ in 0..4 {
            advance();
        }
        assert_eq!(global.barriers.load(Ordering::SeqCst), barriers + 1);
        // Its next pin takes the full fence and turns it heavy.
        assert!(local.light.get());
        drop(reader.pin());
        assert!(
            !local.light.get(),
            "the first pin after the demotion left the participant light"
        );
        assert_eq!(local.light_state.load(Ordering::SeqCst), HEAVY);
        assert_eq!(global.light_pinners.load(Ordering::SeqCst), 0);
        // Quiet pins make it light again, counted once.
        for _ in 0..=Local::PINS_BEFORE_LIGHT {
            drop(reader.pin());
        }
        assert!(local.light.get());
        assert_eq!(global.light_pinners.load(Ordering::SeqCst), 1);
        // A flush takes it off by itself, once.
        reader.pin().flush();
        assert_eq!(global.light_pinners.load(Ordering::SeqCst), 0);
        assert_eq!(local.light_state.load(Ordering::SeqCst), HEAVY);
    }

    /// (This fork.) The hand-shake's other outcomes, step by step, with the
    /// marker's steps called one at a time: a mark taken back when the
    /// participant is found pinned without having seen it (its epoch written as a
    /// pin's store that landed before the barrier would be), a participant that
    /// leaves light by itself while marked (the marker decrements, once, whether
    /// it then finds it idle or pinned), and a second marker that finds the mark
    /// taken. The count always ends at the number of light participants.
    #[test]
    fn a_marks_other_outcomes_keep_the_count_exact() {
        if !crate::asymmetric::enable_light_pins() {
            return;
        }
        let collector = crate::Collector::new();
        let global = &collector.global;
        let reader = collector.register();
        // SAFETY: `reader` is this thread's registration and lives to the end of
        // the test; its `Local` lives at least as long.
        let local = unsafe { &*reader.local };
        let turn_light = || {
            for _ in 0..=Local::PINS_BEFORE_LIGHT {
                drop(reader.pin());
            }
            assert_eq!(local.light_state.load(Ordering::SeqCst), LIGHT);
        };
        turn_light();
        let other = collector.register();
        let guard = other.pin();
        // An epoch far enough ahead of the reader's last (the pins above may
        // have advanced the global one) to make it idle.
        let ahead_of_reader = || {
            let mut ahead = local.epoch.load(Ordering::SeqCst);
            for _ in 0..Global::IDLE_ADVANCES_BEFORE_DEMOTION {
                ahead = ahead.successor();
            }
            ahead
        };
        let count = || global.light_pinners.load(Ordering::SeqCst);
        let ahead = ahead_of_reader();

        // Found pinned: the mark is taken back, the count kept.
        let marked = global.mark_idle_light(ahead, &guard);
        assert_eq!(marked.len(), 1);
        assert_eq!(local.light_state.load(Ordering::SeqCst), DEMOTED);
        let unpinned = local.epoch.load(Ordering::SeqCst);
        local.epoch.store(ahead.pinned(), Ordering::SeqCst);
        global.demote_marked(ahead, marked);
        local.epoch.store(unpinned, Ordering::SeqCst);
        assert_eq!(global.takebacks.load(Ordering::SeqCst), 1);
        assert_eq!(local.light_state.load(Ordering::SeqCst), LIGHT);
        assert_eq!(count(), 1, "a mark taken back changed the count");

        // A second marker finds the mark taken and marks nothing.
        let marked = global.mark_idle_light(ahead, &guard);
        assert!(global.mark_idle_light(ahead, &guard).is_empty());
        // Left light by itself while marked, then found idle: decremented once.
        local.leave_light();
        assert_eq!(local.light_state.load(Ordering::SeqCst), HEAVY);
        assert_eq!(
            count(),
            1,
            "the marker's decrement was made by the participant"
        );
        global.demote_marked(ahead, marked);
        assert_eq!(
            count(),
            0,
            "a participant that left light while marked stayed counted"
        );

        // Left light by itself while marked, then found pinned: decremented once
        // all the same (the mark cannot be taken back).
        turn_light();
        let ahead = ahead_of_reader();
        let unpinned = local.epoch.load(Ordering::SeqCst);
        let marked = global.mark_idle_light(ahead, &guard);
        assert_eq!(marked.len(), 1);
        local.leave_light();
        local.epoch.store(ahead.pinned(), Ordering::SeqCst);
        global.demote_marked(ahead, marked);
        local.epoch.store(unpinned, Ordering::SeqCst);
        assert_eq!(
            count(),
            0,
            "a participant that left light while marked stayed counted"
        );
        assert_eq!(global.takebacks.load(Ordering::SeqCst), 1);
        drop(guard);
    }
}

/// Store buffering on the real paths (added after a review of the fork,
/// 2026-12-06, which found the helpers' test in `asymmetric.rs` the only one): a light `Local::pin` followed by a
/// load of a shared location, against a store to that location followed by
/// `Global::heavy_fence` and a load of the reader's epoch (what `push_bag` and
/// `advance_from` do). Forbidden: the reader misses the store while the writer sees
/// the still-pinned reader unpinned.
#[cfg(all(test, not(crossbeam_loom), not(miri)))]
mod light_pin_tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::thread;
    use std::vec::Vec;

    #[test]
    fn a_light_pin_and_heavy_fence_order_store_buffering_on_the_real_paths() {
        if !crate::asymmetric::enable_light_pins() {
            return;
        }
        const ROUNDS: usize = 50_000;
        let collector = crate::Collector::new();
        let shared = AtomicUsize::new(0);
        let arrived = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let local_addr = AtomicUsize::new(0);
        let (reader_saw, writer_saw_pinned) = thread::scope(|s| {
            let reader = s.spawn(|| {
                let handle = collector.register();
                for _ in 0..=Local::PINS_BEFORE_LIGHT {
                    drop(handle.pin());
                }
                // SAFETY: `handle` is this thread's registration and lives to the
                // end of the closure; its `Local` lives at least as long.
                let local = unsafe { &*handle.local };
                assert!(local.light.get(), "the reader did not turn light");
                local_addr.store(handle.local as usize, Ordering::Release);
                let mut saw = Vec::with_capacity(ROUNDS);
                for round in 1..=ROUNDS {
                    arrived.fetch_add(1, Ordering::AcqRel);
                    while arrived.load(Ordering::Acquire) < 2 * round {
                        core::hint::spin_loop();
                    }
                    let guard = handle.pin();
                    saw.push(shared.load(Ordering::Relaxed));
                    // Stay pinned until the writer has looked at our epoch.
                    while done.load(Ordering::Acquire) < round {
                        core::hint::spin_loop();
                    }
                    drop(guard);
                }
                assert!(local.light.get(), "the reader left the light path");
                saw
            });
            let (collector, shared, arrived, done, local_addr) =
                (&collector, &shared, &arrived, &done, &local_addr);
            let writer = s.spawn(move || {
                let mut addr = 0;
                while addr == 0 {
                    addr = local_addr.load(Ordering::Acquire);
                    core::hint::spin_loop();
                }
                // SAFETY: only the atomic epoch of the reader's `Local` is read,
                // and that `Local` outlives this loop: the reader holds its handle
                // until it has seen `done` reach the last round, stored below.
                let epoch: &AtomicEpoch = unsafe { &(*(addr as *const Local)).epoch };
                let mut saw_pinned = Vec::with_capacity(ROUNDS);
                for round in 1..=ROUNDS {
                    arrived.fetch_add(1, Ordering::AcqRel);
                    while arrived.load(Ordering::Acquire) < 2 * round {
                        core::hint::spin_loop();
                    }
                    shared.store(round, Ordering::Relaxed);
                    collector.global.heavy_fence();
                    saw_pinned.push(epoch.load(Ordering::Relaxed).is_pinned());
                    done.store(round, Ordering::Release);
                }
                saw_pinned
            });
            (reader.join().unwrap(), writer.join().unwrap())
        });
        let both_missed = (1..=ROUNDS)
            .filter(|&r| reader_saw[r - 1] < r && !writer_saw_pinned[r - 1])
            .count();
        assert_eq!(
            both_missed, 0,
            "a light pin's epoch store and a heavy fence's store both went unseen"
        );
    }

    /// (This fork.) The same store buffering, with the heavy side taking the
    /// reader off the light count whenever it finds it unpinned
    /// (`Global::heavy_fence_demoting`, given an epoch far enough ahead): the mark
    /// races the reader's pin, which must then take the full fence itself. The
    /// reader turns light again each round, and leaves light by itself every
    /// fifth, racing the marks; once both threads are gone the count must be
    /// zero (a decrement lost or made twice shows there). The writer never pins
    /// light itself: its own count would make every fence pay the barrier.
    #[test]
    fn a_demoting_heavy_fence_races_light_pins() {
        if !crate::asymmetric::enable_light_pins() {
            return;
        }
        const ROUNDS: usize = 50_000;
        let collector = crate::Collector::new();
        let shared = AtomicUsize::new(0);
        let arrived = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let local_addr = AtomicUsize::new(0);
        let (reader_saw, writer_saw_pinned) = thread::scope(|s| {
            let reader = s.spawn(|| {
                let handle = collector.register();
                // SAFETY: `handle` is this thread's registration and lives to the
                // end of the closure; its `Local` lives at least as long.
                let local = unsafe { &*handle.local };
                local_addr.store(handle.local as usize, Ordering::Release);
                let mut saw = Vec::with_capacity(ROUNDS);
                for round in 1..=ROUNDS {
                    if !local.light.get() {
                        local.enter_light();
                    }
                    arrived.fetch_add(1, Ordering::AcqRel);
                    while arrived.load(Ordering::Acquire) < 2 * round {
                        core::hint::spin_loop();
                    }
                    // Every other round, pin at varied moments of the writer's
                    // mark, barrier and look (before, inside, after); in the
                    // others, at once, racing the writer's store most closely.
                    for _ in 0..(round % 2) * ((round * 37) % 512) {
                        core::hint::spin_loop();
                    }
                    let guard = handle.pin();
                    saw.push(shared.load(Ordering::Relaxed));
                    if round % 5 == 0 {
                        local.leave_light();
                    }
                    while done.load(Ordering::Acquire) < round {
                        core::hint::spin_loop();
                    }
                    drop(guard);
                }
                saw
            });
            let (collector, shared, arrived, done, local_addr) =
                (&collector, &shared, &arrived, &done, &local_addr);
            let writer = s.spawn(move || {
                let handle = collector.register();
                // SAFETY: this thread's registration, alive to the end of the
                // closure.
                let own = unsafe { &*handle.local };
                let mut addr = 0;
                while addr == 0 {
                    addr = local_addr.load(Ordering::Acquire);
                    core::hint::spin_loop();
                }
                // SAFETY: only the atomic epoch of the reader's `Local` is read,
                // and that `Local` outlives this loop: the reader holds its handle
                // until it has seen `done` reach the last round, stored below.
                let epoch: &AtomicEpoch = unsafe { &(*(addr as *const Local)).epoch };
                let mut saw_pinned = Vec::with_capacity(ROUNDS);
                for round in 1..=ROUNDS {
                    arrived.fetch_add(1, Ordering::AcqRel);
                    while arrived.load(Ordering::Acquire) < 2 * round {
                        core::hint::spin_loop();
                    }
                    let guard = handle.pin();
                    own.leave_light();
                    // Nothing advances here: an epoch far enough ahead makes every
                    // unpinned light participant idle.
                    let global = &collector.global;
                    let mut ahead = global.epoch.load(Ordering::Relaxed);
                    for _ in 0..Global::IDLE_ADVANCES_BEFORE_DEMOTION {
                        ahead = ahead.successor();
                    }
                    shared.store(round, Ordering::Relaxed);
                    global.heavy_fence_demoting(ahead, &guard);
                    saw_pinned.push(epoch.load(Ordering::Relaxed).is_pinned());
                    drop(guard);
                    done.store(round, Ordering::Release);
                }
                saw_pinned
            });
            (reader.join().unwrap(), writer.join().unwrap())
        });
        let both_missed = (1..=ROUNDS)
            .filter(|&r| reader_saw[r - 1] < r && !writer_saw_pinned[r - 1])
            .count();
        assert_eq!(
            both_missed, 0,
            "a light pin's epoch store and a demoting heavy fence's store both went unseen"
        );
        let global = &collector.global;
        assert!(
            global.demotions.load(Ordering::SeqCst) > 0,
            "the heavy side never took the reader off the count"
        );
        assert_eq!(
            global.light_pinners.load(Ordering::SeqCst),
            0,
            "the light count did not come back to zero once both threads were gone"
        );
    }

    #[test]
    fn entering_and_leaving_light_races_the_heavy_fence() {
        if !crate::asymmetric::enable_light_pins() {
            return;
        }
        const ROUNDS: usize = 50_000;
        let collector = crate::Collector::new();
        let shared = AtomicUsize::new(0);
        let arrived = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let local_addr = AtomicUsize::new(0);
        let (reader_saw, writer_saw_pinned) = thread::scope(|s| {
            let reader = s.spawn(|| {
                let handle = collector.register();
                for _ in 0..=Local::PINS_BEFORE_LIGHT {
                    drop(handle.pin());
                }
                // SAFETY: `handle` is this thread's registration and lives to the
                // end of the closure; its `Local` lives at least as long.
                let local = unsafe { &*handle.local };
                assert!(local.light.get(), "the reader did not turn light");
                local_addr.store(handle.local as usize, Ordering::Release);
                let mut saw = Vec::with_capacity(ROUNDS);
                for round in 1..=ROUNDS {
                    arrived.fetch_add(1, Ordering::AcqRel);
                    while arrived.load(Ordering::Acquire) < 2 * round {
                        core::hint::spin_loop();
                    }
                    // Case (b) of asymmetric.rs: turn light just before this
                    // pin, racing the writer's load of the count.
                    if round % 3 == 0 && !local.light.get() {
                        local.enter_light();
                    }
                    let guard = handle.pin();
                    saw.push(shared.load(Ordering::Relaxed));
                    // Case (c): leave light while this (light) pin is held,
                    // racing the writer's load of the count.
                    if round % 3 == 1 {
                        local.leave_light();
                    }
                    // Stay pinned until the writer has looked at our epoch.
                    while done.load(Ordering::Acquire) < round {
                        core::hint::spin_loop();
                    }
                    drop(guard);
                }
                saw
            });
            let (collector, shared, arrived, done, local_addr) =
                (&collector, &shared, &arrived, &done, &local_addr);
            let writer = s.spawn(move || {
                let mut addr = 0;
                while addr == 0 {
                    addr = local_addr.load(Ordering::Acquire);
                    core::hint::spin_loop();
                }
                // SAFETY: only the atomic epoch of the reader's `Local` is read,
                // and that `Local` outlives this loop: the reader holds its handle
                // until it has seen `done` reach the last round, stored below.
                let epoch: &AtomicEpoch = unsafe { &(*(addr as *const Local)).epoch };
                let mut saw_pinned = Vec::with_capacity(ROUNDS);
                for round in 1..=ROUNDS {
                    arrived.fetch_add(1, Ordering::AcqRel);
                    while arrived.load(Ordering::Acquire) < 2 * round {
                        core::hint::spin_loop();
                    }
                    shared.store(round, Ordering::Relaxed);
                    collector.global.heavy_fence();
                    saw_pinned.push(epoch.load(Ordering::Relaxed).is_pinned());
                    done.store(round, Ordering::Release);
                }
                saw_pinned
            });
            (reader.join().unwrap(), writer.join().unwrap())
        });
        let both_missed = (1..=ROUNDS)
            .filter(|&r| reader_saw[r - 1] < r && !writer_saw_pinned[r - 1])
            .count();
        assert_eq!(
            both_missed, 0,
            "a light pin's epoch store and a heavy fence's store both went unseen"
        );
    }
}
