//! `Domain`: one reclaimer, serving any number of maps.
//!
//! A domain owns the queues on which work waits (retired tables on a [`JobList`],
//! the maps whose clears park generations on their standbys, doomed values on
//! [`DoomRing`]s and [`DoomedList`]s, one of each per stripe of threads, ripe
//! batches and orphaned homes on [`Stack`]s) and
//! runs *passes* over them, one at a time. Passes are run by the domain's background
//! thread (the process-wide default domain, or a dedicated one of the user's), or by
//! the program ([`ReclaimMode::Manual`]: `reclaim()`, `Retired::wait`, a poll of a
//! `Retired` future).
//!
//! A pass, in order:
//! 1. walks the maps registered with the domain (every map cleared at least once),
//!    releasing the generations their clears handed off (building each map's next
//!    spare): every pass a program runs, and the background thread's at a pace that
//!    keeps visits to idle maps under 1% of its time (`MAP_WALK_DUTY`);
//!    then runs the jobs: tears retired tables down, destroying the values whose last
//!    reference was the table's, at once (no guard can reach a retired table);
//! 2. starts the grace period of the values doomed since the last pass (an epoch
//!    deferral that only moves the batch to the ripe stack) and destroys the
//!    batches whose grace period is over (`doomed.rs`);
//! 3. frees the homes of dropped maps whose last value is gone (`home.rs`);
//! 4. runs the passes of manual domains it adopted (below);
//! 5. returns memory to the OS after a large pass (`trim.rs`) and wakes waiters.
//!
//! No producer touches the domain after its push (a pushed value may be destroyed
//! by the very next pass, and with it the last reference that kept the domain
//! alive), so there is no "closed" flag to check after pushing. Instead a manual
//! domain whose last user (map or `Reclaimer` handle) is gone runs its remaining
//! work on that user's thread, and if values of it are still held (by handles or
//! C), it is *adopted* by the process-wide domain, whose thread finishes it.

mod help;

pub(crate) use help::UserCodeUnderLock;

use std::ptr::NonNull;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::doom_ring::{BACKGROUND_RING_SLOTS, DoomRing, MANUAL_RING_SLOTS};
use super::doomed::{CellHead, Doomed, DoomedBatch, DoomedList};
use super::home::{Home, HomeRef};
use super::jobs::{JobList, JobNode};
use super::pace::{MAX_PARK, Park, WalkPace, busy_rings};
use super::report::DropOutcome;
use super::stack::Stack;
use super::stripe::ThreadStripe;
use super::time_slice;
use super::trim;
use crate::sync::{
    Arc, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, COUNTER_STRIPES, Condvar, Mutex,
    MutexGuard, Ordering, PACED_MAP_WALKS, ProcessWide, SHARED_STATICS, WeakableArc, epoch, thread,
    thread_local, timed_wait,
};

/// Who runs a domain's passes.
///
/// ```
/// use atomic_map::{AtomicMap, Builder, ReclaimMode};
///
/// let background: AtomicMap<u8, u8> = AtomicMap::new();
/// assert_eq!(background.reclaim_mode(), ReclaimMode::Background);
/// let manual: AtomicMap<u8, u8> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
/// manual.insert(1, 1);
/// let retired = manual.clear_async();
/// manual.reclaim(); // a manual map is reclaimed when the program says so
/// assert!(retired.is_reclaimed());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReclaimMode {
    /// A background thread (named `atomic-map-reclaim`) runs the passes: the
    /// process-wide one, shared by every map built with this mode (started with the
    /// first such map), or a dedicated [`Reclaimer`](crate::Reclaimer)'s. The default.
    #[default]
    Background,
    /// No thread: passes run when the program calls
    /// [`AtomicMap::reclaim`](crate::AtomicMap::reclaim) or
    /// [`Reclaimer::reclaim`](crate::Reclaimer::reclaim), or waits on (or polls) a
    /// [`Retired`](crate::Retired) ticket. Removed and replaced values wait for a
    /// grace period, which one pass ends only if no other thread is pinned: call it
    /// periodically.
    /// Dropping the last map (and handle) of a manual domain runs its remaining work
    /// on the dropping thread; values still held after that (by handles or C) are
    /// destroyed by the process-wide reclaimer thread.
    Manual,
}

/// What a pass does for each map of its domain: release the generation the map's
/// last clear handed off and build the map's next spare (`standby.rs`).
pub(crate) trait MapService: Send + Sync {
    fn service(&self) -> Serviced;
}

/// What [`MapService::service`] found.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serviced {
    /// Nothing parked: a look at the map's slot, no more.
    Idle,
    /// Released what the map's clears handed off.
    Released,
    /// Left what the map's clears handed off parked for a later walk: a writer
    /// held one of the map's shard locks throughout (`standby.rs`). Paced as a walk
    /// that released (the pace of map walks stays short), counted in
    /// `PassState::deferred_maps` until a walk releases them.
    Deferred,
    /// The map is gone: the registry lets go of it.
    Gone,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PassReport {
    /// Published generations torn down.
    pub(crate) torn_down: usize,
    /// Jobs run, values destroyed, homes freed: 0 for an idle pass.
    pub(crate) work: usize,
    /// Doomed values taken off the stripes' rings, and from how many rings (the
    /// pace of the background thread follows them: `Park::for_values`).
    pub(crate) values_taken: usize,
    pub(crate) rings_taken: usize,
}

/// What a pass did with doomed values (`Domain::reclaim_values`).
#[derive(Default)]
struct ValuesReport {
    /// Taken off the stripes' rings, into a batch in its grace period.
    taken: usize,
    /// Rings that had values (each is one thread's: `stripe.rs`).
    rings: usize,
    destroyed: usize,
    /// Destroyed values of maps that return memory to the OS (`trim.rs`).
    trim: usize,
}

/// Values a pass destroys between two takes of the stripes' rings and lists. A ring
/// holds `BACKGROUND_RING_SLOTS` (32 Ki) values and a full one spills onto its
/// stripe's list, whose cells cost the pass a cross-core miss each (it follows
/// their links): about 10 M/s, fewer than one thread upserting dooms (15 M/s
/// here). A pass that took a long list (its thread kept off the core for a few
/// milliseconds) destroyed it for longer than a ring lasts, the ring spilled again,
/// and the garbage grew without bound: to 1–11 M values within 3 s in about one run
/// in ten of a one-thread upsert loop (`docs/BENCHMARKS.md`, "History", "A
/// reclaimer that keeps pace"). Taking the rings every 4,096 destroyed values (at
/// most about 0.4 ms of list cells) keeps them from spilling while a list is worked
/// off.
const RELIEF_EVERY: usize = 4096;

