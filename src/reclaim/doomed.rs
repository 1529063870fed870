//! `DoomedValues`: values whose last reference is gone, on their way to destruction.
//!
//! Releasing a value's last reference (a dropped handle after a `remove`, a C
//! release) must not free it at once: a reader pinned in the epoch may have loaded
//! the pointer just before the value was unlinked. Handing the free to
//! crossbeam-epoch from the releasing thread has two faults: the closure waits in
//! that thread's private bag until the thread pins again (a thread of a pool that
//! goes idle, a Go runtime thread, can keep it there forever), and it runs on
//! whichever thread collects, often a reader. So the releasing thread only pushes
//! the value here (O(1), lock-free, no allocation: the cell is linked through its
//! dead count word), and the reclaimer moves values through three steps:
//!
//! 1. **doomed**: pushed by releasing threads;
//! 2. each pass takes the doomed values as one batch and defers, through the epoch,
//!    a closure that only moves the batch to **ripe**, then flushes its own bag so
//!    that any thread's collection (its own next one, in the same pass, included)
//!    can run it: the
//!    grace period starts after the values were unlinked, so every reader that
//!    could see them has unpinned by the time the batch is ripe;
//! 3. each pass destroys the **ripe** batches, on the reclaimer.
//!
//! Readers therefore never run a value's destructor, and progress never depends on
//! a thread that stopped calling into the map: a domain always has a thread or a
//! program running its passes (a manual domain whose users are gone is adopted by
//! the process-wide one, see `domain.rs`).

use std::ptr::{self, NonNull};

use super::home::HomeRef;
use super::recycle;
use super::report::DropOutcome;
use crate::prefetch::prefetch_line;
use crate::sync::{AtomicPtr, AtomicUsize, Ordering};

/// The head of every value cell, as the reclaimer sees a type-erased one: the
/// layout `ValueCell<V>` starts with (it is `repr(C)`, see `value/mod.rs`).
#[repr(C)]
pub(crate) struct CellHead {
    /// The reference count; once it has reached 0 and the cell is doomed, the link
    /// to the next doomed cell (the count is dead then: no holder is left).
    pub(crate) refs: AtomicUsize,
    /// The map's account, which knows how to destroy the map's values.
    pub(crate) home: HomeRef,
}

// The doomed list's link is a cell's address shifted right by two (`push`).
const _: () = assert!(align_of::<CellHead>() >= 4);

/// Set in every doomed list link (`push`): the count word of a doomed cell. No
/// count reaches it (`value/mod.rs`: `MAX_REFS` is below it), so a release or a retain
/// that finds it set came after the value's last release, and aborts
/// (`check_release`, the overflow checks) instead of changing the link.
pub(crate) const DOOMED: usize = 1 << (usize::BITS - 2);

/// A doomed list link for `next` (null: the end): its address shifted right by
/// two, which clears the top two bits (`MAPPED` and `DOOMED`), and `DOOMED` set.
fn encode_link(next: *mut CellHead) -> usize {
    (next.expose_provenance() >> 2) | DOOMED
}

/// The next cell a link names (null: the end), with its exposed provenance.
fn decode_link(link: usize) -> *mut CellHead {
    ptr::with_exposed_provenance_mut((link & !DOOMED) << 2)
}

/// A doomed value cell, type-erased, owned by the list or batch holding it.
pub(crate) struct DoomedValue(NonNull<CellHead>);

// SAFETY: a doomed value is owned by the list or batch holding it (moved, never
// shared); the cell's `V` is `Send + Sync` (required by every map) and its `HomeRef`
// is `Send`, so destroying it on another thread is sound.
unsafe impl Send for DoomedValue {}

impl DoomedValue {
    /// Destroys the value. Only after the grace period (a ripe batch), which is not
    /// checked here: the callers, `DoomedBatch::destroy_each` and
    /// `DoomedChain::destroy_each`, are called by `Domain::reclaim_values` only on
    /// batches taken from the ripe stack. Returns how its destructor ended and the home of
    /// its map, for the accounting.
    pub(crate) fn destroy(self) -> (DropOutcome, HomeRef) {
        // Soundness: the pointer is the cell's own (cast in `release_raw`, whole-cell
        // provenance) and the cell is alive until destroyed below (a doomed cell is
        // owned by its batch); it starts with `CellHead`'s fields (`repr(C)`, checked
        // in `value/mod.rs`), and `home` was written when the cell was made.
        // SAFETY: a live doomed cell with whole-cell provenance (above).
        let home = unsafe { self.0.as_ref().home };
        (self.destroy_of(home), home)
    }

