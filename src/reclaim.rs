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

use crate::doomed::DoomedValue;
use crate::lock_free_stack::Stack;
use crate::retire_list::{Retirable, RetireList, RetireNode};
use crate::sync::{
    Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, epoch, thread, thread_local,
};
use crate::trim;
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
    /// Removed and replaced values need more than one `reclaim` call (a grace period
    /// lies between them): call it periodically.
    Manual,
}

/// What one teardown did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TeardownReport {
    /// Entries the table held (each was counted as pending when the reclaimer took it).
    pub(crate) entries: usize,
    /// Values destroyed (the others are still held by handles or C retains).
    pub(crate) destroyed: usize,
    /// Destructors (of keys or values) that panicked; each panic was contained.
    pub(crate) panics: usize,
    /// Whether the table belonged to a generation that was once current, rather
    /// than an unused spare (which is not counted as a reclaimed generation).
    pub(crate) retired: bool,
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
    pending_values: AtomicUsize,
    reclaimed_generations: AtomicU64,
    reclaimed_values: AtomicU64,
    destructor_panics: AtomicU64,
}

/// A sample of the reclaimer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CounterSample {
    pub(crate) pending_values: usize,
    pub(crate) reclaimed_generations: u64,
    pub(crate) reclaimed_values: u64,
    pub(crate) destructor_panics: u64,
}

/// Shared by a map, its generations, its values and its `Retired` tickets.
pub(crate) struct Reclaimer {
    queue: RetireList,
    /// Values whose last reference is gone, waiting for a grace period (see
    /// `doomed.rs`), and batches past theirs, waiting to be destroyed.
    doomed: Stack<DoomedValue>,
    ripe: Stack<Vec<DoomedValue>>,
    mode: ReclaimMode,
    /// Whether a large pass returns free memory to the OS (see `trim.rs`).
    trim: bool,
    /// Set once, when the map is dropped.
    closed: AtomicBool,
    /// The background thread, to wake it from `Retired::wait` (never from the clearer).
    worker: Mutex<Option<thread::JoinHandle<()>>>,
    /// Waiters on `Retired` tickets sleep here; a pass that tore something down notifies.
    done_lock: Mutex<()>,
    done_cv: Condvar,
    counters: Counters,
    /// The map's own work at the start and end of each pass (see `standby.rs`):
    /// release the generation the last clear handed off, build the next spare.
    /// Cleared when the map is dropped, which breaks the cycle spare → reclaimer.
    hook: Mutex<Option<PassHook>>,
}

/// When the map's hook runs within a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PassPhase {
    /// Before the retired tables are taken: handed-off generations are released
    /// here, so that their tables are torn down in this same pass.
    Start,
    /// After the teardowns: the next spare is built here.
    End,
}

/// The map's callback, run by whichever thread runs a pass.
pub(crate) type PassHook = Box<dyn Fn(&Arc<Reclaimer>, PassPhase) + Send + Sync>;

thread_local! {
    /// The reclaimer whose pass is running on this thread, or null: a destructor run
    /// by that pass that waits for the same reclaimer would wait for itself.
    // Not `const { .. }`: loom's `thread_local!` (the shim's, under the loom feature)
    // does not accept it.
    #[allow(clippy::missing_const_for_thread_local)]
    static IN_PASS: std::cell::Cell<*const Reclaimer> = std::cell::Cell::new(std::ptr::null());
}

/// Marks this thread as running a pass of one reclaimer until dropped (restoring
/// the outer mark, for a pass run from a destructor of another map's pass).
struct PassMark(*const Reclaimer);

impl PassMark {
    fn enter(this: &Arc<Reclaimer>) -> Self {
        PassMark(IN_PASS.with(|p| p.replace(&**this as *const Reclaimer)))
    }

    /// Whether this thread is inside a pass of `this`.
    fn inside(this: &Arc<Reclaimer>) -> bool {
        IN_PASS.with(|p| std::ptr::eq(p.get(), &**this))
    }
}

impl Drop for PassMark {
    fn drop(&mut self) {
        IN_PASS.with(|p| p.set(self.0));
    }
}

/// The shortest and longest park of the background thread between passes.
const MIN_PARK: Duration = Duration::from_millis(1);
const MAX_PARK: Duration = Duration::from_millis(16);