/// The stack on which a batch waits once its grace period is over
/// (`Domain::start_value_grace`).
#[derive(Clone, Copy)]
enum Ripe {
    /// `ripe`: any cells, destroyed by a pass.
    Mixed,
    /// `ripe_helped[stripe]`: the cells a help of the thread holding `stripe`'s
    /// claim took from its ring (with a destructor only those of maps built with
    /// `Builder::destructors_on_releasing_threads`), destroyed by a later help of
    /// that stripe's claimant, or a pass.
    Helped(usize),
}

/// The state only a running pass touches.
#[derive(Default)]
struct PassState {
    /// Homes whose owners are gone, waiting for their last value.
    orphans: Vec<HomeRef>,
    /// Manual domains whose users are gone, finished by this domain's passes.
    adopted: Vec<Arc<Domain>>,
    /// The maps of this domain (their standbys).
    maps: Vec<WeakableArc<dyn MapService>>,
    /// When to return memory to the OS.
    trim: trim::TrimPolicy,
    /// When the background thread's passes walk the maps next, and what a visit
    /// to a map with nothing parked costs, as the last such walk measured (see
    /// `MAP_WALK_DUTY`).
    next_walk: Option<Instant>,
    walk_pace: WalkPace,
    /// Maps whose last walk left retired generations parked (`Serviced::Deferred`:
    /// a writer held a shard lock through the quiesce): until a walk releases them,
    /// the domain is not idle, so that a `flush` does not report them destroyed.
    deferred_maps: usize,
    /// An empty batch, with the largest array of cells (up to `SPARE_ROOM`) a
    /// pass has emptied since: the next pass's batch (`reclaim_values`). A new
    /// array per pass, grown cell by cell, was 1.4% of the 1-thread Exchange
    /// mix's instructions.
    spare: DoomedBatch,
}

/// The largest array of doomed cells a domain keeps between passes: 16,384 cells
/// (256 KiB), more than a pass takes under a writer's steady load; the array of
/// a larger burst is freed with its batch.
const SPARE_ROOM: usize = 1 << 14;

/// Whether a pass walks the registered maps (releasing what their clears handed
/// off, and letting go of dropped ones).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Every pass a program runs or waits for (manual mode, `reclaim`, waits).
    Always,
    /// The background thread's own passes: at most one part in `MAP_WALK_DUTY` of
    /// the thread's time, unless a thread waits or polls (`paced_walk_due`).
    Paced,
}

/// The users of a domain, under a lock (see `Domain::remove_user`).
#[derive(Default)]
struct Users {
    count: usize,
    /// Set when the last user is gone (`count` only grows from a user it has).
    unused: bool,
}

/// One reclaimer (see the module docs).
pub(crate) struct Domain {
    mode: ReclaimMode,
    jobs: JobList,
    /// Values whose last reference is gone, waiting for a grace period (see
    /// `doomed.rs`): a ring per claimed stripe, allocated by its claimant's first
    /// doom here (`doom_ring.rs`), and a list per stripe for the rest; and batches
    /// past their grace period, waiting to be destroyed.
    rings: [AtomicPtr<DoomRing<Doomed>>; COUNTER_STRIPES],
    doomed: [DoomedList; COUNTER_STRIPES],
    ripe: Stack<DoomedBatch>,
    /// Ripe batches deferred by releasing threads' helps (`help`), one stack per
    /// stripe: destroyed by the next help of the thread holding that stripe's
    /// claim (so a help destroys only what its own thread released), or by a
    /// pass. Cells whose destruction runs a destructor only of maps built with
    /// `Builder::destructors_on_releasing_threads`.
    ripe_helped: [Stack<DoomedBatch>; COUNTER_STRIPES],
    /// Values destroyed by releasing threads' helps (`help.rs`): a count for
    /// tests and figures.
    helped: AtomicU64,
    /// Helps that passed `DoomRing::help_runs` (`help.rs`): a count for tests and
    /// figures.
    helps_run: AtomicU64,
    /// Batches deferred to the epoch and not yet moved to `ripe` (for `flush`).
    in_grace: AtomicUsize,
    /// Homes whose last owner is gone, and manual domains handed over to this one.
    orphans: Stack<HomeRef>,
    adoptions: Stack<Arc<Domain>>,
    /// Releases waiting for their grace period to begin (`after_grace`), counted in
    /// `in_grace` from their push: the next pass starts it for all of them at once.
    grace_queue: Stack<Box<dyn FnOnce() + Send>>,
    /// Maps registered since the last pass, and how many are registered in all.
    new_maps: Stack<WeakableArc<dyn MapService>>,
    registered: AtomicUsize,
    pass: Mutex<PassState>,
    /// Passes completed, for bounded waits.
    passes: AtomicU64,
    /// Threads in `wait_until`: passes notify them even when idle (and the
    /// background thread's walk the maps at once).
    waiters: AtomicUsize,
    /// Set by a poll of a `Retired` future (`nudge`): the background thread's next
    /// pass walks the maps, whatever its pace.
    walk_requested: AtomicBool,
    /// Maps and `Reclaimer` handles using the domain, and whether the last is gone
    /// (see `remove_user`).
    users: Mutex<Users>,
    /// Homes not yet freed.
    homes: AtomicUsize,
    /// The background thread, to wake it from waiters (never from a clear).
    worker: Mutex<Option<thread::JoinHandle<()>>>,
    /// Waiters sleep here; a pass that did something notifies.
    done_lock: Mutex<()>,
    done_cv: Condvar,
}

thread_local! {
    /// The domains whose passes are running on this thread, innermost last: a
    /// destructor run by one of them that waits for any of them would wait for
    /// itself (an adopted manual domain's pass runs inside the process-wide
    /// domain's, and a destructor may run a pass of another domain).
    // Not `const { .. }`: loom's `thread_local!` does not accept it.
    #[allow(clippy::missing_const_for_thread_local)]
    static IN_PASS: PassStack = PassStack::new();
    /// Whether this thread is a background reclaimer's (`run_background`): its
    /// passes, and those of the manual domains it adopted, serve many maps, so they
    /// run teardowns in slices (`generation.rs`).
    #[allow(clippy::missing_const_for_thread_local)]
    static BACKGROUND_THREAD: std::cell::Cell<bool> = std::cell::Cell::new(false);
}

