//! `ShardLocks`: a map's writer locks, one per shard, used for every generation's
//! table, so that a writer takes its lock *before* it finds the generation. The
//! map's standby owns them: it outlives the map, and a table needs no lock once
//! its map, and so every writer, is gone.
//!
//! A writer takes the lock of its key's shard from the map, then loads the map's
//! current generation and writes into that generation's shard under the lock. It
//! pins no epoch: the lock is what keeps the generation it loaded alive. A
//! generation's slot reference (the one a clear parks for release) is released
//! only after its map's reclaimer has *quiesced* the locks
//! ([`ShardLocks::try_quiesce`]): taken and released each of them once, after the
//! generation stopped being current. A writer that loaded the generation held one
//! of the locks from before that load until it was done, so the quiesce's take of
//! that lock waits for it (the unlock happens before the take); a writer that takes
//! a lock after the quiesce has released it loads the map's current generation
//! after the clear's move of it (the release happens before its take, and the
//! clear's move before the quiesce), so it cannot load the retired one. Pinned
//! readers are still covered by the grace period that follows.
//!
//! Why: an epoch pin is a locked instruction and about 40 more instructions per
//! write, a tenth of a write's time at one thread (`docs/BENCHMARKS.md`,
//! "History", "Writes without an epoch pin"). The cost: a writer of a retired
//! generation and one of the current generation share a shard's lock, and the
//! lock's line is the map's, not the generation's (one more line per write, which
//! stays in the writer's cache while it keeps writing that shard). The same line
//! holds the shard's `SlotsHint`, where its slots were at its last write, so that
//! a writer fetches its probe's first slot before it takes the lock
//! ([`ShardLocks::fetch`]; `docs/DESIGN.md`, "The table").
//!
//! The locks are one allocation of 64 bytes per shard (512 for 8 shards, the
//! default on 2 CPUs), at the allocator's own alignment: see `PaddedLock`. It is
//! the one allocation a map's creation gained (about 430 instructions: 1,807 → 2,236 per
//! `AtomicMap::new` in `--bench map_creation`, whose 1,000 maps are carved from
//! the top of the heap: `docs/DESIGN.md`, "Writers without an epoch pin").
//! Keeping up to 8 locks inline in the standby instead cost more (2,373): the
//! standby, 600 bytes larger, was copied on its way into its `Arc`, and its
//! allocation left glibc's per-thread cache.

use std::mem::{ManuallyDrop, MaybeUninit};

use crate::prefetch::prefetch_line;
use crate::sync::{
    QUIESCE_TRIES, RETIRED_ARRAY_FLUSH_BYTES, ShardGuard, ShardLock, SlotsHint, epoch,
};

/// The bytes after a lock up to the next one: a lock is one byte (`shard_lock.rs`;
/// loom's is larger), so locks 64 bytes apart never share a cache line, with no
/// alignment asked of the allocation that holds them (an aligned allocation takes
/// glibc's `memalign` path: `shards.rs`).
const LOCK_PAD: usize = 64usize.saturating_sub(size_of::<ShardLock<()>>() + size_of::<SlotsHint>());

/// A shard's lock on a 64-byte stride, so that writers of different shards do not
/// share a line, and beside it the shard's [`SlotsHint`]: where its current slots
/// were when its last writer held the lock, so that the next writer fetches its
/// probe's first slot before it takes the lock ([`ShardLocks::fetch`]).
///
/// The pad is never read, so it is left uninitialized: building the
/// locks is then one store per lock into a plain `malloc` chunk, where zeroed pad
/// bytes made the whole array a `calloc` (`memset` of 512 bytes for 8 shards: 331
/// instructions of a map's creation, against about 200 for the `malloc`).
struct PaddedLock {
    lock: ShardLock<()>,
    hint: SlotsHint,
    _pad: [MaybeUninit<u8>; LOCK_PAD],
}

// The stride the pad is for (the loom build's lock is larger).
#[cfg(not(feature = "loom"))]
const _: () = assert!(size_of::<PaddedLock>() == 64);

