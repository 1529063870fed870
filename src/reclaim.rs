//! The `Reclaimer`: tears retired generations down off the hot path and keeps the
//! garbage counters behind [`Stats`](crate::Stats).
//!
//! Work arrives on a lock-free [`RetireList`]: the thread that drops a retired
//! generation's last reference pushes its table there (O(1), no lock, no syscall) and
//! returns. The walk over the table's entries happens in [`Reclaimer::reclaim_pass`],
//! run either by the background thread (the default mode) or by the user through
//! [`AtomicMap::reclaim`](crate::AtomicMap::reclaim) (manual mode). The background
//! thread finds work on its own schedule: it parks with a timeout (1 ms after a pass
//! that found work, backing off to 16 ms when idle) and is never woken by the clearer.
//!
//! Once the map is dropped the reclaimer is *closed*: the background thread makes a
//! last pass and exits, and a generation whose last holder lets go after that (a
//! snapshot that outlived the map) is torn down by that holder's thread, since no
//! reclaimer is left to do it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use crate::retire_list::RetireList;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, epoch, thread};
use crate::value::DropOutcome;

/// Who runs the teardown of retired generations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReclaimMode {
    /// A background thread per map (named `atomic-map-reclaim`) tears retired
    /// generations down. The default.
    #[default]
    Background,
    /// No extra thread: retired generations wait until the program calls
    /// [`AtomicMap::reclaim`](crate::AtomicMap::reclaim) (or waits on a
    /// [`Retired`](crate::Retired) ticket, which reclaims on the waiting thread).
    /// Dropping the map tears down whatever is still pending on the dropping thread.
    Manual,
}

/// A retired table waiting for its O(n) walk.
pub(crate) trait Teardown: Send {
    /// Releases every entry; returns what it did.
    fn teardown(self: Box<Self>) -> TeardownReport;
}

/// What one teardown did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TeardownReport {
    /// Entries the table held (each was counted as pending when it was handed over).
    pub(crate) entries: usize,
    /// Values destroyed (the others are still held by handles or C retains).
    pub(crate) destroyed: usize,
    /// Destructors (of keys or values) that panicked; each panic was contained.
    pub(crate) panics: usize,
}

impl TeardownReport {
    /// Records the end of one value's (or key's) destructor.
    pub(crate) fn record(&mut self, outcome: Option<DropOutcome>) {
        match outcome {
            None => {}
            Some(DropOutcome::Clean) => self.destroyed += 1,
            Some(DropOutcome::Panicked) => {
                self.destroyed += 1;
                self.panics += 1;
            }
        }
    }
}

/// Runs `f`, containing a panic; returns whether it panicked.
pub(crate) fn contain_panic(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

/// Counters behind `Stats`. Relaxed everywhere: they order nothing and are read as
/// a racy sample.
#[derive(Default)]
struct Counters {
    retired_generations: AtomicUsize,
    pending_values: AtomicUsize,
    reclaimed_generations: AtomicU64,
    reclaimed_values: AtomicU64,
    destructor_panics: AtomicU64,
}

/// A sample of the reclaimer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CounterSample {
    pub(crate) retired_generations: usize,
    pub(crate) pending_values: usize,
    pub(crate) reclaimed_generations: u64,
    pub(crate) reclaimed_values: u64,
    pub(crate) destructor_panics: u64,
}

/// Shared by a map, its generations, its values and its `Retired` tickets.
pub(crate) struct Reclaimer {
    queue: RetireList<Box<dyn Teardown>>,
    mode: ReclaimMode,
    /// Set once, when the map is dropped.
    closed: AtomicBool,
    /// The background thread, to wake it from `Retired::wait` (never from the clearer).
    worker: Mutex<Option<thread::Thread>>,
    /// Waiters on `Retired` tickets sleep here; a pass that tore something down notifies.
    done_lock: Mutex<()>,
    done_cv: Condvar,
    counters: Counters,
}

/// The shortest and longest park of the background thread between passes.
const MIN_PARK: Duration = Duration::from_millis(1);
const MAX_PARK: Duration = Duration::from_millis(16);

impl Reclaimer {
    /// Creates a reclaimer; in background mode, spawns its thread.
    ///
    /// # Panics
    /// If the background thread cannot be spawned.
    pub(crate) fn start(mode: ReclaimMode) -> Arc<Self> {
        let reclaimer = Arc::new(Reclaimer {
            queue: RetireList::new(),
            mode,
            closed: AtomicBool::new(false),
            worker: Mutex::new(None),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
            counters: Counters::default(),
        });
        if mode == ReclaimMode::Background {
            let for_thread = Arc::clone(&reclaimer);
            let handle = thread::Builder::new()
                .name("atomic-map-reclaim".into())
                .spawn(move || for_thread.run_background())
                .expect("atomic-map: failed to spawn the reclaimer thread");
            *lock(&reclaimer.worker) = Some(handle.thread().clone());
        }
        reclaimer
    }

    pub(crate) fn mode(&self) -> ReclaimMode {
        self.mode
    }