impl Reclaimer {
    /// Creates a reclaimer; in background mode, spawns its thread.
    ///
    /// # Panics
    /// If the background thread cannot be spawned.
    pub(crate) fn start(mode: ReclaimMode, trim: bool) -> Arc<Self> {
        let reclaimer = Arc::new(Reclaimer {
            queue: RetireList::new(),
            doomed: Stack::new(),
            ripe: Stack::new(),
            mode,
            trim,
            closed: AtomicBool::new(false),
            worker: Mutex::new(None),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
            counters: Counters::default(),
            hook: Mutex::new(None),
        });
        if mode == ReclaimMode::Background {
            let for_thread = Arc::clone(&reclaimer);
            let handle = thread::Builder::new()
                .name("atomic-map-reclaim".into())
                .spawn(move || Reclaimer::run_background(&for_thread))
                .expect("atomic-map: failed to spawn the reclaimer thread");
            *lock(&reclaimer.worker) = Some(handle);
        }
        reclaimer
    }

    pub(crate) fn mode(&self) -> ReclaimMode {
        self.mode
    }

    /// Installs the map's pass hook and runs its end phase once (a first spare).
    pub(crate) fn set_hook(this: &Arc<Self>, hook: PassHook) {
        hook(this, PassPhase::End);
        *lock(&this.hook) = Some(hook);
    }

    /// Removes the pass hook; once this returns it never runs again.
    pub(crate) fn clear_hook(&self) {
        drop(lock(&self.hook).take());
    }

    fn run_hook(this: &Arc<Self>, phase: PassPhase) {
        if let Some(hook) = lock(&this.hook).as_ref() {
            hook(this, phase);
        }
    }

    fn run_background(this: &Arc<Self>) {
        let mut park = MIN_PARK;
        loop {
            let worked = Self::reclaim_pass(this) > 0;
            // SeqCst: pairs with the SeqCst store in `close`.
            if this.closed.load(Ordering::SeqCst) {
                Self::reclaim_pass(this);
                return;
            }
            park = if worked || !this.queue.is_empty() {
                MIN_PARK
            } else {
                (park * 2).min(MAX_PARK)
            };
            thread::park_timeout(park);
        }
    }

    /// Hands a retired table over. O(1), no allocation: a push on the lock-free list.
    pub(crate) fn submit<T: Retirable + Send>(this: &Arc<Self>, node: Box<RetireNode<T>>) {
        this.queue.push(node);
        // SeqCst: with the SeqCst push above and the SeqCst store + take in `close`,
        // either the closing pass sees this job or this load sees `closed`.
        if this.closed.load(Ordering::SeqCst) {
            Self::reclaim_pass(this);
        }
    }

    /// Tears down every table handed over so far, on the calling thread, and helps
    /// the epoch along. Returns the number of generations torn down.
    pub(crate) fn reclaim_pass(this: &Arc<Self>) -> usize {
        let _mark = PassMark::enter(this);
        Self::run_hook(this, PassPhase::Start);
        let jobs = this.queue.take_all();
        let mut count = 0;
        let c = &this.counters;
        let entries: usize = jobs.iter().map(|job| job.len()).sum();
        c.pending_values.fetch_add(entries, Ordering::Relaxed);
        let mut destroyed = 0;
        for job in jobs {
            let report = job.teardown();
            destroyed += report.destroyed;
            c.pending_values
                .fetch_sub(report.entries, Ordering::Relaxed);
            c.reclaimed_values
                .fetch_add(report.destroyed as u64, Ordering::Relaxed);
            c.destructor_panics
                .fetch_add(report.panics as u64, Ordering::Relaxed);
            if report.retired {
                count += 1;
                c.reclaimed_generations.fetch_add(1, Ordering::Relaxed);
            }
        }
        destroyed += Self::reclaim_values(this);
        if this.trim && destroyed >= trim::TRIM_THRESHOLD {
            trim::release_free_memory();
        }
        if count > 0 {
            let _g = lock(&this.done_lock);
            this.done_cv.notify_all();
        }
        Self::run_hook(this, PassPhase::End);
        count
    }

    /// Takes a value whose last reference is gone (see `doomed.rs`). O(1).
    ///
    /// `this` must be a reference the caller owns, not the one stored in the doomed
    /// cell: once pushed, the value may be destroyed by another thread at any time.
    pub(crate) fn doom(this: &Arc<Self>, value: DoomedValue) {
        this.counters.pending_values.fetch_add(1, Ordering::Relaxed);
        this.doomed.push(value);
        // SeqCst: with the SeqCst push and the SeqCst store of `closed` in `close`
        // followed by its last pass: either that pass takes this value, or this load
        // sees `closed` and starts the value's grace period itself.
        if this.closed.load(Ordering::SeqCst) {
            Self::reclaim_values(this);
        }
    }