impl PaddedLock {
    fn new() -> Self {
        PaddedLock {
            lock: ShardLock::new(()),
            hint: SlotsHint::new(),
            _pad: [MaybeUninit::uninit(); LOCK_PAD],
        }
    }
}

/// One lock per shard of a map's tables (a power of two, at least 2: the hash's
/// top bits choose the shard, as in the table).
pub(crate) struct ShardLocks {
    locks: Box<[PaddedLock]>,
    /// `64 - log2(shards)`.
    shift: u32,
}

impl ShardLocks {
    /// `shards` locks (a power of two, at least 2).
    pub(crate) fn new(shards: usize) -> Self {
        assert!(shards.is_power_of_two() && shards >= 2);
        ShardLocks {
            locks: (0..shards).map(|_| PaddedLock::new()).collect(),
            shift: 64 - shards.trailing_zeros(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.locks.len()
    }

    /// The locks, one per shard.
    #[inline(always)]
    fn locks(&self) -> &[PaddedLock] {
        &self.locks
    }

    /// The shard of `hash`: its top bits.
    #[inline(always)]
    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        (hash >> self.shift) as usize
    }

    /// Takes the lock of the shard of `hash`.
    #[inline(always)]
    pub(crate) fn lock(&self, hash: u64) -> Locked<'_> {
        self.lock_shard(self.shard_of(hash))
    }

    /// The lock of the shard of `hash`, with the slot where a probe for `hash`
    /// starts in the shard's current array fetched (as the shard's last writer
    /// left its hint): before the lock is taken ([`Fetched::lock`]), so that the
    /// slot's line arrives meanwhile.
    #[inline(always)]
    pub(crate) fn fetch(&self, hash: u64) -> Fetched<'_> {
        let shard = self.shard_of(hash);
        let padded = &self.locks()[shard];
        if let Some(slot) = padded.hint.home_slot(hash) {
            prefetch_line(slot);
        }
        Fetched { padded, shard }
    }

    /// The address of the slot where a probe for `hash` starts, as [`fetch`](Self::fetch) computes it.
    #[cfg(all(test, not(feature = "loom")))]
    pub(super) fn home_slot_hint(&self, hash: u64) -> Option<*const u8> {
        self.locks()[self.shard_of(hash)].hint.home_slot(hash)
    }

    /// Takes the lock of shard `shard`.
    #[inline(always)]
    pub(crate) fn lock_shard(&self, shard: usize) -> Locked<'_> {
        Fetched {
            padded: &self.locks()[shard],
            shard,
        }
        .lock()
    }

    /// Takes and releases every lock once, in order, and says whether it did: a
    /// lock held through `QUIESCE_TRIES` tries (a writer inside a long closure,
    /// or this very thread holding it) makes it give up, and the caller tries
    /// again later. Never blocks, so that a reclaimer's pass that calls it (on
    /// the background thread, or inside a program's `reclaim` called under a
    /// shard lock) neither waits for a writer's closure nor deadlocks on its own
    /// thread's lock. Locks already taken and released stay quiesced: the retry
    /// starts over only for simplicity (a lock is a few instructions).
    pub(crate) fn try_quiesce(&self) -> bool {
        self.locks().iter().all(|padded| {
            (0..QUIESCE_TRIES).any(|_| {
                // The take (an Acquire) and the release: see the module docs.
                let taken = padded.lock.try_lock().is_some();
                if !taken {
                    std::hint::spin_loop();
                }
                taken
            })
        })
    }

    /// Takes and releases every lock once, waiting for each: only where no
    /// writer can hold one for long (a map's last standby going away).
    pub(crate) fn quiesce(&self) {
        for padded in self.locks() {
            drop(padded.lock.lock());
        }
    }
}

/// A shard's lock, not taken yet, whose probe's first slot is on its way
/// ([`ShardLocks::fetch`]).
pub(crate) struct Fetched<'l> {
    padded: &'l PaddedLock,
    shard: usize,
}

impl<'l> Fetched<'l> {
    /// Takes the lock.
    #[inline(always)]
    pub(crate) fn lock(self) -> Locked<'l> {
        Locked {
            guard: ManuallyDrop::new(self.padded.lock.lock()),
            hint: &self.padded.hint,
            shard: self.shard,
            retired: None,
        }
    }
}

