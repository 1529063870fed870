//! The loom side of the shim: loom's atomics, `Arc`, locks and threads, plus
//! loom-visible stand-ins for `arc-swap` and `crossbeam-epoch`, which loom cannot
//! see into. Each stand-in keeps the contract the crate relies on, no more:
//!
//! * `Slot` (for `arc_swap::ArcSwapAny` on its `RwLock<()>` strategy): full loads
//!   and swaps of an `Arc` are linearizable, and a loaded `Arc` stays alive.
//!   Modelled with a loom `Mutex<Arc<T>>`. The real slot is a lock around a pointer
//!   too; the stand-in lets one load in at a time where the real lock lets loads
//!   share it.
//! * `epoch` (for `crossbeam_epoch`): a closure deferred while guards are pinned runs
//!   only after every guard pinned before the deferral is dropped; `flush` runs what
//!   is ripe. Modelled with pin ids and a horizon per deferred closure, behind a loom
//!   `Mutex`, in a per-model `lazy_static`.

pub(crate) use loom::cell::UnsafeCell;
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence,
};
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
pub(crate) use loom::thread_local;

/// The table shards' writer lock: loom's `Mutex`, with the real one's interface
/// (`shard_lock.rs`: `lock` returns the guard; no poisoning). The real lock is
/// checked on its own, on loom's atomics (its module's model); loom's blocking
/// mutex keeps the scenarios' state space small.
pub(crate) struct ShardLock<T>(Mutex<T>);
/// A held [`ShardLock`].
pub(crate) type ShardGuard<'a, T> = MutexGuard<'a, T>;

