//! `DoomedValues`: values whose last reference is gone, on their way to destruction.
//!
//! Releasing a value's last reference (a dropped handle after a `remove`, a C
//! release) must not free it at once: a reader pinned in the epoch may have loaded
//! the pointer just before the value was unlinked. Handing the free to
//! crossbeam-epoch from the releasing thread has two faults: the closure waits in
//! that thread's private bag until the thread pins again (a thread of a pool that
//! goes idle, a Go runtime thread, can keep it there forever), and it runs on
//! whichever thread collects, often a reader. So the releasing thread only pushes
//! the value here (O(1), lock-free), and the reclaimer moves values through three
//! steps:
//!
//! 1. **doomed**: pushed by releasing threads;
//! 2. each pass takes the doomed values as one batch and defers, through the epoch,
//!    a closure that only moves the batch to **ripe**, then flushes its own bag so
//!    that any thread's collection (its own next pass included) can run it: the
//!    grace period starts after the values were unlinked, so every reader that
//!    could see them has unpinned by the time the batch is ripe;
//! 3. each pass destroys the **ripe** batches, on the reclaimer.
//!
//! Readers therefore never run a value's destructor, and progress never depends on
//! a thread that stopped calling into the map: a domain always has a thread or a
//! program running its passes (a manual domain whose users are gone is adopted by
//! the process-wide one, see `domain.rs`).

use std::ptr::NonNull;

use super::home::HomeRef;
use super::report::DropOutcome;

/// A value cell to destroy, type-erased.
pub(crate) struct DoomedValue {
    cell: NonNull<()>,
    destroy: unsafe fn(NonNull<()>) -> (DropOutcome, HomeRef),
}

// SAFETY: a doomed value is owned by the list or batch holding it; the cell's `V`
// is `Send + Sync` (required by every map), so destroying it on another thread is
// sound.
unsafe impl Send for DoomedValue {}

impl DoomedValue {
    /// # Safety
    /// `destroy(cell)` must be sound to call once, after a grace period.
    pub(crate) unsafe fn new(
        cell: NonNull<()>,
        destroy: unsafe fn(NonNull<()>) -> (DropOutcome, HomeRef),
    ) -> Self {
        DoomedValue { cell, destroy }
    }

    /// Destroys the value. Only after the grace period (a ripe batch). Returns how
    /// its destructor ended and the home of its map, for the accounting.
    pub(crate) fn destroy(self) -> (DropOutcome, HomeRef) {
        // SAFETY: `new`'s contract; a ripe batch is past its grace period, and a
        // doomed value is destroyed once (this consumes it).
        unsafe { (self.destroy)(self.cell) }
    }
}
