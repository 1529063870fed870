//! The production side of the shim: `std`, `arc-swap`, `crossbeam-epoch`.

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
// (`fence` goes unused under `--cfg atomic_map_sanitize_thread`: see `value/mod.rs`.)
#[cfg_attr(atomic_map_sanitize_thread, allow(unused_imports))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence,
};
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
pub(crate) use std::thread_local;

/// The table shards' writer lock (and a map's publish lock): ours, released by
/// a plain store (`shard_lock.rs`). It replaced `parking_lot`'s, whose release
/// is a compare-and-swap; std's `Mutex` also reads the process's panic count on
/// both ends and keeps a poison flag, which the table ignores anyway.
pub(crate) use super::shard_lock::{ShardGuard, ShardLock};

/// Waits on `cv` (releasing `guard`) until notified or `timeout` passes; the
/// guard is dropped on return. The waiter re-checks its condition either way.
pub(crate) fn timed_wait<T>(cv: &Condvar, guard: MutexGuard<'_, T>, timeout: std::time::Duration) {
    drop(
        cv.wait_timeout(guard, timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
}

/// Threads: spawning the background reclaimer and parking it between passes.
pub(crate) mod thread {
    pub(crate) use std::thread::{Builder, JoinHandle, current};

    /// Parks the calling thread for at most `timeout` (`std::thread::park_timeout`),
    /// `MIRI_CLOCK_SCALE` times longer under Miri.
    pub(crate) fn park_timeout(timeout: std::time::Duration) {
        let scale = if cfg!(miri) { MIRI_CLOCK_SCALE } else { 1 };
        std::thread::park_timeout(timeout.saturating_mul(scale));
    }

    /// How much longer the background thread parks under Miri. With isolation on
    /// (as `.ci/run` runs it) Miri's clock advances 5 µs per interpreted basic
    /// block (its `NANOSECONDS_PER_BASIC_BLOCK`), a thousand times or more what a
    /// basic block takes on hardware. So the longest park, 16 ms, lasted 3,200
    /// basic blocks of the program's work, and the process-wide thread's idle
    /// passes, each a collection and a look at every ring, took most of the
    /// interpreter: `tests/operations.rs`'s
    /// `random_writes_on_colliding_keys_match_a_std_hash_map`, 2 minutes on its
    /// own, ran for 8 to 16 minutes after the tests that start the thread (stopped
    /// unfinished; with this scale the whole file ran in 220 s, 340 s in the one
    /// earlier run that had not stalled). Threads that wait for a pass are not
    /// slowed: they wake the thread themselves (`Domain::wait_until`, `nudge`).
    const MIRI_CLOCK_SCALE: u32 = 1000;
}

/// The slot holding the current generation: an `arc_swap::ArcSwapAny` on arc-swap's
/// `RwLock<()>` strategy (the `rwlock-strategy` feature), not its default one.
///
/// Only snapshots (a full load) and publishes (a swap, under the map's publish
/// lock) use the slot: pinned readers (under their epoch guard) and writers (under a shard lock)
/// follow the map's `pinned` pointer instead. The default strategy makes loads cheap and lock-free and
/// makes every swap walk every thread's debt node (`Debt::pay_all`): after a
/// large fill those nodes are cold, about a dozen misses, half of a clear's time at
/// 1,000,000 entries. With the lock, a swap touches the slot's own line and no
/// other thread's. What it costs: a clear and a snapshot each take
/// the lock for a handful of instructions, so one that is preempted inside delays
/// the other; concurrent snapshots share the lock's line (figures for both in
/// `docs/DESIGN.md`, "A clear, step by step").
pub(crate) type Slot<T> = arc_swap::ArcSwapAny<std::sync::Arc<T>, std::sync::RwLock<()>>;

/// Epoch-based deferral of frees: `crossbeam_epoch`'s default collector.
pub(crate) mod epoch {
    pub(crate) use crossbeam_epoch::{
        EpochStamp, Guard, epoch_stamp, flush_would_interrupt, is_pinned, pin, pinned_no_later_than,
    };

    /// Lets threads that mostly read pin without a full fence from now on (the
    /// fork's asymmetric fences, `vendor/crossbeam-epoch/src/asymmetric.rs`): registers the process
    /// for `membarrier`, which waits about 10 ms in the kernel. Called by the
    /// background reclaimer as it starts, off every caller's path. Returns whether
    /// they may (the registration succeeded).
    pub(crate) fn enable_light_pins() -> bool {
        crossbeam_epoch::enable_light_pins()
    }
}

/// Stripes of the per-map counters that every value touches (`reclaim/home.rs`):
/// enough that threads rarely share one.
pub(crate) const COUNTER_STRIPES: usize = 8;

/// Only under loom, where there is one stripe (`model.rs`); never called here.
pub(crate) fn holds_the_stripe_claim() -> bool {
    false
}

/// Whether the background thread paces its walks of the registered maps by the
/// clock (`reclaim/pace.rs`, `MAP_WALK_DUTY`).
pub(crate) const PACED_MAP_WALKS: bool = true;

/// Whether freed value cells are recycled to writers (`reclaim/recycle.rs`); not
/// under loom, whose models check the protocol, not the allocator.
pub(crate) const RECYCLE_CELLS: bool = true;

/// Whether a `static` lives for the whole process (it does, outside loom).
pub(crate) const SHARED_STATICS: bool = true;

/// A value shared by the whole process, built on first use.
pub(crate) struct ProcessWide<T>(std::sync::OnceLock<Arc<T>>);

impl<T> ProcessWide<T> {
    pub(crate) const fn new() -> Self {
        ProcessWide(std::sync::OnceLock::new())
    }

    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> Arc<T>) -> Arc<T> {
        Arc::clone(self.0.get_or_init(init))
    }
}

/// `std`'s `UnsafeCell` behind loom's closure-based interface, so that the table's
/// key cells are loom cells under `--features loom` (which then checks every access
/// against the happens-before order) and cost nothing here.
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer for reading.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a pointer for writing.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Whether our plain-memory objects make their uses and their frees visible to
/// loom (a table's arrays, `src/table/array.rs`; a map's home,
/// `src/reclaim/home.rs`): only under loom, where a use not ordered before the free
/// then shows as a race.
pub(crate) const TRACK_FREES: bool = false;

/// Counts a rehash for the models (`model.rs`); nothing outside them.
#[inline(always)]
pub(crate) fn count_rehash() {}

/// Whether an all-zero `AtomicPtr` of the shim is a null one, so that a large slot
/// array may be mapped zeroed (`src/table/array.rs`, `src/mapped.rs`): yes, std's
/// is a plain pointer.
pub(crate) const ZEROED_ATOMIC_PTR_IS_NULL: bool = true;

/// The smallest slot array of a table shard (`src/table/`).
pub(crate) const TABLE_MIN_CAPACITY: usize = 8;

/// How many times a quiesce of a map's shard locks tries a lock that is held
/// before it gives up for this pass (`src/table/locks.rs`): a writer holds one
/// for tens of nanoseconds, unless its closure runs long.
pub(crate) const QUIESCE_TRIES: usize = 64;

/// The bytes of retired table arrays a thread defers before it flushes them to the
/// global queue (`src/table/locks.rs`, `RetiredArray::defer_free`): a flush seals
/// a bag, a `membarrier` call while some thread pins light, so small arrays wait
/// in the thread's bag; an idle writer keeps less than this there.
pub(crate) const RETIRED_ARRAY_FLUSH_BYTES: usize = 64 * 1024;

/// Slots of a retired table that a background reclaimer drains per run of its
/// teardown job (`src/generation.rs`, `TEARDOWN_SLICE_SLOTS`).
pub(crate) const TEARDOWN_SLICE: usize = 16 * 1024;

/// Where a shard's current slots are, as its last writer saw them: a hint for a
/// prefetch before the shard's lock is taken (`table/locks.rs`), never
/// dereferenced, so it synchronizes nothing (Relaxed; a torn pair only fetches a
/// useless line). Under loom it is empty: it is not part of the protocol.
pub(crate) struct SlotsHint {
    base: std::sync::atomic::AtomicPtr<u8>,
    mask: std::sync::atomic::AtomicUsize,
}

impl SlotsHint {
    pub(crate) fn new() -> Self {
        SlotsHint {
            base: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            mask: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The address of the slot where a probe for `hash` starts in the slots of the
    /// last [`set`](Self::set) (`None` before one); `wrapping_add`: nothing is
    /// accessed, and the slots may be gone.
    #[inline(always)]
    pub(crate) fn home_slot(&self, hash: u64) -> Option<*const u8> {
        use std::sync::atomic::Ordering::Relaxed;
        // Relaxed: a hint (above).
        let (base, mask) = (self.base.load(Relaxed), self.mask.load(Relaxed));
        // A slot is one word (`table/array.rs`).
        (!base.is_null()).then(|| {
            base.cast_const()
                .wrapping_add((hash as usize & mask) * size_of::<usize>())
        })
    }

    /// Records slots starting at `base`, whose indices `mask` masks. Two plain
    /// stores into the line of the lock the writer holds: fewer instructions than
    /// comparing first (1-thread Exchange mix under callgrind: 1.6 M more in
    /// 524,288 operations with the comparison).
    #[inline(always)]
    pub(crate) fn set(&self, base: *const u8, mask: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        // Relaxed: a hint (above).
        self.base.store(base.cast_mut(), Relaxed);
        self.mask.store(mask, Relaxed);
    }
}