    /// [`destroy`](Self::destroy), for a cell whose home the caller already has (a
    /// ring's entry carries it: `Doomed`), so that the cell itself is read only if
    /// its map's destructor reads it. `home` must be the cell's own.
    fn destroy_of(self, home: HomeRef) -> DropOutcome {
        // Soundness: `destroy_doomed`'s contract. The home outlives its cells
        // (`home.rs`); its destroy function is `destroy_doomed` of this cell's `V`
        // (`AtomicMap::from_builder`, and every cell is made with its own map's home,
        // which `home` is: the caller's contract); the batch is ripe (as for
        // `destroy`), and a doomed value is destroyed once (this consumes it).
        // SAFETY: `destroy_doomed`'s contract, as established above.
        unsafe { (home.get().destroy_fn())(self.0.cast()) }
    }
}

/// A doomed cell as a ring holds it (`doom_ring.rs`): its address, and its map's
/// home, copied from the cell by the releasing thread (which had the cell's line at
/// hand), so that the pass that destroys the cell need not read it to find the
/// home. For a map whose keys and values have no destructor the pass then touches
/// no byte of the cell: the line stays with the writers' cores, which reuse the
/// cell through the magazines (`recycle.rs`); a pass that read it (the home, a
/// prefetch) made each write after it wait for the line to come back (`docs/BENCHMARKS.md`,
/// "History", "Doomed rings that carry the home").
#[derive(Clone, Copy)]
pub(crate) struct Doomed {
    pub(crate) cell: NonNull<CellHead>,
    /// The cell's own home (`CellHead::home`).
    pub(crate) home: HomeRef,
}

// SAFETY: as `DoomedValue`'s: a doomed cell is owned by whoever holds its entry
// (moved from the releasing thread to a pass through a ring), and may be
// destroyed on any thread; `HomeRef` is `Send`.
unsafe impl Send for Doomed {}

/// Doomed cells taken off a list, linked through their dead count words (`push`),
/// owned by the taker: destroyed with [`destroy_each`](Self::destroy_each) once
/// their grace period is over.
pub(crate) struct DoomedChain(NonNull<CellHead>);

// SAFETY: as `DoomedValue`'s: the chain is owned (moved, never shared), and its
// cells may be destroyed on any thread.
unsafe impl Send for DoomedChain {}

impl DoomedChain {
    /// Destroys every value of the chain, each link read before its cell goes,
    /// and reports each one's outcome and home to `f`. Only after the grace period,
    /// as [`DoomedValue::destroy`].
    pub(crate) fn destroy_each(self, mut f: impl FnMut(DropOutcome, HomeRef)) {
        let mut next = Some(self.0);
        while let Some(cell) = next {
            // Soundness: the chain is ours (taken by `take_all`'s swap, moved since);
            // each cell is alive until destroyed just below, and its pointer is the
            // one pushed, with its provenance (the head as stored, the rest through
            // the exposed links). Relaxed: the link was published by the push's
            // Release, which the take's Acquire (and every hand-over of the chain
            // since, through the ripe stack) ordered before this read.
            // SAFETY: an owned, live cell of the chain (above).
            let link = unsafe { cell.as_ref().refs.load(Ordering::Relaxed) };
            debug_assert!(link & DOOMED != 0, "a doomed cell's link lost its tag");
            next = NonNull::new(decode_link(link));
            let (outcome, home) = DoomedValue(cell).destroy();
            f(outcome, home);
        }
    }
}

/// Doomed cells taken by one pass, on their way through the grace period: cells
/// from the stripes' rings (`doom_ring.rs`), as an array, and chains from the
/// stripes' lists.
#[derive(Default)]
pub(crate) struct DoomedBatch {
    cells: Vec<Doomed>,
    chains: Vec<DoomedChain>,
}

// SAFETY: as `DoomedValue`'s: the batch owns its cells (moved, never shared), and
// they may be destroyed on any thread.
unsafe impl Send for DoomedBatch {}

impl DoomedBatch {
    /// Where a ring's take puts its cells (`DoomRing::take_into`).
    pub(crate) fn cells(&mut self) -> &mut Vec<Doomed> {
        &mut self.cells
    }

    /// Adds a chain taken off a list.
    pub(crate) fn add_chain(&mut self, chain: DoomedChain) {
        self.chains.push(chain);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.chains.is_empty()
    }