/// A held shard lock of a map's [`ShardLocks`]. A table's writer keeps here the
/// array a rehash replaced, which is retired once the lock is released (`Drop`):
/// the epoch's collection that the retirement may run, which runs anyone's
/// deferred closures, never runs under a shard lock.
pub(crate) struct Locked<'l> {
    guard: ManuallyDrop<ShardGuard<'l, ()>>,
    hint: &'l SlotsHint,
    shard: usize,
    retired: Option<RetiredArray>,
}

impl Locked<'_> {
    /// The shard whose lock this is.
    pub(crate) fn shard(&self) -> usize {
        self.shard
    }

    /// Records where the shard's current slots are (`base`, `mask`), for the next
    /// writer's prefetch ([`ShardLocks::fetch`]).
    #[inline(always)]
    pub(crate) fn hint_slots(&self, base: *const u8, mask: usize) {
        self.hint.set(base, mask);
    }

    /// Keeps `retired` (one per hold of the lock) to be retired once the lock is
    /// released.
    pub(crate) fn retire_after_unlock(&mut self, retired: RetiredArray) {
        debug_assert!(self.retired.is_none(), "one rehash per hold of the lock");
        self.retired = Some(retired);
    }
}

impl Drop for Locked<'_> {
    /// Releases the lock, then retires the array a rehash replaced under it.
    #[inline]
    fn drop(&mut self) {
        // SAFETY: dropped once, here, and not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        if let Some(retired) = self.retired.take() {
            retired.defer_free();
        }
    }
}

/// An array retired by a rehash, on its way to being freed past a grace period:
/// its pointer and how to free it (so that a `Locked` names no entry type).
pub(crate) struct RetiredArray {
    array: *mut (),
    free: unsafe fn(*mut ()),
    /// The bytes the free gives back (its slots), which decide when the deferral
    /// is flushed (`defer_free`).
    bytes: usize,
}

// SAFETY: freeing the array touches only its own slots (atomic words), never an
// entry, on whichever thread runs the deferred closure (`RetiredArray::new`'s
// contract).
unsafe impl Send for RetiredArray {}

impl RetiredArray {
    /// `bytes`: the memory the free gives back (the array's slots).
    ///
    /// # Safety
    /// `array` came from `Box::<A>::into_raw`, is unreachable for every guard pinned
    /// after this call's caller releases its lock, and freeing it (`A`'s drop) reads
    /// nothing but its own memory.
    pub(crate) unsafe fn new<A>(array: *mut A, bytes: usize) -> Self {
        /// # Safety
        /// `array` came from `Box::<A>::into_raw` and is freed once.
        unsafe fn free<A>(array: *mut ()) {
            // SAFETY: the contract.
            drop(unsafe { Box::from_raw(array.cast::<A>()) })
        }
        RetiredArray {
            array: array.cast(),
            free: free::<A>,
            bytes,
        }
    }

    /// Defers the free past the grace period. The deferral goes to the global
    /// queue, where any thread's next collection can run it, once this thread has
    /// deferred `RETIRED_ARRAY_FLUSH_BYTES` of arrays since it last did so (the
    /// shim's constant: 64 KiB): a larger array goes at once, and a writer that
    /// then goes idle keeps less than that in its private bag (besides the bag
    /// filling and going on its own, as every deferral's does). Off the writers'
    /// inlined path: a rehash is rare.
    ///
    /// Why not flush every time: a flush seals the bag, and while some thread pins
    /// with the light fence a seal is a `membarrier` call that interrupts every
    /// other CPU running the process (`vendor/crossbeam-epoch/src/asymmetric.rs`).
    /// A map cleared 10,000 times a second is refilled from its smallest arrays,
    /// and its writer rehashed about 25,000 times a second, each a barrier:
    /// `clear_storm`'s writer spent about nine tenths of its time in the kernel
    /// (`docs/BENCHMARKS.md`, "Rehashes that do not flush").
    #[cold]
    #[inline(never)]
    fn defer_free(self) {
        let bytes = self.bytes;
        let guard = epoch::pin();
        guard.defer(move || {
            let retired = self;
            // SAFETY: retired by a rehash, unreachable once every guard pinned
            // before the deferral is gone (the grace period, `new`'s contract); from
            // `Box::into_raw`, freed once, here.
            unsafe { (retired.free)(retired.array) }
        });
        if unflushed_array_bytes_reach_limit(bytes) {
            guard.flush();
        }
    }
}

