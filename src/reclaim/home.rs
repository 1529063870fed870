//! `Home`: one map's account with its reclamation domain.
//!
//! A domain serves many maps, but [`Stats`](crate::Stats) are per map, so each map
//! has a `Home`: its counters, and the domain it belongs to. Every value cell points
//! at its map's home (a raw pointer: no reference count is taken per value), since
//! the thread that releases a value's last reference must reach the domain and count
//! the value as pending.
//!
//! Nothing per value writes a line that other threads write, up to 8 threads: the
//! two per-value counters (cells created, values doomed) are *striped*, one cache
//! line per stripe, and each thread adds to the stripe of its own index, without a
//! locked instruction if it claimed that index (`stripe.rs`). Threads beyond the
//! 8 claimants share the stripes (and their lines) round-robin, with `fetch_add`.
//! Everything else is written by
//! the domain's pass only (one thread at a time) or once per generation.
//!
//! The stripes (`COUNTER_STRIPES` lines of 128 bytes: 1 KiB) are allocated by the
//! first cell the map creates, not with the map: a map that is built and never
//! written (one per tenant, most of them idle) costs a 100-byte home, not 1.1 KiB
//! of fresh, 128-byte aligned memory. That was a third of the bytes a new map
//! touched, and its aligned allocation the slowest of its allocations
//! (`docs/BENCHMARKS.md`, map creation).
//!
//! # Lifetime
//!
//! A home is freed by a pass of its domain, once nothing can reach it:
//!
//! * its **owners** are gone: the map (through its `Standby`) and every generation
//!   of it (a generation's ownership ends when the pass has torn its table down).
//!   The thread that releases the last owner pushes the home onto the domain's
//!   orphan list;
//! * and every value cell created for it has been destroyed: `created` (the sum of
//!   the stripes) equals `reclaimed_values`. A cell is created only by a thread
//!   holding an owner, so once the owners are gone `created` no longer grows; cells
//!   are destroyed only in passes, which also do this check, so no cell can be
//!   destroyed between the check and the free.

use std::ptr::NonNull;

use super::domain::Domain;
use super::recycle::CellClass;
use super::report::DropOutcome;
use super::stripe::{StripedCount, ThreadStripe, thread_stripe};
use crate::sync::{
    Arc, AtomicPtr, AtomicU64, AtomicUsize, COUNTER_STRIPES, Ordering, TRACK_FREES, UnsafeCell,
};

/// One stripe of the per-value counters, alone on its cache line.
#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    /// Value cells created by threads of this stripe.
    created: StripedCount,
    /// Values whose last reference threads of this stripe released (doomed).
    doomed: StripedCount,
}

/// One map's account (see the module docs).
pub(crate) struct Home {
    domain: Arc<Domain>,
    /// The map (through its standby) and its live generations.
    owners: AtomicUsize,
    /// The per-value counters: a `Box<Stripes>` installed by the first cell created
    /// (`stripes`), null until then; freed with the home.
    stripes: AtomicPtr<Stripes>,
    /// Written by passes only.
    reclaimed_generations: AtomicU64,
    reclaimed_values: AtomicU64,
    doomed_destroyed: AtomicU64,
    destructor_panics: AtomicU64,
    /// Entries of this map's tables that a pass is walking right now.
    walking: AtomicUsize,
    /// Teardowns of this map submitted to the domain, and how many of those have
    /// run; `shutdown` waits for the two to meet.
    submitted: AtomicU64,
    done: AtomicU64,
    /// Generations of this map released after a grace period
    /// (`generation::release_after_grace`) whose release has not run yet: until it
    /// runs, their teardown is not submitted, so `shutdown` waits for this too.
    generations_in_grace: AtomicUsize,
    /// Whether large teardowns of this map return memory to the OS (`trim.rs`).
    trim: bool,
    /// Destroys one of this map's doomed value cells (type-erased `V`).
    destroy: DestroyFn,
    /// Whether `destroy` reads the cell: whether the map's key or value has a
    /// destructor to run (`std::mem::needs_drop`). If not, a pass destroys a cell
    /// from a ring without touching it (`doomed.rs`, `Doomed`).
    destroy_reads_cells: bool,
    /// Set when the map's cells need nothing but their memory back: no part of
    /// a cell has a destructor, and cells of its size are recycled
    /// (`recycle::cell_class`). A pass then gives a ring's run of such cells back
    /// to its magazines at once, without calling `destroy` for each
    /// (`DoomedBatch::destroy_each`).
    plain_cells: Option<CellClass>,
    /// Whether a releasing thread's help may destroy this map's doomed values
    /// (`domain/help.rs`): when their destruction runs no destructor, or the map
    /// was built with `Builder::destructors_on_releasing_threads`.
    helps_destroy: bool,
    /// Under loom (`TRACK_FREES`): whether the home was freed; read at every
    /// `HomeRef::get`, written by `Home::free`, so that a use of the home not
    /// ordered before its free is a causality violation, and one ordered after it
    /// a panic. Unused otherwise.
    freed: UnsafeCell<bool>,
}

