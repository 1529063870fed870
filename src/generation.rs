//! `Generation`: one published version of the map's contents.
//!
//! A generation is its id, its table and a completion flag shared with the
//! [`Retired`](crate::Retired) tickets that wait for it. It is reference-counted
//! (`Arc`): the map's slot (arc-swap), snapshots, and a `ReadGuard` made from a
//! snapshot each hold it. Pinned readers and writers hold no count: they reach
//! the current generation through the map's `pinned` pointer, readers under an
//! epoch guard, writers under a shard lock of the map, and the slot's reference to
//! a generation is released only after the map's shard locks were each taken once
//! (`Standby::release_handed_off`) and a grace period ([`release_after_grace`]),
//! both past the moment the pointer moved off it.
//! Dropping the last reference costs O(1): `Drop` hands the table to the reclaimer
//! instead of walking it (the trap of a plain `Arc<HashMap>`, whose last holder
//! pays the whole teardown).

use std::hash::{BuildHasher, Hash};
use std::mem::ManuallyDrop;

use crate::reclaim::domain::{Domain, on_background_thread};
use crate::reclaim::home::HomeOwner;
use crate::reclaim::jobs::{Job, JobNode, JobReport};
use crate::reclaim::report::TeardownReport;
use crate::reclaim::retired::Retirement;
use crate::reclaim::time_slice;
use crate::standby::Standby;
use crate::store::{Store, TeardownCells};
use crate::sync::{Arc, AtomicPtr, UnsafeCell};

/// One version of the map's contents.
///
/// `repr(C)`: what a clear touches (`id`, `published`, `ticket` and `parked`)
/// comes first, right after the `Arc`'s counts, and 64 bytes (`apart`) separate
/// the last field before the table from the table: a clear reads and writes no
/// other line of the new and the retired generation, and none that readers and
/// writers load the table from. (A gap, not an alignment: a line-aligned
/// generation put every map's creation on glibc's slower `memalign` path, 10%
/// slower in `map_creation`.)
#[repr(C)]
pub(crate) struct Generation<K, V, S> {
    /// The generation's id, and whether it was ever made current (moved into the
    /// teardown job with `retirement`, see `Drop`).
    numbering: Numbering,
    /// The `Retired` ticket of the publish that retires this generation, made
    /// with the generation (one reference to `retirement`, counted then) and
    /// taken by that publish ([`take_ticket`](Self::take_ticket)); still here at
    /// the drop if no publish retired it (a spare never used, the generation
    /// current when the map is dropped), and dropped with it.
    ///
    /// Why made ahead: the clear's own `Arc::clone` of `retirement` was a locked
    /// increment on a line of its own (the `Retirement`'s counts, cold after a
    /// large fill), whose address the clear learned only from the retired
    /// generation's head: a second miss in a chain, each waited for in turn, since
    /// the clear's locked instructions let no later one start. `clear_cold
    /// --readers 2` at 1,000,000 entries, eight alternating runs of 25 clears
    /// each: medians 0.73-1.21 us (median of the eight 1.04) against 0.89-1.40
    /// (1.19) with the clone (`docs/BENCHMARKS.md`, "History", "The ticket made
    /// with its generation").
    ticket: TicketSlot,
    /// Submits the table to the reclaimer when the generation's last reference is
    /// dropped: `submit_teardown` for this `K, V, S`, taken where the bounds that
    /// make a table a `Job` hold (`new`), since `Drop` cannot carry them.
    submit: SubmitTeardown<K, V, S>,
    /// The link of the standby's list of retired generations parked for release
    /// (`standby.rs`, `hand_off`), written by the clearer that parks this one.
    parked: AtomicPtr<Generation<K, V, S>>,
    /// Shared with `Retired` tickets; moves into the teardown job in `Drop`.
    retirement: ManuallyDrop<Arc<Retirement>>,
    /// This generation's ownership of its map's account.
    owner: ManuallyDrop<HomeOwner>,
    /// Keeps the table off the line of every field before it: readers and
    /// writers load the table's fields on every operation, and a clear writes the
    /// retired generation's head (`ticket`, `parked`). On one line, each clear took
    /// that line from every reader's cache and waited for it, whenever the
    /// allocator had put the generation where the two shared a line
    /// (`docs/BENCHMARKS.md`, "History", "The map's lines made its own").
    apart: [u8; 64],
    store: ManuallyDrop<Store<K, V, S>>,
}