std::thread_local! {
    /// The bytes of arrays this thread deferred since its last flush of them
    /// (`RetiredArray::defer_free`). A plain count of this thread's own, not
    /// synchronization.
    static UNFLUSHED_ARRAY_BYTES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Adds `bytes` to this thread's count of unflushed array bytes; whether they
/// reach `RETIRED_ARRAY_FLUSH_BYTES`, the count then starting again from 0 (the
/// caller flushes). A thread being torn down (its thread-locals gone) flushes.
fn unflushed_array_bytes_reach_limit(bytes: usize) -> bool {
    UNFLUSHED_ARRAY_BYTES
        .try_with(|unflushed| {
            let total = unflushed.get().saturating_add(bytes);
            let reached = total >= RETIRED_ARRAY_FLUSH_BYTES;
            unflushed.set(if reached { 0 } else { total });
            reached
        })
        .unwrap_or(true)
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::{Duration, Instant};

    /// Stands in for a slot array: counts its frees.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn retired(frees: &Arc<AtomicUsize>, bytes: usize) -> RetiredArray {
        let array = Box::into_raw(Box::new(Counted(Arc::clone(frees))));
        // SAFETY: from `Box::into_raw`, reachable by nobody, and `Counted`'s drop
        // reads only its own memory and the count.
        unsafe { RetiredArray::new(array, bytes) }
    }

    /// Pins and flushes on other threads (each flush tries to advance the epoch and
    /// collects) until `frees` reaches `want` or `limit` passes; the count then.
    fn collect_elsewhere(frees: &Arc<AtomicUsize>, want: usize, limit: Duration) -> usize {
        let began = Instant::now();
        while frees.load(Ordering::SeqCst) < want && began.elapsed() < limit {
            thread::spawn(|| {
                for _ in 0..64 {
                    epoch::pin().flush();
                }
            })
            .join()
            .unwrap();
        }
        frees.load(Ordering::SeqCst)
    }

    /// A small array's free stays in the retiring thread's bag (no flush, so no
    /// seal: a `membarrier` while some thread pins light) until the thread has
    /// retired `RETIRED_ARRAY_FLUSH_BYTES` of them; then every one of them goes
    /// to the global queue, where other threads' collections free each once.
    #[test]
    fn small_arrays_wait_in_the_bag_until_their_bytes_add_up() {
        let frees = Arc::new(AtomicUsize::new(0));
        let half = RETIRED_ARRAY_FLUSH_BYTES / 2;
        retired(&frees, half - 1).defer_free();
        retired(&frees, 1).defer_free();
        // Nothing but this thread's bag holds the two: other threads' collections
        // cannot reach them, however long they run.
        assert_eq!(collect_elsewhere(&frees, 1, Duration::from_millis(200)), 0);
        // Reaching the limit flushes all of them.
        retired(&frees, half).defer_free();
        assert_eq!(collect_elsewhere(&frees, 3, Duration::from_secs(30)), 3);
        // And the count starts again: a small one waits once more.
        retired(&frees, 1).defer_free();
        assert_eq!(collect_elsewhere(&frees, 4, Duration::from_millis(200)), 3);
        epoch::pin().flush();
        assert_eq!(collect_elsewhere(&frees, 4, Duration::from_secs(30)), 4);
        thread::sleep(Duration::from_millis(20));
        assert_eq!(frees.load(Ordering::SeqCst), 4, "each freed once");
    }

    /// An array of the limit's size or more goes to the global queue at once.
    #[test]
    fn a_large_array_is_flushed_at_once() {
        let frees = Arc::new(AtomicUsize::new(0));
        retired(&frees, RETIRED_ARRAY_FLUSH_BYTES).defer_free();
        assert_eq!(collect_elsewhere(&frees, 1, Duration::from_secs(30)), 1);
    }
}