/// Whether the calling thread is a background reclaimer's (see `BACKGROUND_THREAD`).
pub(crate) fn on_background_thread() -> bool {
    BACKGROUND_THREAD.with(std::cell::Cell::get)
}

/// How many outer passes [`PassStack`] names besides the innermost: a deeper one
/// is not found by `PassMark::inside` (four nested passes are not seen in
/// practice: the process-wide domain's, an adopted domain's inside it, and one
/// run from a destructor there).
const OUTER_PASSES: usize = 3;

/// The passes running on one thread: the innermost, and the outer ones
/// (outermost first) up to `OUTER_PASSES`.
struct PassStack {
    innermost: std::cell::Cell<*const Domain>,
    depth: std::cell::Cell<usize>,
    outer: [std::cell::Cell<*const Domain>; OUTER_PASSES],
}

impl PassStack {
    fn new() -> Self {
        PassStack {
            innermost: std::cell::Cell::new(std::ptr::null()),
            depth: std::cell::Cell::new(0),
            outer: std::array::from_fn(|_| std::cell::Cell::new(std::ptr::null())),
        }
    }
}

/// Marks this thread as running a pass of one domain until dropped (restoring the
/// outer mark, for a pass run inside another domain's: an adopted domain's, or
/// one from a destructor).
struct PassMark(*const Domain);

impl PassMark {
    fn enter(this: &Domain) -> Self {
        IN_PASS.with(|p| {
            let depth = p.depth.get();
            let outer = p.innermost.replace(this as *const Domain);
            // The mark entered before this one becomes the outer one at its level.
            if let Some(slot) = depth.checked_sub(1).and_then(|level| p.outer.get(level)) {
                slot.set(outer);
            }
            p.depth.set(depth + 1);
            PassMark(outer)
        })
    }

    /// Whether this thread is inside a pass of `this`: the innermost, or one it
    /// runs inside (up to `OUTER_PASSES` of them).
    fn inside(this: &Domain) -> bool {
        IN_PASS.with(|p| {
            let named = p.depth.get().saturating_sub(1).min(OUTER_PASSES);
            std::ptr::eq(p.innermost.get(), this)
                || p.outer[..named].iter().any(|d| std::ptr::eq(d.get(), this))
        })
    }

    /// Whether this thread is inside a pass (or a help) of any domain.
    fn inside_any() -> bool {
        IN_PASS.with(|p| !p.innermost.get().is_null())
    }
}

impl Drop for PassMark {
    fn drop(&mut self) {
        IN_PASS.with(|p| {
            p.innermost.set(self.0);
            p.depth.set(p.depth.get() - 1);
        });
    }
}

/// The process-wide default domain, started with the first map that uses it.
static PROCESS_WIDE: ProcessWide<Domain> = ProcessWide::new();

impl Domain {
    fn new(mode: ReclaimMode) -> Self {
        Domain {
            mode,
            jobs: JobList::new(),
            rings: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            doomed: std::array::from_fn(|_| DoomedList::new()),
            ripe: Stack::new(),
            ripe_helped: std::array::from_fn(|_| Stack::new()),
            helped: AtomicU64::new(0),
            helps_run: AtomicU64::new(0),
            in_grace: AtomicUsize::new(0),
            orphans: Stack::new(),
            adoptions: Stack::new(),
            grace_queue: Stack::new(),
            new_maps: Stack::new(),
            registered: AtomicUsize::new(0),
            pass: Mutex::new(PassState::default()),
            passes: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            walk_requested: AtomicBool::new(false),
            users: Mutex::new(Users::default()),
            homes: AtomicUsize::new(0),
            worker: Mutex::new(None),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
        }
    }

    /// A domain with no thread: passes run when the program asks.
    pub(crate) fn manual() -> Arc<Self> {
        Arc::new(Domain::new(ReclaimMode::Manual))
    }

    /// A domain with a background thread of its own. The thread exits once the
    /// domain has no user and no home left.
    ///
    /// # Panics
    /// If the thread cannot be spawned.
    pub(crate) fn background() -> Arc<Self> {
        let domain = Arc::new(Domain::new(ReclaimMode::Background));
        let for_thread = Arc::clone(&domain);
        let handle = thread::Builder::new()
            .name("atomic-map-reclaim".into())
            .spawn(move || Domain::run_background(&for_thread))
            .expect("atomic-map: failed to spawn the reclaimer thread");
        *lock(&domain.worker) = Some(handle);
        domain
    }

    /// The process-wide domain, started on first use. It counts one permanent user
    /// (the process), so its thread never exits. (Under loom, where statics cannot
    /// outlive a model's execution, each call gives a new background domain.)
    pub(crate) fn process_wide() -> Arc<Self> {
        PROCESS_WIDE.get_or_init(|| {
            let domain = Domain::background();
            if SHARED_STATICS {
                Domain::add_user(&domain);
            }
            domain
        })
    }

    pub(crate) fn mode(&self) -> ReclaimMode {
        self.mode
    }

    /// Passes completed so far (a racy reading): a count to wait on, not a
    /// publication. A waiter that counts a pass sees what the pass did through the
    /// pass lock, which `idle` takes before its answer (see the increment in `pass`).
    pub(crate) fn passes(&self) -> u64 {
        // Relaxed: the increments are totally ordered (one counter), so a count read
        // after `start` belongs to a pass that began after it; what that pass did
        // is published by the pass lock (the increment in `pass`).
        self.passes.load(Ordering::Relaxed)
    }

    /// A map or handle starts using the domain.
    pub(crate) fn add_user(this: &Arc<Self>) {
        // Under the users lock (see `remove_user`); the caller holds an `Arc` on the
        // domain.
        lock(&this.users).count += 1;
    }

    /// A map or handle stops using the domain. The last user of a manual domain
    /// runs its remaining work here, and hands what is still held to the
    /// process-wide domain; the last user of a dedicated background domain wakes
    /// its thread so that it can finish and exit.
    pub(crate) fn remove_user(this: &Arc<Self>) {
        // A lock, not an atomic count: every user's work (its pushes) comes before
        // its removal under this lock, so the last user, which decides under it,
        // sees all of it, and so do the worker's exit check and `join_if_unused`,
        // which read `unused` under it (scenario 18). A cold path: a map or handle
        // dropped.
        {
            let mut users = lock(&this.users);
            users.count -= 1;
            if users.count != 0 {
                return;
            }
            users.unused = true;
        }
        match this.mode {
            ReclaimMode::Manual => {
                if PassMark::inside(this) {
                    // Dropped from a destructor that a pass of this same domain is
                    // running: the rest goes to the process-wide domain.
                    Domain::adopt(&Domain::process_wide(), Arc::clone(this));
                    return;
                }
                for _ in 0..4 {
                    Domain::pass(this, true);
                }
                if !this.finished() {
                    Domain::adopt(&Domain::process_wide(), Arc::clone(this));
                }
            }
            ReclaimMode::Background => {
                // The thread exits once a walk has let go of every map.
                this.request_walk();
                this.wake();
            }
        }
    }