// Wherever the generation starts, the line of the last byte before `apart` ends
// before the table begins (the fields before `apart` are the clear's).
const _: () = {
    use std::mem::offset_of;
    type G = Generation<u64, u64, std::collections::hash_map::RandomState>;
    assert!(offset_of!(G, store) >= offset_of!(G, apart) - 1 + 64);
    assert!(offset_of!(G, owner) < offset_of!(G, apart));
};

impl<K, V, S> Generation<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// A generation not yet published (see `prepare_publish`) of the map whose
    /// standby is `standby`.
    pub(crate) fn new(store: Store<K, V, S>, standby: &Standby<K, V, S>) -> Self {
        let owner = standby.owner().clone();
        let home = owner.home();
        let domain = home.get().domain();
        let retirement = Arc::new(Retirement::new(domain, home));
        Generation {
            numbering: Numbering(UnsafeCell::new((0, false))),
            ticket: TicketSlot(UnsafeCell::new(Some(Arc::clone(&retirement)))),
            retirement: ManuallyDrop::new(retirement),
            apart: [0; 64],
            store: ManuallyDrop::new(store),
            submit: submit_teardown::<K, V, S>,
            parked: AtomicPtr::new(std::ptr::null_mut()),
            owner: ManuallyDrop::new(owner),
        }
    }

    /// Numbers a generation about to be published.
    ///
    /// Through `&self`, with plain stores: a clear's `Arc::get_mut` here was a
    /// `lock cmpxchg` on the head of the spare it had just taken, a line last
    /// written by the reclaimer's core, which the clear then waited for before
    /// anything else (a locked instruction lets nothing after it start); the
    /// stores wait in the store buffer instead, while the clear goes on.
    ///
    /// # Safety
    /// No other thread can reach the generation yet: it was just built (a spare
    /// is numbered by the reclaimer before it is parked), or it is taken from the
    /// standby's slot (whose swap made the caller its only holder), or it is
    /// parked there and the caller holds the map's publish lock (no other taker
    /// can run, and the reclaimer never writes a parked spare); and it is
    /// published (by a Release store or swap) only after this call.
    pub(crate) unsafe fn prepare_publish(&self, id: u64) {
        // SAFETY: the caller is the generation's only user (the contract).
        self.numbering
            .0
            .with_mut(|numbering| unsafe { *numbering = (id, true) });
    }

    pub(crate) fn store(&self) -> &Store<K, V, S> {
        &self.store
    }
}

impl<K, V, S> Generation<K, V, S> {
    pub(crate) fn id(&self) -> u64 {
        // SAFETY: written only before the generation is shared (`new`,
        // `prepare_publish`), and every thread that reaches it got it through a
        // publication made after that write (`Numbering`).
        self.numbering.0.with(|numbering| unsafe { (*numbering).0 })
    }

    /// Marks a spare that was numbered ahead but never made current (dropped
    /// unused), so that its teardown does not count it as a retired generation.
    pub(crate) fn unpublish(&mut self) {
        // SAFETY: `&mut self`: no other reference to the generation exists.
        self.numbering
            .0
            .with_mut(|numbering| unsafe { (*numbering).1 = false });
    }

    /// Whether the generation was ever made current.
    fn published(&self) -> bool {
        // SAFETY: as in `id`.
        self.numbering.0.with(|numbering| unsafe { (*numbering).1 })
    }