    fn run_background(&self) {
        let mut park = MIN_PARK;
        loop {
            let worked = self.reclaim_pass() > 0;
            // SeqCst: pairs with the SeqCst store in `close`.
            if self.closed.load(Ordering::SeqCst) {
                self.reclaim_pass();
                return;
            }
            park = if worked || !self.queue.is_empty() {
                MIN_PARK
            } else {
                (park * 2).min(MAX_PARK)
            };
            thread::park_timeout(park);
        }
    }

    /// Counts a generation that has just stopped being current (before it is swapped
    /// out, so that its teardown can never be counted first).
    pub(crate) fn note_retiring(&self) {
        self.counters.retired_generations.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands a retired table over. O(1): a push on the lock-free list.
    pub(crate) fn submit(&self, job: Box<dyn Teardown>, entries: usize) {
        self.counters.pending_values.fetch_add(entries, Ordering::Relaxed);
        self.queue.push(job);
        // SeqCst: with the SeqCst push above and the SeqCst store + take in `close`,
        // either the closing pass sees this job or this load sees `closed`.
        if self.closed.load(Ordering::SeqCst) {
            self.reclaim_pass();
        }
    }

    /// Tears down every table handed over so far, on the calling thread, and helps
    /// the epoch along. Returns the number of generations torn down.
    pub(crate) fn reclaim_pass(&self) -> usize {
        let jobs = self.queue.take_all();
        let count = jobs.len();
        for job in jobs {
            let report = job.teardown();
            let c = &self.counters;
            c.pending_values.fetch_sub(report.entries, Ordering::Relaxed);
            c.reclaimed_values.fetch_add(report.destroyed as u64, Ordering::Relaxed);
            c.destructor_panics.fetch_add(report.panics as u64, Ordering::Relaxed);
            c.reclaimed_generations.fetch_add(1, Ordering::Relaxed);
            c.retired_generations.fetch_sub(1, Ordering::Relaxed);
        }
        // Push this thread's deferred frees to the global queue and run a bounded
        // batch of ripe ones here, off the readers' path.
        epoch::pin().flush();
        if count > 0 {
            let _g = lock(&self.done_lock);
            self.done_cv.notify_all();
        }
        count
    }

    /// Counts a value whose last release deferred its free through the epoch.
    pub(crate) fn note_value_deferred(&self) {
        self.counters.pending_values.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a value destroyed by a deferred free.
    pub(crate) fn note_value_destroyed(&self, was_pending: bool, outcome: DropOutcome) {
        let c = &self.counters;
        if was_pending {
            c.pending_values.fetch_sub(1, Ordering::Relaxed);
        }
        c.reclaimed_values.fetch_add(1, Ordering::Relaxed);
        if outcome == DropOutcome::Panicked {
            c.destructor_panics.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn sample(&self) -> CounterSample {
        let c = &self.counters;
        CounterSample {
            retired_generations: c.retired_generations.load(Ordering::Relaxed),
            pending_values: c.pending_values.load(Ordering::Relaxed),
            reclaimed_generations: c.reclaimed_generations.load(Ordering::Relaxed),
            reclaimed_values: c.reclaimed_values.load(Ordering::Relaxed),
            destructor_panics: c.destructor_panics.load(Ordering::Relaxed),
        }
    }

    /// Waits until `done` is set (by a teardown) or `timeout` passes; `None` waits
    /// forever. In manual mode the waiting thread runs the passes itself. Returns
    /// whether `done` was set.
    pub(crate) fn wait_for(&self, done: &AtomicBool, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // Acquire: pairs with the Release store of `done` after the teardown, so the
        // caller sees every effect of it.
        let is_done = || done.load(Ordering::Acquire);
        loop {
            if is_done() {
                return true;
            }
            match self.mode {
                ReclaimMode::Manual => {
                    self.reclaim_pass();
                }
                ReclaimMode::Background => {
                    if let Some(worker) = lock(&self.worker).as_ref() {
                        worker.unpark();
                    }
                }
            }
            let slice = match deadline {
                None => MAX_PARK,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return is_done();
                    }
                    left.min(MAX_PARK)
                }
            };
            let guard = lock(&self.done_lock);
            if is_done() {
                return true;
            }
            // The pass that sets `done` notifies under `done_lock`, so a wake-up cannot
            // be lost between the check above and this wait; the slice bounds the
            // wait anyway (manual mode, a reclaimer closed in between).
            drop(
                self.done_cv
                    .wait_timeout(guard, slice)
                    .unwrap_or_else(PoisonError::into_inner),
            );
        }
    }

    /// Marks the map gone: the background thread makes a last pass and exits; in
    /// manual mode the pending work is done here, on the dropping thread.
    pub(crate) fn close(&self) {
        // SeqCst: pairs with the SeqCst load in `submit` (see there).
        self.closed.store(true, Ordering::SeqCst);
        match self.mode {
            ReclaimMode::Manual => {
                self.reclaim_pass();
            }
            ReclaimMode::Background => {
                if let Some(worker) = lock(&self.worker).take() {
                    worker.unpark();
                }
            }
        }
    }
}

/// Locks a mutex whose data (a `()` or a thread handle) cannot be left inconsistent
/// by a panic, so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> crate::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