    /// A home was created in this domain.
    pub(crate) fn home_created(this: &Arc<Self>) {
        // Relaxed: read by the worker's exit check, which runs under the pass lock
        // after the home is freed (also under it).
        this.homes.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether nothing of this domain is left: no home, no queued work.
    fn finished(&self) -> bool {
        self.homes.load(Ordering::Relaxed) == 0
            && self.registered.load(Ordering::Relaxed) == 0
            // Acquire: as in `idle`: a release that left its grace period has
            // queued what it queues (a teardown) by the time the count drops.
            && self.in_grace.load(Ordering::Acquire) == 0
            && self.jobs.is_empty()
            && self.doomed_empty()
            && self.ripe.is_empty()
            && self.ripe_helped.iter().all(Stack::is_empty)
            && self.orphans.is_empty()
            && self.adoptions.is_empty()
    }

    /// Hands a job over (a retired table). O(1), no allocation: a push.
    ///
    /// A raw pointer, not `&self`: the pushed job may be run by the very next pass,
    /// on another thread, and with it the last reference keeping the domain alive
    /// may go while this call is still returning. A `&Domain` argument would then
    /// refer to freed memory for the rest of the call (undefined behaviour under the
    /// borrow models Miri checks, as for `Arc::drop`, rust-lang/rust#55005); only
    /// the list's atomic head is referenced across the push.
    ///
    /// # Safety
    /// `this` points at a live domain when the call begins (the caller holds an
    /// owner of a home of it, which holds an `Arc` on it).
    pub(crate) unsafe fn submit<T>(this: *const Domain, node: Box<JobNode<T>>) {
        // SAFETY: live at the call (the contract); only the interior-mutable job
        // list (an atomic head) is borrowed across the push.
        let jobs = unsafe { &(*this).jobs };
        jobs.push(node);
    }

    /// Takes a value whose last reference is gone (see `doomed.rs`), released by
    /// a thread of `stripe`: onto the stripe's ring if the thread holds the stripe's
    /// claim and the ring has room (no locked instruction), else onto the stripe's
    /// list. O(1); the ring's first use here allocates it. A raw pointer, not
    /// `&self`, for the reason given at `submit`.
    ///
    /// # Safety
    /// `this` points at a live domain when the call begins (the cell's home holds an
    /// `Arc` on it); `stripe` is the calling thread's (`thread_stripe`); `cell` as
    /// for `DoomedList::push`; `home` is the cell's own (a ring carries it to the
    /// pass: `Doomed`).
    #[inline]
    pub(crate) unsafe fn doom(
        this: *const Domain,
        cell: NonNull<CellHead>,
        home: HomeRef,
        stripe: ThreadStripe,
    ) {
        if stripe.claimed {
            // SAFETY: live at the call (the contract); only the atomic slot is
            // borrowed, before the push.
            let slot = unsafe { &(*this).rings[stripe.index] };
            // Relaxed: the claimant is the only thread that stores a ring here, and
            // it reads its own store (or its predecessor's, ordered before by the
            // claim, `stripe.rs`).
            let ring = slot.load(Ordering::Relaxed);
            if ring.is_null() {
                // A tail call, so that this inlined path saves no register.
                // SAFETY: passed on (the contract).
                return unsafe { Self::doom_in_first_ring(this, cell, home, stripe) };
            }
            // Before the push, while the cell (not handed over yet) keeps its home,
            // and the home the domain, alive.
            // SAFETY: the ring lives as long as the domain, live at the call; this
            // thread is its producer (it holds the stripe's claim).
            if unsafe { DoomRing::help_due(ring) } {
                // SAFETY: `cell` is not handed over yet and its home is `home`.
                unsafe { Self::help_before_doom(home, stripe) };
            }
            // SAFETY: the caller's contract for `cell`. (If the ring is full, the
            // list's push below replaces the tag with its tagged link.)
            unsafe { DoomedList::tag(cell) };
            // SAFETY: the ring lives as long as the domain (freed in its `Drop`),
            // which is live at the call; this thread holds the stripe's claim, so it
            // is the ring's only producer; the cell is handed over (the contract).
            if unsafe { DoomRing::push(ring, Doomed { cell, home }) } {
                return;
            }
        }
        // SAFETY: live at the call (the contract); only the list's atomic head is
        // borrowed across the push (`DoomedList::head`'s borrow of the list ends
        // before it).
        let head = unsafe { (*this).doomed[stripe.index].head() };
        // SAFETY: the caller's contract for `cell`.
        unsafe { DoomedList::push(head, cell) }
    }

    /// Keeps `emptied` (a destroyed batch's array) as the next batch if its room
    /// is the largest yet, up to `SPARE_ROOM`.
    fn keep_spare(spare: &mut DoomedBatch, emptied: DoomedBatch) {
        if emptied.room() > spare.room() && emptied.room() <= SPARE_ROOM {
            *spare = emptied;
        }
    }

    /// [`doom`](Self::doom) for the stripe's claimant's first doom in this domain:
    /// makes the stripe's ring, then dooms into it.
    ///
    /// # Safety
    /// As for `doom`, with `stripe` claimed.
    #[cold]
    #[inline(never)]
    unsafe fn doom_in_first_ring(
        this: *const Domain,
        cell: NonNull<CellHead>,
        home: HomeRef,
        stripe: ThreadStripe,
    ) {
        // SAFETY: live at the call (the contract); only the atomic slot and the mode
        // are borrowed, before the doom.
        let (slot, mode) = unsafe { (&(*this).rings[stripe.index], (*this).mode) };
        Self::first_ring(slot, mode);
        // SAFETY: passed on (the contract); the ring is made now.
        unsafe { Self::doom(this, cell, home, stripe) }
    }

    /// Makes and publishes the ring of the stripe whose slot is `slot`, on its
    /// claimant's first doom in this domain.
    fn first_ring(slot: &AtomicPtr<DoomRing<Doomed>>, mode: ReclaimMode) {
        let slots = match mode {
            ReclaimMode::Background => BACKGROUND_RING_SLOTS,
            ReclaimMode::Manual => MANUAL_RING_SLOTS,
        };
        let ring = Box::into_raw(Box::new(DoomRing::new(slots)));
        // SeqCst (Release would do: it publishes the ring's initialization to the
        // pass's load in `ring`). Once per ring, and no model here can tell the two
        // apart, so the stronger one.
        slot.store(ring, Ordering::SeqCst);
    }

    /// The stripe's ring, if its claimant has doomed a value here.
    fn ring(&self, stripe: usize) -> Option<&DoomRing<Doomed>> {
        // SeqCst: pairs with the store in `first_ring` (Acquire would do; see there).
        // A plain load on x86-64.
        let ring = self.rings[stripe].load(Ordering::SeqCst);
        // SAFETY: a ring, once stored, lives until the domain is dropped (`Drop`).
        (!ring.is_null()).then(|| unsafe { &*ring })
    }

    /// Whether no doomed value waits for its grace period (a racy reading).
    fn doomed_empty(&self) -> bool {
        self.doomed.iter().all(DoomedList::is_empty)
            && (0..COUNTER_STRIPES).all(|i| self.ring(i).is_none_or(DoomRing::is_empty))
    }

    /// Registers a map (its standby) for the passes' service. One push.
    pub(crate) fn register(&self, map: WeakableArc<dyn MapService>) {
        // Relaxed: a count for `finished`, which the worker reads after passes.
        self.registered.fetch_add(1, Ordering::Relaxed);
        self.new_maps.push(map);
    }

    /// Takes a home whose last owner is gone.
    pub(crate) fn orphan(this: &Arc<Self>, home: HomeRef) {
        this.orphans.push(home);
    }

    /// Takes over the remaining work of a manual domain whose users are gone. The
    /// adoption counts as a user of `this` until the adopted domain is finished.
    fn adopt(this: &Arc<Self>, adopted: Arc<Domain>) {
        Domain::add_user(this);
        this.adoptions.push(adopted);
    }

    fn run_background(this: &Arc<Self>) {
        BACKGROUND_THREAD.with(|b| b.set(true));
        // Here, not on a reader's first pin: registering for `membarrier` waits
        // for the kernel (about 10 ms), and this thread holds no lock yet. Until it
        // returns, every pin keeps its full fence. Once per process; later
        // background threads find it done.
        epoch::enable_light_pins();
        let mut park = Park::default();
        loop {
            let report = Domain::run_pass(this, false, Walk::Paced);
            let worked = report.is_some_and(|r| r.work > 0);
            // Told of every pass, also of those after which the thread does not
            // park, so that the rate's interval starts at the last pass.
            let (taken, rings) = report.map_or((0, 0), |r| (r.values_taken, r.rings_taken));
            let busy = park.for_values(taken, rings, busy_rings(), Instant::now());
            // The flag under the users lock, then what is queued: once the flag is
            // set, the check sees every user's work (see `remove_user`). (A thread
            // spawned before its domain's first user arrives sees `unused` false.)
            let unused = lock(&this.users).unused;
            if unused && this.finished() {
                return;
            }
            if report.is_some() && !this.jobs.is_empty() {
                // Jobs left for the next pass (the rest of a large teardown, queued
                // behind the others): no park. (Not when another thread's pass held
                // the lock: that pass runs them, and this thread would spin.)
                park.after_pass(true, false);
                continue;
            }
            // A large teardown asked for the shortest slice (`RetiredTable::run`);
            // with no job left and the linger over, the thread goes back to its
            // default one (the module says why).
            time_slice::restore_default_slice();
            // Relaxed: a hint for the pace; what the grace period releases is
            // ordered by the job list and the ripe stack, not by this count.
            let in_grace = this.in_grace.load(Ordering::Relaxed) > 0;
            let pace = park.after_pass(worked, in_grace);
            thread::park_timeout(busy.map_or(pace, |busy| busy.min(pace)));
        }
    }

    /// Runs one pass on the calling thread (see the module docs). With `wait`,
    /// waits for a pass running elsewhere to finish first; without, returns `None`
    /// if one is running. Also `None` from inside a pass of this domain (a
    /// destructor calling back).
    pub(crate) fn pass(this: &Arc<Self>, wait: bool) -> Option<PassReport> {
        Domain::run_pass(this, wait, Walk::Always)
    }

    fn run_pass(this: &Arc<Self>, wait: bool, walk: Walk) -> Option<PassReport> {
        if PassMark::inside(this) {
            return None;
        }
        let mut state = if wait {
            lock(&this.pass)
        } else {
            match this.pass.try_lock() {
                Ok(state) => state,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        };
        let _mark = PassMark::enter(this);
        let mut work = 0;
        let mut trim_count = 0;
        let mut torn_down = 0;
        // The maps first: releasing a handed-off generation queues its teardown,
        // which the jobs below run in this same pass.
        if walk == Walk::Always || Self::paced_walk_due(this, &state) {
            let began = PACED_MAP_WALKS.then(Instant::now);
            let (gone, released) = Self::service_maps(this, &mut state);
            work += gone;
            if let Some(began) = began {
                let (maps, idle) = (state.maps.len(), !released && gone == 0);
                let pace = state.walk_pace.after_walk(maps, began.elapsed(), idle);
                state.next_walk = Some(Instant::now() + pace);
            }
        }
        // The releases the walk just queued, and those of dropped maps: when no
        // other thread is pinned, they run here, and the teardowns they queue run
        // in the jobs below.
        work += Self::start_grace_periods(this);
        for _ in 0..4 {
            let (jobs, report) = this.jobs.run_all();
            if jobs == 0 {
                break;
            }
            work += jobs;
            trim_count += report.trim;
            torn_down += report.torn_down;
        }
        let values = Self::reclaim_values(this, &mut state.spare);
        let (values_taken, rings_taken) = (values.taken, values.rings);
        work += values.destroyed;
        trim_count += values.trim;
        work += Self::free_orphans(this, &mut state);
        work += Self::run_adopted(this, &mut state);
        if state.trim.after_pass(trim_count, Instant::now()) {
            trim::release_free_memory();
        }
        // Relaxed: what this pass did (the batches it put in their grace period, the
        // `in_grace` increments) is published by the release of the pass lock just
        // below, which `idle` takes before it answers; `flush` only counts. (A
        // Release/Acquire pair here once did that job; since `idle` looks again
        // under the lock, loom scenario 13 passed with it weakened, and it fails
        // without that second look: `idle-skips-its-look-under-the-lock.patch`.)
        this.passes.fetch_add(1, Ordering::Relaxed);
        drop(state);
        if work > 0 || this.waiters.load(Ordering::Relaxed) > 0 {
            let _g = lock(&this.done_lock);
            this.done_cv.notify_all();
        }
        Some(PassReport {
            torn_down,
            work,
            values_taken,
            rings_taken,
        })
    }

    /// Runs `release` once every epoch guard pinned now has been dropped (on
    /// whichever thread collects then), counted in `in_grace` until it has run, so
    /// that a `flush` waits for it: how a map gives up the slot's reference to a
    /// generation that pinned readers may still be in
    /// (`generation::release_after_grace`). Here it is only queued; the next pass
    /// starts the grace period of everything queued with one deferral
    /// (`start_grace_periods`). Starting it later than the caller's moment is
    /// sound (the caller's generation was unreachable for new readers already), and
    /// it spares the caller (a map's `Drop`, a pass releasing many hand-offs) a
    /// flush and two collections each: about 5,900 of the 6,400 instructions a
    /// map's drop took (docs/BENCHMARKS.md, "History", "A map's drop without its
    /// own grace period").
    pub(crate) fn after_grace(this: &Arc<Self>, release: impl FnOnce() + Send + 'static) {
        // Relaxed: as in `start_value_grace` (published by the pass lock's release,
        // or, from a map's drop, seen by that thread's own later `flush`); the
        // queue's push publishes the release itself.
        this.in_grace.fetch_add(1, Ordering::Relaxed);
        this.grace_queue.push(Box::new(release));
    }

    /// Starts the grace period of the releases queued by `after_grace`: one
    /// deferral for all of them, flushed to the global queue at once (left in this
    /// thread's private bag, it could wait there for as long as the thread stays
    /// idle), then two more collections from fresh pins: with no other thread
    /// pinned, the epoch advances twice and the releases run here, now. Each
    /// collection runs at most what crossbeam runs per collection (8 bags of 64
    /// closures). Returns how many releases it queued.
    fn start_grace_periods(this: &Arc<Self>) -> usize {
        let releases = this.grace_queue.take_all();
        let count = releases.len();
        if count == 0 {
            return 0;
        }
        let domain = Arc::clone(this);
        {
            let guard = epoch::pin();
            guard.defer(move || {
                for release in releases {
                    release();
                }
                // Release: as in `start_value_grace`: a flush that sees the count drop
                // sees what the releases queued (teardowns on the job list).
                domain.in_grace.fetch_sub(count, Ordering::Release);
            });
            guard.flush();
        }
        for _ in 0..2 {
            epoch::pin().flush();
        }
        count
    }

    /// Starts the grace period of the values doomed so far, and destroys the
    /// batches whose grace period is over (`doomed.rs`), this pass's own batch
    /// included when no thread pinned before it is still pinned.
    /// `spare` is an empty batch to take the cells into, and gets back the
    /// largest array this pass empties.
    fn reclaim_values(this: &Arc<Self>, spare: &mut DoomedBatch) -> ValuesReport {
        let mut report = ValuesReport::default();
        let mut batch = std::mem::take(spare);
        debug_assert!(batch.is_empty());
        let (taken, rings) = Self::take_doomed(this, &mut batch);
        (report.taken, report.rings) = (taken, rings);
        Self::start_value_grace(this, batch, Ripe::Mixed);
        // One more collection: with the one of the deferral above, the epoch
        // advances twice if no thread pinned before the deferral is still pinned,
        // and the batch just deferred (and any left by earlier passes) is then ripe
        // (on the ripe stack) below. With one collection per pass, as before, a
        // batch waited for the next pass (a park later: 1 ms under load), and the
        // cells doomed meanwhile, 30,000–50,000 for one thread upserting 10,000
        // keys, were that many lines the writer's cache no longer held when it
        // reused them (`docs/BENCHMARKS.md`, "History", "A reclaimer that keeps
        // pace"; `tests/one_reclaim.rs` fails without it).
        epoch::pin().flush();
        let mut tally = Tally::default();
        // Values doomed while the ripe batches are destroyed: see `RELIEF_EVERY`.
        let mut relief = DoomedBatch::default();
        let mut since_relief = 0;
        let helped = this.ripe_helped.iter().flat_map(Stack::take_all);
        for ripe in this.ripe.take_all().into_iter().chain(helped) {
            let emptied = ripe.destroy_each(|outcome, home, count| {
                tally.add(home, outcome, count);
                since_relief += count;
                if since_relief >= RELIEF_EVERY {
                    since_relief = 0;
                    report.taken += Self::take_doomed(this, &mut relief).0;
                }
            });
            Self::keep_spare(spare, emptied);
        }
        tally.flush();
        Self::start_value_grace(this, relief, Ripe::Mixed);
        report.destroyed = tally.destroyed;
        report.trim = tally.trim_count;
        report
    }

    /// Moves what the stripes' rings and lists hold into `batch`; returns the number
    /// of ring entries moved (a list's cells are not counted: counting them would
    /// walk them) and of the rings that had any.
    fn take_doomed(this: &Domain, batch: &mut DoomedBatch) -> (usize, usize) {
        let (before, mut rings) = (batch.cells().len(), 0);
        for stripe in 0..COUNTER_STRIPES {
            if let Some(ring) = this.ring(stripe) {
                let at = batch.cells().len();
                ring.take_into(batch.cells());
                rings += usize::from(batch.cells().len() > at);
            }
            if let Some(chain) = this.doomed[stripe].take_all() {
                batch.add_chain(chain);
            }
        }
        (batch.cells().len() - before, rings)
    }

    /// Starts the grace period of `batch` (nothing if it is empty): its deferral
    /// goes to the global queue, where any thread's collection runs it once every
    /// guard pinned before this call is gone.
    /// `to` names the stack on which the ripe batch waits: `Helped` only for a
    /// help's batch (which holds cells with a destructor only of maps whose
    /// releasing threads run them).
    fn start_value_grace(this: &Arc<Self>, batch: DoomedBatch, to: Ripe) {
        if batch.is_empty() {
            return;
        }
        let domain = Arc::clone(this);
        // Relaxed: published by the release of the pass lock at the end of this
        // pass, which `idle` takes before it answers.
        this.in_grace.fetch_add(1, Ordering::Relaxed);
        {
            let guard = epoch::pin();
            // The closure only moves the batch to the ripe stack; it runs on
            // whichever thread collects, after every guard pinned before this call
            // is dropped.
            guard.defer(move || {
                match to {
                    Ripe::Mixed => domain.ripe.push(batch),
                    Ripe::Helped(stripe) => domain.ripe_helped[stripe].push(batch),
                }
                // Release: pairs with the Acquire load in `idle`: a flush that sees
                // the count drop sees the batch on the ripe stack.
                domain.in_grace.fetch_sub(1, Ordering::Release);
            });
            // Push this thread's bag to the global queue, where any thread's
            // collection (this pass's next ones included) runs it.
            guard.flush();
        }
    }

    /// Whether a background pass walks the maps now: its pace allows it, or a
    /// thread waits (`wait_until`) or has polled (`nudge`). Always under loom,
    /// whose executions must not depend on the clock (`PACED_MAP_WALKS`).
    fn paced_walk_due(this: &Self, state: &PassState) -> bool {
        !PACED_MAP_WALKS
            // Relaxed: hints. A waiter re-checks its condition after each pass, and
            // what a walk releases is ordered by the standbys' own Release/Acquire,
            // not by these.
            || this.waiters.load(Ordering::Relaxed) > 0
            // SeqCst (the swap): pairs with `request_walk`'s store (Acquire would
            // do; see there). The load before it is a Relaxed look, so that passes
            // write nothing when no walk was asked for.
            || (this.walk_requested.load(Ordering::Relaxed)
                && this.walk_requested.swap(false, Ordering::SeqCst))
            || state.next_walk.is_none_or(|at| Instant::now() >= at)
    }

    /// Services every registered map; lets go of the dropped ones.
    /// Returns how many maps are gone, and whether any had something released.
    fn service_maps(this: &Arc<Self>, state: &mut PassState) -> (usize, bool) {
        state.maps.extend(this.new_maps.take_all());
        let before = state.maps.len();
        let mut released = false;
        let mut deferred = 0;
        state.maps.retain(|map| match map.service() {
            Serviced::Idle => true,
            Serviced::Released => {
                released = true;
                true
            }
            Serviced::Deferred => {
                released = true;
                deferred += 1;
                true
            }
            Serviced::Gone => false,
        });
        state.deferred_maps = deferred;
        let gone = before - state.maps.len();
        // Relaxed: see `register`.
        this.registered.fetch_sub(gone, Ordering::Relaxed);
        (gone, released)
    }

    /// Frees the orphaned homes whose last value is gone.
    fn free_orphans(this: &Arc<Self>, state: &mut PassState) -> usize {
        state.orphans.extend(this.orphans.take_all());
        let before = state.orphans.len();
        state.orphans.retain(|&home| {
            if !home.get().drained() {
                return true;
            }
            // Soundness: orphaned (on this list: `HomeOwner::drop` pushes a home onto
            // its own domain's list when its last owner goes) and drained (just
            // checked), freed once (removed from the list here), by a pass of its
            // domain (this one).
            // SAFETY: an orphaned, drained home, freed once by its own domain's pass (above).
            unsafe { Home::free(home) };
            // Relaxed: see `home_created`.
            this.homes.fetch_sub(1, Ordering::Relaxed);
            false
        });
        before - state.orphans.len()
    }

    /// Runs a pass of each adopted manual domain; lets go of the finished ones.
    fn run_adopted(this: &Arc<Self>, state: &mut PassState) -> usize {
        state.adopted.extend(this.adoptions.take_all());
        let mut work = 0;
        let mut i = 0;
        while i < state.adopted.len() {
            work += Domain::pass(&state.adopted[i], true).map_or(0, |r| r.work);
            if state.adopted[i].finished() {
                state.adopted.swap_remove(i);
                Domain::remove_user(this);
            } else {
                i += 1;
            }
        }
        work
    }

    /// Waits for the background thread to exit if the domain has no user left
    /// (`Reclaimer::shutdown`). Not from the thread itself.
    pub(crate) fn join_if_unused(this: &Arc<Self>) {
        // Not from a destructor that a releasing thread's help of this domain
        // runs: the thread cannot exit while that release keeps its cell's home
        // (it returns at once, as it does on the thread itself).
        if PassMark::inside(this) {
            return;
        }
        // Under the users lock (see `remove_user`); the `join` below waits for the
        // thread's exit anyway.
        if this.mode != ReclaimMode::Background || !lock(&this.users).unused {
            return;
        }
        let worker = lock(&this.worker).take();
        if let Some(worker) = worker {
            if worker.thread().id() == thread::current().id() {
                return;
            }
            worker.thread().unpark();
            // A panic there was already reported; the domain's state does not
            // depend on it.
            let _ = worker.join();
        }
    }

    /// Whether nothing released is waiting in this domain or one it adopted: no job
    /// queued, no value doomed, in its grace period or ripe. A racy reading (see
    /// `flush`); `None` if a pass holds the pass lock (ask again later).
    fn idle(this: &Arc<Self>) -> Option<bool> {
        // Acquire: pairs with the Release decrement in `start_value_grace`'s deferred
        // closure, so a batch that left its grace period is seen on `ripe` below.
        let own = || {
            this.in_grace.load(Ordering::Acquire) == 0
                && this.jobs.is_empty()
                && this.doomed_empty()
                && this.ripe.is_empty()
                && this.ripe_helped.iter().all(Stack::is_empty)
                && this.adoptions.is_empty()
        };
        if !own() {
            return Some(false);
        }
        let state = match this.pass.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        // Again under the pass lock: a pass that ran between the look above and the
        // lock may have left work the look could not see, having taken the job
        // chain (the rest of a sliced teardown, queued again at the end of its
        // slice) or the doomed cells (values a destructor doomed). And generations
        // the last walk had to leave parked (`Serviced::Deferred`). The lock is also
        // what publishes each finished pass to this look (the `in_grace` increments
        // of the batches it put in their grace period): `passes` is only counted.
        if !own() || state.deferred_maps > 0 {
            return Some(false);
        }
        let adopted: Vec<Arc<Domain>> = state.adopted.clone();
        drop(state);
        for domain in &adopted {
            if Domain::idle(domain) != Some(true) {
                return Some(false);
            }
        }
        Some(true)
    }

    /// Runs (manual mode) or waits for (background mode) the passes that destroy
    /// everything released before the call: retired generations no one holds any
    /// more and values whose last holder let go, past their grace period, in this
    /// domain and in the manual domains it adopted. Returns whether that was done
    /// within `timeout`; a thread that stays pinned (a `ReadGuard`, a C read
    /// section) holds grace periods up, and then it is not.
    pub(crate) fn flush(this: &Arc<Self>, timeout: Duration) -> bool {
        // Two passes that end after this call: the first may have started before it
        // (and serviced the maps before a hand-off this thread made), the second
        // starts after it. The walk requested first: a background pass that starts
        // after the request walks the maps (whatever its pace), and so does one that
        // takes the request midway; `idle` does not see what is parked in a map, only
        // what a walk took from it.
        this.request_walk();
        let start = this.passes();
        Domain::wait_until(
            this,
            || this.passes() >= start + 2 && Domain::idle(this) == Some(true),
            Some(timeout),
        )
    }

    /// Whether the calling thread is inside a pass of this domain (running one of
    /// its values' destructors): a wait for this domain's work cannot finish there.
    pub(crate) fn in_own_pass(this: &Domain) -> bool {
        PassMark::inside(this)
    }

    /// Wakes the background thread (for a waiter; never from a clear).
    fn wake(&self) {
        if let Some(worker) = lock(&self.worker).as_ref() {
            worker.thread().unpark();
        }
    }

    /// One attempt to make progress for a [`Retired`](crate::Retired) ticket's
    /// poll, without blocking: in manual mode a pass on the calling thread, skipped
    /// if one is running elsewhere (that pass, or a later one, marks the ticket and
    /// wakes its waker); in background mode a wake-up of the thread. Nothing from
    /// inside a pass of this domain (a destructor polling): that pass must return
    /// before another can run.
    pub(crate) fn nudge(this: &Arc<Self>) {
        if PassMark::inside(this) {
            return;
        }
        match this.mode {
            ReclaimMode::Manual => {
                Domain::pass(this, false);
            }
            ReclaimMode::Background => {
                this.request_walk();
                this.wake();
            }
        }
    }

    /// Makes the background thread's next pass walk the maps, whatever its pace:
    /// for a thread that waits on, or polls for, what a walk releases.
    pub(crate) fn request_walk(&self) {
        // SeqCst: Release would do (it pairs with the swap in `paced_walk_due`, so
        // that the walk it triggers starts after, and sees, whatever this thread
        // did before: its hand-off, the registration of its map), but loom walks
        // the maps at every pass, so no model can fail on a weaker ordering here;
        // off the hot path (one store per wait or poll), it takes the one that
        // needs none.
        self.walk_requested.store(true, Ordering::SeqCst);
    }

    /// Waits until `done()` holds or `timeout` passes (`None`: forever). In manual
    /// mode the waiting thread runs the passes itself; in background mode it wakes
    /// the thread. Returns whether `done()` held.
    pub(crate) fn wait_until(
        this: &Arc<Self>,
        done: impl Fn() -> bool,
        timeout: Option<Duration>,
    ) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if done() {
                return true;
            }
            if PassMark::inside(this) {
                // A destructor run by this domain's pass: no pass can finish while
                // it waits, so waiting would never end.
                assert!(
                    timeout.is_some(),
                    "atomic-map: Retired::wait called from a value's destructor run by the same \
                     reclaimer would wait for itself; use wait_timeout or is_reclaimed"
                );
                return false;
            }
            match this.mode {
                ReclaimMode::Manual => {
                    Domain::pass(this, true);
                }
                ReclaimMode::Background => {
                    this.wake();
                    // The adopter of a manual domain is the process-wide one.
                }
            }
            let slice = match deadline {
                None => MAX_PARK,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return done();
                    }
                    left.min(MAX_PARK)
                }
            };
            let guard = lock(&this.done_lock);
            if done() {
                return true;
            }
            // Relaxed: a hint for passes to notify while someone waits; the slice
            // bounds the wait if a pass missed it.
            this.waiters.fetch_add(1, Ordering::Relaxed);
            // A pass that did something notifies under `done_lock`, so a wake-up
            // cannot be lost between the check above and this wait; the slice bounds
            // the wait anyway.
            timed_wait(&this.done_cv, guard, slice);
            this.waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        // Nothing can be queued: every job, doomed value and orphan keeps a home,
        // and every home keeps its domain. The lists' own drops run what is left
        // (nothing) rather than leak it.
        if let Some(worker) = lock(&self.worker).take() {
            // The thread holds an `Arc` on the domain, so this drop runs on it, or
            // after it returned: never wait for it here.
            drop(worker);
        }
        for slot in &self.rings {
            // Relaxed: `&mut self`: no other thread holds the domain.
            let ring = slot.load(Ordering::Relaxed);
            if !ring.is_null() {
                // SAFETY: from `Box::into_raw` in `doom`, stored once per slot, freed
                // once, here; empty (every doomed value keeps its home, and every
                // home its domain).
                let ring = unsafe { Box::from_raw(ring) };
                debug_assert!(ring.is_empty(), "a domain dropped with doomed values");
                drop(ring);
            }
        }
    }
}