    /// The link of the standby's parked list (see the field).
    pub(crate) fn parked(&self) -> &AtomicPtr<Generation<K, V, S>> {
        &self.parked
    }

    /// What a `Retired` ticket for this generation waits on.
    #[cfg(all(test, not(feature = "loom")))]
    pub(crate) fn retirement(&self) -> &Arc<Retirement> {
        &self.retirement
    }

    /// The `Retired` ticket's reference to this generation's retirement, made
    /// with the generation (see the field): taken by the publish that retires it,
    /// with no atomic step.
    ///
    /// # Safety
    /// Only the publish that moves the map off this generation calls it: under the
    /// map's publish lock, once per generation (a generation is published once and
    /// retired once). No other thread touches the field meanwhile: only `new`
    /// (before the generation is shared) and the drop (after the last reference,
    /// which the publish's hand-off of its reference orders after this call) do.
    pub(crate) unsafe fn take_ticket(&self) -> Arc<Retirement> {
        // SAFETY: the caller is the field's only user at this time (the contract).
        unsafe { self.ticket.0.with_mut(|ticket| (*ticket).take()) }
            .expect("a generation is retired once")
    }
}

/// A generation's id and whether it was made current (`Generation::numbering`).
struct Numbering(UnsafeCell<(u64, bool)>);

// Written only while the generation is unshared (`Generation::new`,
// `prepare_publish`); read after a publication that a Release store or swap made
// after the write (the slot's swap and `pinned`'s store in `publish`, or the map's
// construction), whose Acquire load gave the reader the generation.
// SAFETY: no write while the generation is shared (above).
unsafe impl Sync for Numbering {}

/// A generation's ticket made ahead (`Generation::ticket`).
struct TicketSlot(UnsafeCell<Option<Arc<Retirement>>>);

// The reference inside (`Arc<Retirement>`, `Send + Sync`) is touched by one thread
// at a time: `Generation::new` before the generation is shared, the one publish
// that retires it (under the map's publish lock, `take_ticket`'s contract), and
// the drop, after the last reference; the publish hands its reference to the
// generation off after the take (a Release push), so the take happens before the
// drop.
// SAFETY: one thread at a time, ordered as above.
unsafe impl Sync for TicketSlot {}

/// How a generation submits its table's teardown (see `Generation::submit`).
///
/// # Safety
/// The domain pointer is live at the call (the table's owner keeps it).
type SubmitTeardown<K, V, S> = unsafe fn(RetiredTable<K, V, S>, *const Domain);

/// Puts `table` in a job node of its own and pushes it on `domain`'s job list.
///
/// The node is allocated here, when the generation's last reference goes, and not
/// with the generation: a map's creation then makes one allocation fewer (about 240
/// of its 2,245 instructions under callgrind, `docs/BENCHMARKS.md`, "History", "One
/// allocation fewer per map"), and a spare that is never used costs no node.
/// The cost moves to the thread that drops the last reference: usually the
/// reclaimer's pass releasing a hand-off, else a snapshot or a guard made from one,
/// or any pinning thread whose epoch collection runs the deferred release.
///
/// # Safety
/// `domain` is live at the call (`table.owner` holds the home, which holds an
/// `Arc` on it).
unsafe fn submit_teardown<K, V, S>(table: RetiredTable<K, V, S>, domain: *const Domain)
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    let node = JobNode::new(table);
    // Counted once the node exists (an allocation that unwound before would
    // otherwise leave the count above what can ever be done), and before the push
    // (after it, the next pass may run the job and count it done).
    node.payload
        .owner
        .as_ref()
        .expect("a submitted table has its owner")
        .home()
        .get()
        .count_submitted();
    // SAFETY: the domain is live at the call (the contract).
    unsafe { Domain::submit(domain, node) };
}