impl<T> ShardLock<T> {
    pub(crate) fn new(value: T) -> Self {
        ShardLock(Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> ShardGuard<'_, T> {
        // The real lock does not poison: a panic under it is ignored here too.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The guard, if the lock is free now (as the real lock's `try_lock`).
    pub(crate) fn try_lock(&self) -> Option<ShardGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// Whether our plain-memory objects make their uses and their frees visible to
/// loom (a table's arrays, a map's home): yes, so that a use not ordered before the
/// free races a write loom sees.
pub(crate) const TRACK_FREES: bool = true;

/// Rehashes of a table shard (`Writer::grow` in `src/table/mod.rs`, when it moves
/// the entries of an old array; not a shard's first array), counted for
/// the models that race one (scenarios 15 and 24): a model checks that its writer's
/// insert did rehash, so that a change to the tables' growth that makes the insert
/// fit (as keeping arrays at most half live did, 2026-12-05) fails the model
/// instead of leaving it with no rehash to race. A std counter: loom runs a
/// model's threads on one OS thread, and this is bookkeeping, not protocol.
static REHASHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a rehash (see [`REHASHES`]).
pub(crate) fn count_rehash() {
    REHASHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The rehashes made so far in this process (see [`REHASHES`]).
pub fn rehashes() -> usize {
    REHASHES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether an all-zero `AtomicPtr` of the shim is a null one: not loom's, which
/// tracks each atomic's history, so slot arrays are built element by element.
pub(crate) const ZEROED_ATOMIC_PTR_IS_NULL: bool = false;

/// How many times a quiesce tries a held lock (`src/table/locks.rs`): once, so
/// that a model explores the quiesce that gives up (and the pass that retries)
/// without spinning through loom's branch budget.
pub(crate) const QUIESCE_TRIES: usize = 1;

/// The smallest slot array of a table shard (`src/table/`): small, so that a model
/// that inserts three keys into one shard makes it rehash.
pub(crate) const TABLE_MIN_CAPACITY: usize = 4;

/// The bytes of retired table arrays a thread defers before it flushes them
/// (`src/table/locks.rs`): one, so that every array a model's rehash retires is
/// in the global queue at once, where the model's collections find it (loom's
/// bags hold four deferrals and its threads are short).
pub(crate) const RETIRED_ARRAY_FLUSH_BYTES: usize = 1;

/// Slots per slice of a background teardown (`src/generation.rs`): one smallest
/// array, so that a model's table with entries in both shards is torn down in two
/// slices and the models run the re-submission of the rest.
pub(crate) const TEARDOWN_SLICE: usize = TABLE_MIN_CAPACITY;
/// An `Arc` that can hold a trait object: std's in both builds, since loom's `Arc`
/// cannot be unsized. Used only for a map's `Standby`, which its domain's registry
/// holds as an `Arc<dyn MapService>`; its count orders nothing the models check
/// (std's own code, trusted).
pub(crate) use std::sync::Arc as WeakableArc;
/// A cell set once per process: std's in both builds. Holds only the default
/// hasher's process-wide seed (`src/hasher.rs`), set from the OS's randomness by the
/// first map built; nothing the models check is ordered by it (std's own code,
/// trusted), and a seed kept across loom's executions changes none of them (the
/// models hash with a fixed hasher).
pub(crate) use std::sync::OnceLock as ProcessOnce;

/// Threads. Loom has no timed park: a timed park is a yield.
pub(crate) mod thread {
    pub(crate) use loom::thread::{Builder, JoinHandle, current};

    /// A timed park, modelled as a yield (loom explores both orders anyway).
    pub(crate) fn park_timeout(_timeout: std::time::Duration) {
        loom::thread::yield_now();
    }
}

/// A timed wait on `cv`. Loom has no clock, and its `Condvar::wait_timeout` waits
/// for a notification, which a timed wait of the real code never needs (its time
/// runs out): modelled as a wait that times out at once, releasing the lock and
/// yielding. The waiter re-checks its condition either way, so a model still fails
/// if the condition is never met, and a lost notification costs only latency, as
/// it does in the real code.
pub(crate) fn timed_wait<T>(
    _cv: &Condvar,
    guard: MutexGuard<'_, T>,
    _timeout: std::time::Duration,
) {
    drop(guard);
    loom::thread::yield_now();
}

/// Stand-in for `arc_swap::ArcSwapAny<Arc<T>, RwLock<()>>`.
pub(crate) struct Slot<T> {
    current: Mutex<Arc<T>>,
}

impl<T> Slot<T> {
    pub(crate) fn from_pointee(value: T) -> Self {
        Slot {
            current: Mutex::new(Arc::new(value)),
        }
    }

    pub(crate) fn load_full(&self) -> Arc<T> {
        Arc::clone(&self.current.lock().unwrap())
    }

    /// Stores `new`; returns what the slot held.
    pub(crate) fn swap(&self, new: Arc<T>) -> Arc<T> {
        std::mem::replace(&mut *self.current.lock().unwrap(), new)
    }
}

/// One stripe: under loom every thread shares it, so that no std counter's value
/// (which thread got which stripe) can differ between executions.
pub(crate) const COUNTER_STRIPES: usize = 1;

/// Whether this thread holds the one stripe's claim (`reclaim/stripe.rs`): the
/// first thread of each execution that asks while no other holds it does, until it
/// exits, when its thread-local's destructor gives the claim back (as the real
/// claim's does) and the next thread to ask takes it over, with the ring and the
/// counts its predecessor left. So the models run the claimant's paths (its plain
/// counter stores, its doomed ring) beside everyone else's (the shared counters,
/// the doomed list), and the hand-over of a claim (scenario 21). A loom static and
/// thread-local, rebuilt for every execution.
pub(crate) fn holds_the_stripe_claim() -> bool {
    type Flag = std::sync::Arc<loom::sync::atomic::AtomicBool>;
    loom::lazy_static! {
        static ref TAKEN: Flag = Flag::default();
    }
    /// This thread's answer, once asked; gives the claim back when the thread exits.
    /// It keeps its own handle on the flag: loom drops the main thread's
    /// thread-locals after the execution's statics.
    #[derive(Default)]
    struct Mine {
        answer: std::cell::Cell<Option<bool>>,
        claim: std::cell::RefCell<Option<Flag>>,
    }
    impl Drop for Mine {
        fn drop(&mut self) {
            if let Some(taken) = self.claim.get_mut().take() {
                // SeqCst: as the real give-back (`stripe.rs`): after this thread's
                // last use of the claim, before the next claimant's first.
                taken.store(false, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
    loom::thread_local! {
        static MINE: Mine = Mine::default();
    }
    MINE.with(|mine| match mine.answer.get() {
        Some(claimed) => claimed,
        None => {
            // SeqCst: as the real claim (`stripe.rs`).
            let claimed = !TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst);
            if claimed {
                *mine.claim.borrow_mut() = Some(Flag::clone(&TAKEN));
            }
            mine.answer.set(Some(claimed));
            claimed
        }
    })
}

/// Not under loom: an execution must not depend on the clock, so every pass walks
/// the registered maps.
pub(crate) const PACED_MAP_WALKS: bool = false;

/// Whether freed value cells are recycled to writers (`reclaim/recycle.rs`); not
/// under loom, whose models check the protocol, not the allocator.
pub(crate) const RECYCLE_CELLS: bool = false;

/// Statics do not outlive one execution of a model: see `ProcessWide`.
pub(crate) const SHARED_STATICS: bool = false;

/// Stand-in for a process-wide value: loom runs many executions in one process,
/// and a loom object cannot outlive its execution, so every call builds a new one.
pub(crate) struct ProcessWide<T>(std::marker::PhantomData<T>);

impl<T> ProcessWide<T> {
    pub(crate) const fn new() -> Self {
        ProcessWide(std::marker::PhantomData)
    }

    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> Arc<T>) -> Arc<T> {
        init()
    }
}

// SAFETY: holds nothing (a `PhantomData` of the type it builds).
unsafe impl<T> Sync for ProcessWide<T> {}

/// Stand-in for `crossbeam_epoch`'s default collector.
pub(crate) mod epoch {
    use std::collections::BTreeSet;

    use loom::sync::Mutex;

    type Deferred = Box<dyn FnOnce()>;

    #[derive(Default)]
    struct Collector {
        next_pin: u64,
        active: BTreeSet<u64>,
        /// Closures with their horizon: they run once no pin below it is active.
        garbage: Vec<(u64, Deferred)>,
    }

    loom::lazy_static! {
        static ref COLLECTOR: Mutex<Collector> = Mutex::new(Collector::default());
    }

    /// A pinned participant; unpins (and runs ripe garbage) on drop.
    pub(crate) struct Guard {
        id: u64,
        _not_send: std::marker::PhantomData<*mut ()>,
    }

    loom::thread_local! {
        /// Guards this thread holds (for `is_pinned`).
        static PINS: std::cell::Cell<usize> = std::cell::Cell::new(0);
    }

    /// As the fork's `enable_light_pins`: nothing to do, the stand-in has no fence
    /// to lighten (loom cannot model `membarrier`; see `docs/DESIGN.md`).
    pub(crate) fn enable_light_pins() -> bool {
        false
    }

    /// As the fork's `EpochStamp`: the stand-in has no epochs, and its
    /// [`pinned_no_later_than`] never finds a waiter pinned before one.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct EpochStamp;

    /// As the fork's `epoch_stamp`.
    pub(crate) fn epoch_stamp() -> EpochStamp {
        EpochStamp
    }

    /// As the fork's `pinned_no_later_than`: never, so a wait under loom goes
    /// ahead as it would without the check (the check only turns a wait that could
    /// never end into a panic or an error, and the models wait for nothing while
    /// pinned).
    pub(crate) fn pinned_no_later_than(_stamp: EpochStamp) -> bool {
        false
    }

    /// As the fork's `flush_would_interrupt`: never, no participant pins light here.
    pub(crate) fn flush_would_interrupt() -> bool {
        false
    }

    /// As `crossbeam_epoch::is_pinned`: whether this thread holds a guard.
    pub(crate) fn is_pinned() -> bool {
        PINS.with(|p| p.get() > 0)
    }

    pub(crate) fn pin() -> Guard {
        PINS.with(|p| p.set(p.get() + 1));
        let mut c = COLLECTOR.lock().unwrap();
        let id = c.next_pin;
        c.next_pin += 1;
        c.active.insert(id);
        Guard {
            id,
            _not_send: std::marker::PhantomData,
        }
    }

    impl Guard {
        /// As `crossbeam_epoch::Guard::defer`: `f` runs on some thread once every
        /// guard pinned before this call is gone.
        pub(crate) fn defer<F: FnOnce() + Send + 'static>(&self, f: F) {
            let f: Deferred = Box::new(f);
            let mut c = COLLECTOR.lock().unwrap();
            let horizon = c.next_pin;
            c.garbage.push((horizon, f));
        }

        /// Runs every deferred closure that is ripe.
        pub(crate) fn flush(&self) {
            collect(None);
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            PINS.with(|p| p.set(p.get() - 1));
            collect(Some(self.id));
        }
    }

    /// Unpins `leaving` (if any) and runs the ripe closures outside the lock.
    fn collect(leaving: Option<u64>) {
        let ripe: Vec<Deferred> = {
            let mut c = COLLECTOR.lock().unwrap();
            if let Some(id) = leaving {
                c.active.remove(&id);
            }
            let oldest = c.active.iter().next().copied().unwrap_or(u64::MAX);
            let (ripe, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut c.garbage)
                .into_iter()
                .partition(|(horizon, _)| *horizon <= oldest);
            c.garbage = kept;
            ripe.into_iter().map(|(_, f)| f).collect()
        };
        for f in ripe {
            f();
        }
    }
}

/// The real build's prefetch hint (`real.rs`), empty: not part of the protocol.
pub(crate) struct SlotsHint;

impl SlotsHint {
    pub(crate) fn new() -> Self {
        SlotsHint
    }

    pub(crate) fn home_slot(&self, _hash: u64) -> Option<*const u8> {
        None
    }

    pub(crate) fn set(&self, _base: *const u8, _mask: usize) {}
}