/// The per-value counters, one stripe per thread index.
type Stripes = [Stripe; COUNTER_STRIPES];

/// Destroys a type-erased value cell: runs the value's destructor (containing a
/// panic) and frees the cell. Unsafe to call: the cell must be doomed, past its
/// grace period, and of the map's `V`.
pub(crate) type DestroyFn = unsafe fn(NonNull<()>) -> DropOutcome;

/// A sample of one map's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CounterSample {
    pub(crate) pending_values: usize,
    pub(crate) reclaimed_generations: u64,
    pub(crate) reclaimed_values: u64,
    pub(crate) destructor_panics: u64,
}

/// A pointer to a live home. `Copy`; whoever dereferences it must know the home is
/// alive (it holds an owner, or a value cell of the home that is not destroyed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct HomeRef(NonNull<Home>);

// SAFETY: a `HomeRef` only gives `&Home` (freeing is `Home::free`'s, unsafe), and a
// `Home` is `Sync`: atomics, an `Arc<Domain>`, and two `bool`s, a fn pointer and
// a size class that are never written after `HomeOwner::new`.
unsafe impl Send for HomeRef {}
// SAFETY: as above.
unsafe impl Sync for HomeRef {}

impl HomeRef {
    /// The home's address: the identity of its map (and of no other map) while
    /// any owner of the home is alive.
    pub(crate) fn addr(&self) -> usize {
        self.0.as_ptr() as usize
    }

    /// The home; see the type's docs for why it is alive.
    pub(crate) fn get(&self) -> &Home {
        // Soundness: the pointer is `Box::leak`'s from `HomeOwner::new`. The type's
        // contract: every `HomeRef` in the crate is held by an owner (`HomeOwner`), a
        // live value cell, or a pass of the home's domain, and a home is freed only
        // by such a pass once it has neither (`Home::free`, module docs).
        // SAFETY: the home outlives every `HomeRef` in the crate (above).
        let home = unsafe { self.0.as_ref() };
        if TRACK_FREES {
            // A read that loom orders against the free's write (`Home::free`).
            // SAFETY: a read of a flag that only `free` writes.
            let freed = home.freed.with(|f| unsafe { f.read() });
            assert!(!freed, "a map's home used after its free");
        }
        home
    }
}

/// One owner of a home: the map's standby, or a generation.
pub(crate) struct HomeOwner(HomeRef);

impl HomeOwner {
    /// A new home in `domain`, owned by the returned handle.
    /// `destroy_reads_cells`: whether `destroy` reads the cells it is given (their
    /// key or value has a destructor); `plain_cells`: see the field;
    /// `destructors_on_releasing_threads`: the builder's setting (`helps_destroy`).
    pub(crate) fn new(
        domain: &Arc<Domain>,
        trim: bool,
        destroy: DestroyFn,
        destroy_reads_cells: bool,
        plain_cells: Option<CellClass>,
        destructors_on_releasing_threads: bool,
    ) -> Self {
        Domain::home_created(domain);
        let home = Box::new(Home {
            domain: Arc::clone(domain),
            owners: AtomicUsize::new(1),
            stripes: AtomicPtr::new(std::ptr::null_mut()),
            reclaimed_generations: AtomicU64::new(0),
            reclaimed_values: AtomicU64::new(0),
            doomed_destroyed: AtomicU64::new(0),
            freed: UnsafeCell::new(false),
            destructor_panics: AtomicU64::new(0),
            walking: AtomicUsize::new(0),
            submitted: AtomicU64::new(0),
            generations_in_grace: AtomicUsize::new(0),
            done: AtomicU64::new(0),
            trim,
            destroy,
            destroy_reads_cells,
            plain_cells,
            helps_destroy: !destroy_reads_cells || destructors_on_releasing_threads,
        });
        HomeOwner(HomeRef(NonNull::from(Box::leak(home))))
    }