/// A generation's table on its way to the teardown, plus the flag to raise once it
/// is torn down: a job of the reclaimer.
pub(crate) struct RetiredTable<K, V, S> {
    /// `None` only after the teardown's last slice dropped it.
    store: Option<Store<K, V, S>>,
    /// The cells a teardown in address order has collected and not yet released.
    /// Declared before `owner`, so that a job dropped midway releases them while
    /// their map's account is still owned.
    cells: TeardownCells<K, V>,
    /// Shared with `Retired` tickets; marked once the table has been torn down.
    retirement: Option<Arc<Retirement>>,
    /// Whether the generation was ever made current. A spare that never was is
    /// not counted among the reclaimed generations when it is torn down.
    published: bool,
    /// The generation's ownership of its map's account, given up after the teardown.
    owner: Option<HomeOwner>,
    /// What the slices run so far did, once the first has run (see `run`).
    progress: Option<TeardownProgress>,
}

/// A teardown run a slice at a time: the entries the table held when it began, and
/// what the slices did.
struct TeardownProgress {
    entries: usize,
    report: TeardownReport,
}

/// Slots of a retired table a background reclaimer drains per run of its teardown
/// job, before it queues the rest behind the jobs waiting meanwhile: about 0.5–1 ms
/// of cold entries. A whole 1,000,000-entry teardown (60–125 ms here) otherwise
/// held up every other map's teardown on the process-wide reclaimer for as long,
/// and in the clear storm (`docs/BENCHMARKS.md`) the prefilled 100,000-entry table
/// (26 ms) held up the 200 small ones queued behind it. Only on a background
/// reclaimer's thread (its own domain's passes, and the manual domains it adopted):
/// a pass the program runs on its own thread (`reclaim()`, a manual domain's last
/// user) runs a teardown whole, as it asked.
/// (The shim's constant: 16 Ki slots; under loom one smallest array, so that the
/// models run the slices.)
const TEARDOWN_SLICE_SLOTS: usize = crate::sync::TEARDOWN_SLICE;

/// Entries past which a teardown on a background reclaimer asks for the kernel's
/// shortest time slice (`reclaim/time_slice.rs`): four slices of slots, about
/// 2–2.5 ms of work (a 1,000,000-entry teardown takes 31–38 ms), longer than the
/// kernel's default slice (1.4 ms on this 2-core machine, as `sched_getattr` reads
/// it). The clear storm's generations of 16,000–20,000 entries (written while the
/// clearer waited for a core) stay below it.
pub(crate) const SHORT_SLICE_ENTRIES: usize = 4 * TEARDOWN_SLICE_SLOTS;

impl<K, V, S> Job for RetiredTable<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn run(mut self) -> JobReport {
        let home = self
            .owner
            .as_ref()
            .expect("a submitted table has its owner")
            .home();
        let home = home.get();
        let domain = home.domain();
        let slots = if on_background_thread() {
            TEARDOWN_SLICE_SLOTS
        } else {
            usize::MAX
        };
        let progress = self.progress.get_or_insert_with(|| {
            let entries = self.store.as_ref().map_or(0, Store::len);
            if entries > SHORT_SLICE_ENTRIES && slots != usize::MAX {
                // On a background reclaimer, a teardown longer than the kernel's
                // default slice: its slices take a reader's core a scheduler tick
                // at most (best effort; the background loop gives the slice back
                // later: `time_slice`).
                time_slice::ask_for_shortest_slice();
            }
            home.walk_begins(entries);
            TeardownProgress {
                entries,
                report: TeardownReport::default(),
            }
        });
        let (slice, empty) = self
            .store
            .as_mut()
            .map_or((TeardownReport::default(), true), |store| {
                store.teardown_slice(slots, &mut self.cells)
            });
        progress.report.add(slice);
        let trim = if home.trim() { slice.destroyed } else { 0 };
        if !empty {
            // The rest goes behind the jobs queued meanwhile (run by this pass's
            // next round of jobs, or the next pass), in a node of its own.
            let domain = Arc::as_ptr(domain);
            // SAFETY: the domain is alive at the call: the owner in the node keeps
            // the home, which holds an `Arc` on it.
            unsafe { Domain::submit(domain, JobNode::new(self)) };
            return JobReport { torn_down: 0, trim };
        }
        let (entries, report) = (progress.entries, progress.report);
        drop(self.store.take());
        home.walk_ends(entries, report.destroyed, report.panics, self.published);
        home.count_done();
        // After the counters: a waiter that sees the ticket reclaimed sees them too.
        self.retirement
            .take()
            .expect("a submitted table has its retirement")
            .mark_torn_down();
        drop(self.owner.take());
        JobReport {
            torn_down: usize::from(self.published),
            trim,
        }
    }
}