    /// Destroys every value of the batch and reports the outcomes to `f`, as
    /// `(outcome, home, count)`: `count` values of `home` that all ended so. Only
    /// after the grace period, as [`DoomedValue::destroy`].
    ///
    /// A run of the array's cells whose map has no destructors and recycled cells
    /// (`Home::plain_cells`) goes back to this thread's magazines at once
    /// (`recycle::free_cells`), reported as one: no destroy function is called
    /// and no cell is touched. Measured under callgrind on the 1-thread Exchange
    /// mix (`--bench write_probe`, manual reclamation), with one call per cell a
    /// pass spent about 137 instructions per doomed value, 74 of them in this
    /// loop, its destroy calls and their frees (`docs/BENCHMARKS.md`, "History",
    /// "Plain cells freed a run at a time"). Runs are cut at `RUN` cells, so that
    /// the caller's count of values destroyed since it last relieved the rings
    /// (`Domain::reclaim_values`) stays near its step.
    ///
    /// The other cells are fetched `AHEAD` cells before they are destroyed when
    /// their destructor reads them: each is a line the releasing thread wrote
    /// last, a cross-core miss that the walk would otherwise wait for, one cell at
    /// a time.
    ///
    /// Returns an empty batch that keeps this one's array of cells, for a later
    /// pass: a pass's batch then grows its array only when it takes more cells
    /// than an earlier one did.
    pub(crate) fn destroy_each(self, mut f: impl FnMut(DropOutcome, HomeRef, usize)) -> Self {
        const AHEAD: usize = 8;
        let DoomedBatch {
            cells: mut array,
            chains,
        } = self;
        const RUN: usize = 256;
        // Only cells whose destructor reads them: the others are never touched here
        // (`Doomed`).
        let fetch = |doomed: &Doomed| {
            if doomed.home.get().destroy_reads_cells() {
                prefetch_line(doomed.cell.as_ptr().cast());
            }
        };
        let cells = &array[..];
        // Entries before `fetched` have been offered to `fetch`: each once, the
        // entries a run skipped never.
        let (mut i, mut fetched) = (0, 0);
        while let Some(&doomed) = cells.get(i) {
            fetched = fetched.max(i);
            while fetched < cells.len().min(i + AHEAD + 1) {
                fetch(&cells[fetched]);
                fetched += 1;
            }
            // Each cell was pushed once and is destroyed once, here (the batch owns
            // it, and is consumed); its entry carries its own home (`Domain::doom`),
            // which a debug build checks against the cell (a read the release
            // build avoids).
            if let Some(class) = doomed.home.get().plain_cells() {
                let run = cells[i..]
                    .iter()
                    .take(RUN)
                    .take_while(|d| d.home == doomed.home)
                    .count();
                let run_cells = &cells[i..i + run];
                let own_home = |d: &Doomed| {
                    // SAFETY: a live doomed cell (owned by the batch, freed below).
                    unsafe { d.cell.as_ref().home == d.home }
                };
                debug_assert!(run_cells.iter().all(own_home));
                // Soundness: `free_cells`' contract. Each cell is a ripe doomed cell
                // of `doomed.home`'s map: its entry's home is the cell's own, copied
                // from the cell by the release that doomed it (`ValueRef::doom_last`).
                // A home's cells are all made by `alloc_cell::<ValueCell<V, K>>`
                // (`TableRef::new`) for its map's one `K` and `V`, and its class is
                // the one `plain_cells` recorded for that very type, set only when
                // no part of it needs a drop (`HomeOwner::new`'s one caller,
                // `AtomicMap::from_builder`); the batch owns each once and is
                // consumed. The iterator only reads the batch's array.
                // SAFETY: ripe, owned, plain cells of `class` (above).
                unsafe { recycle::free_cells(class, run_cells.iter().map(|d| d.cell.cast())) };
                f(DropOutcome::Clean, doomed.home, run);
                i += run;
                continue;
            }
            // SAFETY: a live doomed cell (owned by the batch, destroyed just below).
            debug_assert!(unsafe { doomed.cell.as_ref().home } == doomed.home);
            let outcome = DoomedValue(doomed.cell).destroy_of(doomed.home);
            f(outcome, doomed.home, 1);
            i += 1;
        }
        for chain in chains {
            chain.destroy_each(|outcome, home| f(outcome, home, 1));
        }
        array.clear();
        DoomedBatch {
            cells: array,
            chains: Vec::new(),
        }
    }

    /// Moves the cells that a help leaves to the reclaimer into the returned
    /// batch, and keeps those it destroys: the help's split (`Domain::help`).
    /// A help keeps the cells whose destruction only frees memory (neither their
    /// map's key nor its value has a destructor: `Home::destroy_reads_cells`)
    /// and, with `destructors`, those of maps whose releasing threads run their
    /// destructors (`Home::helps_destroy`). Only for a batch of ring cells (no
    /// chains: a chain's cells are read to be walked).
    pub(crate) fn split_off_for_the_reclaimer(&mut self, destructors: bool) -> DoomedBatch {
        debug_assert!(self.chains.is_empty(), "a help takes no list");
        let mut others = DoomedBatch::default();
        // Each entry's home is alive: its cell is doomed, not destroyed (`HomeRef`).
        self.cells.retain(|doomed| {
            let home = doomed.home.get();
            let kept = !home.destroy_reads_cells() || (destructors && home.helps_destroy());
            if !kept {
                others.cells.push(*doomed);
            }
            kept
        });
        others
    }