    pub(crate) fn home(&self) -> HomeRef {
        self.0
    }
}

impl Clone for HomeOwner {
    fn clone(&self) -> Self {
        // Relaxed: as `Arc::clone`, the caller's own ownership keeps the home alive.
        self.0.get().owners.fetch_add(1, Ordering::Relaxed);
        HomeOwner(self.0)
    }
}

impl Drop for HomeOwner {
    fn drop(&mut self) {
        let home = self.0.get();
        // AcqRel, as `Arc`'s drop: Release orders this owner's uses of the home
        // (reads of its fields, this decrement) before its free; Acquire brings every
        // owner's to the last one, whose orphan push hands them to the pass (whose
        // take acquires it). Owners dropped by passes reach the free by other paths
        // too, but `AtomicMap::shutdown`'s, dropped on the map's thread after its
        // last read of the home, reaches it by this one only: scenario 20, where a
        // snapshot's generation holds the last owner, fails with either half removed.
        if home.owners.fetch_sub(1, Ordering::AcqRel) == 1 {
            // A local handle on the domain: once pushed, the home may be freed by the
            // next pass before `orphan` returns, and with it its own `Arc<Domain>`
            // (an argument pointing there would dangle for the rest of the call).
            let domain = Arc::clone(&home.domain);
            Domain::orphan(&domain, self.0);
        }
    }
}

impl Drop for Home {
    /// Frees the stripes, if a cell ever installed them.
    fn drop(&mut self) {
        // Relaxed: `&mut self`: the home is ours alone.
        let stripes = self.stripes.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if !stripes.is_null() {
            // SAFETY: `install_stripes`' `Box::into_raw`, unlinked above, freed once.
            drop(unsafe { Box::from_raw(stripes) });
        }
    }
}

impl Home {
    pub(crate) fn domain(&self) -> &Arc<Domain> {
        &self.domain
    }

    pub(crate) fn trim(&self) -> bool {
        self.trim
    }

    /// How to destroy this map's doomed values.
    pub(crate) fn destroy_fn(&self) -> DestroyFn {
        self.destroy
    }

    /// Whether destroying one of this map's cells reads it (see the field).
    pub(crate) fn destroy_reads_cells(&self) -> bool {
        self.destroy_reads_cells
    }

    /// Whether a releasing thread's help may destroy this map's doomed values
    /// (see the field).
    pub(crate) fn helps_destroy(&self) -> bool {
        self.helps_destroy
    }

    /// The size class of this map's cells if destroying one only gives its memory
    /// back (see the field).
    pub(crate) fn plain_cells(&self) -> Option<CellClass> {
        self.plain_cells
    }

    /// The stripes, installed by the first caller.
    #[inline]
    fn stripes(&self) -> &Stripes {
        // SeqCst: the install below publishes the zeroed counters; a load of the
        // installed pointer must see them (Acquire would do, pairing with the
        // install's Release; on x86 either is a plain load, and the install runs
        // once per map).
        let mut stripes = self.stripes.load(Ordering::SeqCst);
        if stripes.is_null() {
            stripes = self.install_stripes();
        }
        // Soundness: non-null pointers in `stripes` come from `Box::into_raw` in
        // `install_stripes` and are freed only by the home's drop (`&mut self`), so
        // they live as long as `&self`.
        // SAFETY: a live box, freed only with the home (above).
        unsafe { &*stripes }
    }

    /// Allocates the stripes; the first of racing callers installs its own, the
    /// others free theirs and use it.
    #[cold]
    #[inline(never)]
    fn install_stripes(&self) -> *mut Stripes {
        let new = Box::into_raw(Box::<Stripes>::default());
        // SeqCst: see `stripes`.
        match self.stripes.compare_exchange(
            std::ptr::null_mut(),
            new,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => new,
            Err(installed) => {
                // SAFETY: `new` is `Box::into_raw`'s, just above, and never published
                // (the exchange failed): ours to free, once.
                drop(unsafe { Box::from_raw(new) });
                installed
            }
        }
    }