impl<K, V, S> Drop for Generation<K, V, S> {
    /// O(1): the table moves into a job node (one small allocation, see
    /// `submit_teardown`), and the node is linked onto the reclaimer's list. No
    /// `store.len()` here: it would read every shard's count, lines that writers
    /// were writing a moment ago (about 1 µs on the clearer); the reclaimer counts.
    ///
    /// Unbounded, so that the types holding a generation carry no bounds: `submit`
    /// was taken in `Generation::new`, which checked that the table may be torn
    /// down on another thread, later (`Job + Send + 'static`).
    fn drop(&mut self) {
        // SAFETY: `store`, `owner` and `retirement` are initialized (`new`) and
        // taken exactly once, here (`drop` runs once and `ManuallyDrop` drops nothing
        // itself); they are never touched again.
        let (store, owner, retirement) = unsafe {
            (
                ManuallyDrop::take(&mut self.store),
                ManuallyDrop::take(&mut self.owner),
                ManuallyDrop::take(&mut self.retirement),
            )
        };
        // The owner in the job keeps the home (and its domain) alive until the push;
        // nothing is touched after it (the next pass may free both).
        let domain = Arc::as_ptr(owner.home().get().domain());
        let table = RetiredTable {
            store: Some(store),
            cells: TeardownCells::new(),
            retirement: Some(retirement),
            published: self.published(),
            owner: Some(owner),
            progress: None,
        };
        // SAFETY: the domain is alive at the call (the table's owner keeps the home,
        // which holds an `Arc` on it).
        unsafe { (self.submit)(table, domain) };
    }
}