    /// How many cells the batch's array has room for.
    pub(crate) fn room(&self) -> usize {
        self.cells.capacity()
    }
}

/// A multi-producer list of doomed cells linked through their dead count word, so
/// that dooming a value allocates nothing; the consumer takes all at once. A
/// domain keeps one per stripe (see `home.rs`), each alone on its cache line, so
/// that releasing threads do not write a common line.
#[repr(align(128))]
pub(crate) struct DoomedList {
    head: AtomicPtr<CellHead>,
}

impl DoomedList {
    pub(crate) fn new() -> Self {
        DoomedList {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The list's head, for `push`.
    pub(crate) fn head(&self) -> &AtomicPtr<CellHead> {
        &self.head
    }

    /// Tags the count word of a cell on its way into a `DoomRing` as doomed (a
    /// list's push tags it with the link instead).
    ///
    /// # Safety
    /// As for [`push`](Self::push): the cell's count has reached 0 and the caller
    /// gave up the last reference.
    #[inline]
    pub(crate) unsafe fn tag(cell: NonNull<CellHead>) {
        // SAFETY: the cell is alive and its count dead (the contract): the word is
        // ours to reuse.
        let refs = unsafe { &cell.as_ref().refs };
        // Release, as the list's link (`push` says why): a lock-free reader that
        // reads the tag as "unmapped" also sees the table's slot as the unmapping
        // writer left it. The tag makes a release or a retain after the last one
        // abort (`check_release`, `check_retain`).
        refs.store(DOOMED, Ordering::Release);
    }

    /// Links `cell` in at `head` (a `DoomedList`'s). Takes the atomic head rather
    /// than `&self`: the list (its padding included) may be freed with its domain
    /// before this call returns (see `Domain::submit`).
    ///
    /// # Safety
    /// `cell` heads a `ValueCell` of its home's `V` whose count has reached 0 (the
    /// caller gave up the last reference), with the provenance of the whole cell
    /// (the consumer destroys it through that pointer), handed to the list here.
    pub(crate) unsafe fn push(head: &AtomicPtr<CellHead>, cell: NonNull<CellHead>) {
        // SAFETY: the cell is alive (nothing destroys it before it is taken off the
        // list) and its count is dead, so the word is ours to reuse as the link: the
        // caller's contract. `link` is not used after the push.
        let link = unsafe { &cell.as_ref().refs };
        // Relaxed: the value read is only a guess for the CAS below.
        let mut current = head.load(Ordering::Relaxed);
        loop {
            // Release: pairs with the Acquire fence of a lock-free reader that reads
            // this word as "unmapped" (`ValueRef::retain_if_mapped`). The pusher's
            // Acquire fence (`release_units`) made the unmapping of the cell its own,
            // so a reader that sees the link also sees the table's slot as the
            // unmapping writer left it, and its next probe does not find this cell
            // again (a plain store would end the release sequence the reader relies
            // on). The list's own consumer is served by the exchange below. The link
            // shares the count word, so it travels as an address with exposed
            // provenance (taken back in `DoomedChain::destroy_each`), shifted right
            // by two so that its top bit is clear: a lock-free reader that reaches a
            // doomed cell through a stale table pointer reads the word as a count
            // without the table's bit, i.e. unmapped, and never raises it
            // (`ValueRef::retain_if_mapped`); and tagged `DOOMED`, so that a release
            // made after the last one aborts instead of changing the link. Cells
            // are aligned to at least 4 (checked above), so the shift loses nothing.
            link.store(encode_link(current), Ordering::Release);
            // Release on success: publishes the link (and the release of the value)
            // to the Acquire swap in `take_all`. Relaxed on failure: a new guess.
            match head.compare_exchange_weak(
                current,
                cell.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => current = now,
            }
        }
    }

    /// Everything pushed so far, as the chain it was pushed as: taken with one
    /// swap, not walked. (Walking it here into a `Vec`, as a first version did,
    /// read every cell's link on the reclaimer a grace period before the destroy
    /// walk read the cell again: two cold misses per value where one does; three
    /// quarters of the pass's samples in an upsert profile were that walk.)
    pub(crate) fn take_all(&self) -> Option<DoomedChain> {
        // Acquire: pairs with the Release of every push; the links are read by
        // `DoomedChain::destroy_each`.
        NonNull::new(self.head.swap(ptr::null_mut(), Ordering::Acquire)).map(DoomedChain)
    }

    /// Whether nothing is waiting (a racy reading).
    pub(crate) fn is_empty(&self) -> bool {
        // Relaxed: a hint; whoever acts on it re-checks with `take_all`.
        self.head.load(Ordering::Relaxed).is_null()
    }
}
