//! `ShardLock`: the writers' lock of a shard (and a map's publish lock), released
//! by a plain store.
//!
//! A lock that parks its waiters must see, when it is released, whether one
//! parked: `parking_lot`'s release is a `lock cmpxchg` for that, and so is
//! `DashMap`'s. A write takes a lock and releases it, so it paid two locked
//! instructions; the profile of the write group put about as many samples after
//! the release's as after the take's. This lock is released by
//! `store(false, Release)` (a plain `mov` on x86), and its waiters never park, so
//! no release has anyone to wake: a waiter spins a little (a lock held for a
//! write's few dozen nanoseconds), then yields its CPU (a holder that was
//! preempted), then sleeps in steps that double from 10 µs to 1 ms (a holder
//! running a rehash, or a user's closure under `compute` or `retain`). A waiter
//! thus sees a long hold end up to one step late, and costs a wake-up per step
//! meanwhile. Measured against `parking_lot` (`docs/BENCHMARKS.md`, "History",
//! "The shard lock released by a plain store, built"): 1-thread insert/remove
//! 0.70–0.73× → 0.75–0.79× of `DashMap`, upsert 0.51–0.56× → 0.56×.
//!
//! Written on the shim's atomics: the loom build checks it on its own (the model
//! below; `docs/broken-builds/shard-lock-release-relaxed.patch`), while the
//! scenarios use loom's `Mutex` in its place (`model.rs`), whose blocking keeps
//! their state space small. Not fair: a releasing writer may take it again
//! before a sleeping waiter wakes.

use std::marker::PhantomData;
use std::ops::Deref;

use super::{AtomicBool, Ordering};

/// A lock around a `T` that it only lends shared (the crate's locks hold `()`),
/// with `parking_lot`'s interface: `lock` returns the guard, and a panic under it
/// poisons nothing (the table is consistent after one: `table/mod.rs`).
#[cfg_attr(feature = "loom", allow(dead_code))]
pub(crate) struct ShardLock<T> {
    locked: AtomicBool,
    value: T,
}

/// A held [`ShardLock`]; dropping it releases the lock.
#[cfg_attr(feature = "loom", allow(dead_code))]
pub(crate) struct ShardGuard<'a, T> {
    lock: &'a ShardLock<T>,
    /// Not `Send`: released on the thread that took it, as `parking_lot`'s guard.
    _not_send: PhantomData<*const ()>,
}

#[cfg_attr(feature = "loom", allow(dead_code))]
impl<T> ShardLock<T> {
    pub(crate) fn new(value: T) -> Self {
        ShardLock {
            locked: AtomicBool::new(false),
            value,
        }
    }

    /// Takes the lock, waiting for it as the module's docs say.
    #[inline]
    pub(crate) fn lock(&self) -> ShardGuard<'_, T> {
        if let Some(guard) = self.try_lock() {
            return guard;
        }
        self.lock_contended()
    }

    /// The guard, if the lock is free now.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<ShardGuard<'_, T>> {
        // Acquire: pairs with the Release store of the previous holder's release
        // (`ShardGuard::drop`), so that what it wrote under the lock happens
        // before what this holder reads. Relaxed on failure: nothing was taken.
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            // Lazily: a guard built and dropped on failure would release the
            // holder's lock (`then_some` builds its value either way).
            .then(|| ShardGuard {
                lock: self,
                _not_send: PhantomData,
            })
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) -> ShardGuard<'_, T> {
        let mut round = 0u32;
        loop {
            // Relaxed: a hint of when to try; the compare-and-swap decides.
            while self.locked.load(Ordering::Relaxed) {
                wait(round);
                round = round.saturating_add(1);
            }
            if let Some(guard) = self.try_lock() {
                return guard;
            }
        }
    }
}

impl<T> Deref for ShardGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.lock.value
    }
}