    /// Steps 2 and 3 of `doomed.rs`: starts the grace period of the values doomed so
    /// far, and destroys the batches whose grace period is over. Returns the number
    /// of values destroyed.
    fn reclaim_values(this: &Arc<Self>) -> usize {
        let batch = this.doomed.take_all();
        let guard = epoch::pin();
        if !batch.is_empty() {
            let reclaimer = Arc::clone(this);
            // SAFETY: the closure only moves owned values between lists (or, once the
            // map is gone, destroys them); running it on any thread, after every
            // guard pinned before this call is dropped, is what it is for.
            unsafe { guard.defer_unchecked(move || Self::ripen(&reclaimer, batch)) };
        }
        // Push this thread's bag to the global queue, where any thread's collection
        // (this one's next pass included) runs it, and collect what is ripe now.
        guard.flush();
        drop(guard);
        Self::destroy_ripe(this)
    }

    /// Runs when a batch's grace period is over, on whichever thread collects it.
    fn ripen(this: &Arc<Self>, batch: Vec<DoomedValue>) {
        this.ripe.push(batch);
        // SeqCst: as in `doom`: after the map is gone no pass will come, so the
        // thread that ripens a batch destroys it.
        if this.closed.load(Ordering::SeqCst) {
            Self::destroy_ripe(this);
        }
    }

    /// Destroys every ripe batch on the calling thread; returns how many values.
    fn destroy_ripe(this: &Arc<Self>) -> usize {
        let (mut destroyed, mut panics) = (0, 0);
        for batch in this.ripe.take_all() {
            for value in batch {
                destroyed += 1;
                if value.destroy() == DropOutcome::Panicked {
                    panics += 1;
                }
            }
        }
        if destroyed > 0 {
            let c = &this.counters;
            c.pending_values.fetch_sub(destroyed, Ordering::Relaxed);
            c.reclaimed_values
                .fetch_add(destroyed as u64, Ordering::Relaxed);
            c.destructor_panics.fetch_add(panics, Ordering::Relaxed);
        }
        destroyed
    }

    pub(crate) fn sample(&self) -> CounterSample {
        let c = &self.counters;
        CounterSample {
            pending_values: c.pending_values.load(Ordering::Relaxed),
            reclaimed_generations: c.reclaimed_generations.load(Ordering::Relaxed),
            reclaimed_values: c.reclaimed_values.load(Ordering::Relaxed),
            destructor_panics: c.destructor_panics.load(Ordering::Relaxed),
        }
    }

    /// Waits until `done` is set (by a teardown) or `timeout` passes; `None` waits
    /// forever. In manual mode the waiting thread runs the passes itself. Returns
    /// whether `done` was set.
    pub(crate) fn wait_for(this: &Arc<Self>, done: &AtomicBool, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // Acquire: pairs with the Release store of `done` after the teardown, so the
        // caller sees every effect of it.
        let is_done = || done.load(Ordering::Acquire);
        loop {
            if is_done() {
                return true;
            }
            if PassMark::inside(this) {
                // A destructor run by this reclaimer's pass: no pass can finish while
                // it waits, so waiting would never end.
                assert!(
                    timeout.is_some(),
                    "atomic-map: Retired::wait called from a value's destructor run by the same \
                     map's reclamation would wait for itself; use wait_timeout or is_reclaimed"
                );
                return false;
            }
            match this.mode {
                ReclaimMode::Manual => {
                    Self::reclaim_pass(this);
                }
                ReclaimMode::Background => {
                    if let Some(worker) = lock(&this.worker).as_ref() {
                        worker.thread().unpark();
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
            let guard = lock(&this.done_lock);
            if is_done() {
                return true;
            }
            // The pass that sets `done` notifies under `done_lock`, so a wake-up cannot
            // be lost between the check above and this wait; the slice bounds the
            // wait anyway (manual mode, a reclaimer closed in between).
            drop(
                this.done_cv
                    .wait_timeout(guard, slice)
                    .unwrap_or_else(PoisonError::into_inner),
            );
        }
    }

    /// Marks the map gone: the background thread makes a last pass and exits; in
    /// manual mode the pending work is done here, on the dropping thread. With
    /// `join`, waits for the background thread to finish (unless this *is* that
    /// thread, e.g. a destructor it runs dropping a map).
    pub(crate) fn close(this: &Arc<Self>, join: bool) {
        // SeqCst: pairs with the SeqCst load in `submit` (see there).
        this.closed.store(true, Ordering::SeqCst);
        match this.mode {
            ReclaimMode::Manual => {
                Self::reclaim_pass(this);
            }
            ReclaimMode::Background => {
                let worker = lock(&this.worker).take();
                if let Some(worker) = worker {
                    worker.thread().unpark();
                    if join && worker.thread().id() != thread::current().id() {
                        // A panic on that thread was already reported by the hook;
                        // the map's state does not depend on it.
                        let _ = worker.join();
                    }
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