    /// A value cell was created for this map (by a thread holding an owner).
    #[inline]
    pub(crate) fn count_created(&self) {
        // A count (Relaxed, `stripe.rs`); the owner's release orders it before the
        // orphan check.
        let stripe = thread_stripe();
        self.stripes()[stripe.index].created.add_one(stripe);
    }

    /// A value's last reference was released outside a teardown. Returns the
    /// calling thread's stripe, for the doom that follows (`Domain::doom`).
    #[inline]
    pub(crate) fn count_doomed(&self) -> ThreadStripe {
        // Statistics only (Relaxed, `stripe.rs`).
        let stripe = thread_stripe();
        self.stripes()[stripe.index].doomed.add_one(stripe);
        stripe
    }

    /// [`count_doomed`](Self::count_doomed) as the thread of `stripe` (its chosen
    /// one), if this map's counters are installed already: no call on the way.
    /// Returns whether it counted.
    #[inline]
    pub(crate) fn count_doomed_on(&self, stripe: ThreadStripe) -> bool {
        // SeqCst: as in `stripes`.
        let stripes = self.stripes.load(Ordering::SeqCst);
        if stripes.is_null() {
            return false;
        }
        // SAFETY: a live box, freed only with the home (`stripes`).
        let stripes = unsafe { &*stripes };
        // Statistics only (Relaxed, `stripe.rs`).
        stripes[stripe.index].doomed.add_one(stripe);
        true
    }

    /// A teardown of this map is about to be submitted.
    pub(crate) fn count_submitted(&self) {
        // Relaxed: read by `settled`, a bounded wait that re-reads.
        self.submitted.fetch_add(1, Ordering::Relaxed);
    }

    /// A generation of this map is released after a grace period.
    pub(crate) fn grace_begins(&self) {
        // SeqCst: read by `shutdown` (see `generations_released`); once per
        // generation, off every hot path.
        self.generations_in_grace.fetch_add(1, Ordering::SeqCst);
    }