/// Locks a mutex whose data stays consistent through a panic (a pass's state is
/// only appended to and filtered; a retirement's wakers are replaced whole), so
/// poisoning is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The counts of a pass's destroyed values, added to each map's home once per run
/// of consecutive values of that map (see `Home::doomed_values_destroyed`).
#[derive(Default)]
struct Tally {
    /// The map of the current run, and the run's counts.
    home: Option<HomeRef>,
    run: u64,
    run_panicked: u64,
    /// Totals of the pass: values destroyed, and those of maps that trim memory.
    destroyed: usize,
    trim_count: usize,
}

impl Tally {
    /// Counts `count` values of `home` destroyed, all with `outcome`.
    fn add(&mut self, home: HomeRef, outcome: DropOutcome, count: usize) {
        if self.home != Some(home) {
            self.flush();
            self.home = Some(home);
        }
        self.run += count as u64;
        if outcome == DropOutcome::Panicked {
            self.run_panicked += count as u64;
        }
    }

    /// Adds the current run to its home. Before the pass's orphan check, which
    /// reads the count (`Home::drained`).
    fn flush(&mut self) {
        if let Some(home) = self.home.take() {
            let home = home.get();
            home.doomed_values_destroyed(self.run, self.run_panicked);
            self.destroyed += self.run as usize;
            if home.trim() {
                self.trim_count += self.run as usize;
            }
        }
        self.run = 0;
        self.run_panicked = 0;
    }
}