impl<T> Drop for ShardGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: pairs with the Acquire of the next holder's compare-and-swap
        // (`try_lock`), so that everything this holder did under the lock happens
        // before the next holder's section. A plain store: no waiter is parked,
        // so there is no one to wake (module docs).
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// Spins before a waiter yields its CPU.
#[cfg(not(feature = "loom"))]
const SPINS: u32 = 64;
/// Yields (after the spins) before a waiter sleeps.
#[cfg(not(feature = "loom"))]
const YIELDS: u32 = 16;

/// A waiter's `round`th wait for a held lock: spins, then yields, then sleeps
/// of 10 µs doubling to 1 ms.
#[cfg(not(feature = "loom"))]
fn wait(round: u32) {
    if round < SPINS {
        std::hint::spin_loop();
    } else if round < SPINS + YIELDS {
        std::thread::yield_now();
    } else {
        let doublings = (round - SPINS - YIELDS).min(7);
        std::thread::sleep(std::time::Duration::from_micros(10 << doublings));
    }
}

/// Under loom a wait is a yield, so that the model runs the holder.
#[cfg(feature = "loom")]
fn wait(_round: u32) {
    loom::thread::yield_now();
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Threads adding under the lock with a plain load and store lose no count:
    /// the lock excludes (the count is an atomic only so that the test is safe
    /// code; its loads and stores are Relaxed, so only the lock orders them).
    #[test]
    fn excludes() {
        let lock = Arc::new(ShardLock::new(std::sync::atomic::AtomicUsize::new(0)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let count = lock.lock();
                        let now = count.load(std::sync::atomic::Ordering::Relaxed);
                        count.store(now + 1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let count = lock.lock();
        assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 80_000);
    }

    /// A waiter behind a long hold gets the lock soon after it is released (its
    /// sleeps are at most 1 ms), and `try_lock` refuses while it is held.
    #[test]
    fn a_long_hold_ends_for_its_waiter() {
        let lock = Arc::new(ShardLock::new(()));
        let held = lock.lock();
        let waiter = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let _g = lock.lock();
                Instant::now()
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        assert!(lock.try_lock().is_none(), "taken twice");
        let released = Instant::now();
        drop(held);
        let taken = waiter.join().unwrap();
        assert!(taken >= released, "the waiter took a held lock");
        // Generous: a shared machine may not run the waiter for a while.
        assert!(
            taken - released < Duration::from_millis(500),
            "the waiter slept {:?} past the release",
            taken - released
        );
        assert!(lock.try_lock().is_some());
    }
}

/// The lock checked by loom on loom's atomics: two threads write a cell under it;
/// loom reports a causality violation if the release does not publish the first
/// holder's write to the second (`docs/broken-builds/shard-lock-release-relaxed.patch`).
#[cfg(all(test, feature = "loom"))]
mod model {
    use super::*;
    use crate::sync::{Arc, UnsafeCell};

    /// A lock and the cell it guards.
    struct Guarded {
        lock: ShardLock<()>,
        cell: UnsafeCell<usize>,
    }

    // SAFETY: the cell is read and written only while its lock is held (below).
    unsafe impl Sync for Guarded {}

    impl Guarded {
        fn add_one(&self) {
            let _held = self.lock.lock();
            // SAFETY: under the lock, which excludes every other access.
            self.cell.with_mut(|n| unsafe { *n += 1 });
        }
    }

    #[test]
    fn a_release_publishes_the_section() {
        loom::model(|| {
            let guarded = Arc::new(Guarded {
                lock: ShardLock::new(()),
                cell: UnsafeCell::new(0),
            });
            let other = {
                let guarded = Arc::clone(&guarded);
                loom::thread::spawn(move || guarded.add_one())
            };
            guarded.add_one();
            other.join().unwrap();
            let _held = guarded.lock.lock();
            // SAFETY: under the lock.
            assert_eq!(guarded.cell.with(|n| unsafe { *n }), 2);
        });
    }
}