    /// That release has run (and submitted the teardown it led to, if any).
    pub(crate) fn grace_ends(&self) {
        // SeqCst: after the release, so that a `shutdown` that sees the count drop
        // sees the teardown counted in `submitted`.
        self.generations_in_grace.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether every release of a generation of this map after a grace period has
    /// run. Read before `jobs_done`.
    pub(crate) fn generations_released(&self) -> bool {
        // SeqCst: pairs with `grace_ends`.
        self.generations_in_grace.load(Ordering::SeqCst) == 0
    }

    /// A teardown of this map has run (on the pass).
    pub(crate) fn count_done(&self) {
        // Relaxed: as `count_submitted`.
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// A pass starts walking `entries` entries of a table of this map.
    pub(crate) fn walk_begins(&self, entries: usize) {
        // Relaxed: statistics only (written by the pass).
        self.walking.fetch_add(entries, Ordering::Relaxed);
    }

    /// The pass finished tearing down a table of this map.
    pub(crate) fn walk_ends(
        &self,
        entries: usize,
        destroyed: usize,
        panics: usize,
        published: bool,
    ) {
        // Relaxed: statistics, written by the pass only. A `Retired` ticket is
        // marked after this, with Release, so a waiter that sees the ticket
        // reclaimed also sees these counters.
        self.reclaimed_values
            .fetch_add(destroyed as u64, Ordering::Relaxed);
        self.destructor_panics
            .fetch_add(panics as u64, Ordering::Relaxed);
        if published {
            self.reclaimed_generations.fetch_add(1, Ordering::Relaxed);
        }
        self.walking.fetch_sub(entries, Ordering::Relaxed);
    }

    /// The pass destroyed `destroyed` doomed values of this map, of which
    /// `panicked` panicked. Counted per run of values of one map, not per value:
    /// the counters share a line with what every writer of the map reads (the
    /// domain, the stripes), and a locked increment per value on the reclaimer
    /// kept that line moving between cores (87% of the pass's samples in an
    /// upsert profile).
    pub(crate) fn doomed_values_destroyed(&self, destroyed: u64, panicked: u64) {
        // Relaxed: written by the pass only; read as statistics and by the pass's
        // orphan check (same thread, or an earlier pass under the pass lock).
        self.reclaimed_values
            .fetch_add(destroyed, Ordering::Relaxed);
        self.doomed_destroyed
            .fetch_add(destroyed, Ordering::Relaxed);
        if panicked != 0 {
            self.destructor_panics
                .fetch_add(panicked, Ordering::Relaxed);
        }
    }

    /// The sum of one counter over the stripes (Relaxed loads: see the callers);
    /// 0 before the first cell.
    fn stripe_sum(&self, counter: impl Fn(&Stripe) -> &StripedCount) -> u64 {
        // SeqCst: see `stripes`.
        let stripes = self.stripes.load(Ordering::SeqCst);
        if stripes.is_null() {
            return 0;
        }
        // SAFETY: a live box, freed only with the home (see `stripes`).
        unsafe { &*stripes }.iter().map(|s| counter(s).sum()).sum()
    }

    pub(crate) fn sample(&self) -> CounterSample {
        let doomed = self.stripe_sum(|s| &s.doomed);
        let destroyed = self.doomed_destroyed.load(Ordering::Relaxed);
        // Relaxed everywhere: a racy sample, exact once the map is quiet.
        CounterSample {
            pending_values: doomed.saturating_sub(destroyed) as usize
                + self.walking.load(Ordering::Relaxed),
            reclaimed_generations: self.reclaimed_generations.load(Ordering::Relaxed),
            reclaimed_values: self.reclaimed_values.load(Ordering::Relaxed),
            destructor_panics: self.destructor_panics.load(Ordering::Relaxed),
        }
    }

    /// Whether every teardown of this map submitted so far has run (a racy reading,
    /// for `shutdown`'s bounded wait).
    pub(crate) fn jobs_done(&self) -> bool {
        self.done.load(Ordering::Relaxed) == self.submitted.load(Ordering::Relaxed)
    }

    /// Whether a pass may free this orphaned home: every cell created for it has
    /// been destroyed. Called by passes only, after the last owner is gone.
    pub(crate) fn drained(&self) -> bool {
        let created = self.stripe_sum(|s| &s.created);
        // Relaxed: `created` is final (the last owner's AcqRel release, the orphan
        // push and the pass's take order every creation before this read), and
        // `reclaimed_values` is written by passes only, which are serialized.
        created == self.reclaimed_values.load(Ordering::Relaxed)
    }

    /// Frees an orphaned, drained home.
    ///
    /// # Safety
    /// `home` must be orphaned and drained, freed once, by a pass of its domain.
    pub(crate) unsafe fn free(home: HomeRef) {
        // Soundness: the pointer is `Box::leak`'s from `HomeOwner::new` (a `Box<Home>`,
        // whole provenance). Orphaned and drained (the contract): no owner is left,
        // so no cell can be made for it, and every cell made has been destroyed; the
        // passes, serialized, are the only other users; freed once.
        // SAFETY: `Box::leak`'s pointer, orphaned and drained, freed once (above).
        let home = unsafe { Box::from_raw(home.0.as_ptr()) };
        if TRACK_FREES {
            // SAFETY: `home` is ours alone now; loom checks that every use came before.
            home.freed.with_mut(|f| unsafe { f.write(true) });
            // Under loom the home's fields are dropped but its memory is kept (leaked:
            // about 150 bytes per execution of a model that frees a home). A use after
            // the free then reads the flag where it was, in memory no later
            // allocation has taken: loom reports it racing the write above, or, if
            // ordered after it, the flag fails `HomeRef::get`'s check, in every
            // execution. Had the memory gone back to the allocator, the next
            // allocation of that size would take it, and the use would read whatever
            // that wrote (a crash, or nothing at all). The home was 1.1 KiB, and
            // rarely reused, until its stripes moved out of it.
            let raw = Box::into_raw(home);
            // SAFETY: from `Box::into_raw` just above: valid, ours alone, dropped
            // once; the allocation is never freed.
            unsafe { std::ptr::drop_in_place(raw) };
            return;
        }
        drop(home);
    }
}