/// The read-only accessors of every handle that sees exactly one generation
/// (`Snapshot`, `ReadGuard`), written once. Expands inside an `impl` whose type has a
/// field `generation` that derefs to a `Generation`, and a method `with_read_pin`
/// that runs a lookup under an epoch pin: the guard's own (a `ReadGuard` is pinned
/// already: until 2026-12-03 its `get` and `contains_key` pinned again inside it),
/// or a new one (a `Snapshot` holds a count, not a pin).
macro_rules! one_generation_reads {
    () => {
        /// A retained handle on the value for `key` in this generation (one atomic
        /// increment); it outlives the handle it came from, and clears.
        ///
        /// ```
        /// let map = atomic_map::AtomicMap::new();
        /// map.insert("k", 1);
        /// let (snapshot, guard) = (map.snapshot(), map.pin());
        /// map.clear_async();
        /// let (a, b) = (snapshot.get("k").unwrap(), guard.get("k").unwrap());
        /// drop((snapshot, guard));
        /// assert_eq!((*a, *b), (1, 1)); // the handles outlive what they came from
        /// ```
        pub fn get<Q>(&self, key: &Q) -> Option<ValueRef<V>>
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.with_read_pin(|pin| self.generation.store().get_retained(key, pin))
        }

        /// Whether this generation maps `key`.
        ///
        /// ```
        /// let map = atomic_map::AtomicMap::new();
        /// map.insert(1, "one");
        /// let snapshot = map.snapshot();
        /// map.remove(&1); // a write to the same generation: the snapshot sees it
        /// assert!(!snapshot.contains_key(&1));
        /// map.insert(2, "two");
        /// map.clear_async(); // a new generation: the snapshot does not see it
        /// assert!(snapshot.contains_key(&2) && map.pin().is_empty());
        /// ```
        pub fn contains_key<Q>(&self, key: &Q) -> bool
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.with_read_pin(|pin| self.generation.store().contains_key(key, pin))
        }

        /// Number of entries in this generation (sums the shards).
        ///
        /// ```
        /// let map: atomic_map::AtomicMap<u32, u32> = (0..3).map(|i| (i, i)).collect();
        /// let snapshot = map.snapshot();
        /// map.clear_async();
        /// assert_eq!((snapshot.len(), map.pin().len()), (3, 0));
        /// ```
        pub fn len(&self) -> usize {
            self.generation.store().len()
        }

        /// Whether this generation is empty.
        ///
        /// ```
        /// let map = atomic_map::AtomicMap::<u8, u8>::new();
        /// assert!(map.snapshot().is_empty() && map.pin().is_empty());
        /// ```
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Id of this generation: the map's first is 0, each clear or replace
        /// publishes the next.
        ///
        /// ```
        /// let map = atomic_map::AtomicMap::<u8, u8>::new();
        /// let before = map.snapshot();
        /// let retired = map.clear_async();
        /// assert_eq!(retired.id(), before.generation());
        /// assert_eq!(map.pin().generation(), before.generation() + 1);
        /// ```
        pub fn generation(&self) -> u64 {
            self.generation.id()
        }
    };
}
pub(crate) use one_generation_reads;

/// Releases `generation` once every epoch guard pinned now (or later: the grace
/// period starts at the domain's next pass) has been dropped: how the map gives up
/// the slot's reference to a generation that pinned readers may have reached
/// through its `pinned` pointer without a count (writers, which hold a shard lock
/// instead, were waited for before: `Standby::release_handed_off`; or there are
/// none: the map's drop). Counted by the
/// generation's domain until done (`Domain::after_grace`), so that a `flush` waits
/// for it. O(1): a push onto the domain's queue; the release itself is O(1)
/// wherever it runs (a hand-off to the reclaimer if it was the last reference:
/// `Drop`).
pub(crate) fn release_after_grace<K, V, S>(generation: Arc<Generation<K, V, S>>) {
    /// An `Arc<Generation>` as a raw pointer and its release, so that the deferred
    /// closure names no `K`, `V`, `S` (which the map's `Drop`, with no bounds, cannot
    /// prove `'static`).
    struct Erased {
        generation: *const (),
        release: unsafe fn(*const ()),
    }
    // SAFETY: it carries an `Arc<Generation<K, V, S>>`; the map's constructors and
    // clears, which build every generation, require `K, V, S: Send + Sync + 'static`,
    // so the reference may be released on any thread, at any later time.
    unsafe impl Send for Erased {}
    /// # Safety
    /// `generation` came from `Arc::<G>::into_raw` and is released once.
    unsafe fn release<G>(generation: *const ()) {
        // SAFETY: the contract.
        drop(unsafe { Arc::from_raw(generation.cast::<G>()) })
    }
    // An owner of the home of its own, so that the count below can be given back
    // after the release, whose teardown may free everything else of the map.
    let owner = HomeOwner::clone(&generation.owner);
    let home = owner.home();
    let domain = Arc::clone(home.get().domain());
    home.get().grace_begins();
    let erased = Erased {
        generation: Arc::into_raw(generation).cast(),
        release: release::<Generation<K, V, S>>,
    };
    Domain::after_grace(&domain, move || {
        let erased = erased;
        // SAFETY: from `Arc::into_raw` above, released once, here.
        unsafe { (erased.release)(erased.generation) };
        owner.home().get().grace_ends();
        drop(owner);
    });
}
