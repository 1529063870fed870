//! The small types every step of the reclamation path reports with. A leaf: it
//! imports nothing of the crate, so that the value cell, the jobs, the domain and
//! the per-map accounts can all use it without an import circle.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// How a value's (or key's) destructor ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropOutcome {
    Clean,
    /// The destructor panicked; the panic was contained and counted.
    Panicked,
}

/// What one teardown of a retired table did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TeardownReport {
    /// Entries the table held.
    pub(crate) entries: usize,
    /// Values destroyed (the others are still held by handles or C retains).
    pub(crate) destroyed: usize,
    /// Destructors (of keys or values) that panicked; each panic was contained.
    pub(crate) panics: usize,
}

impl TeardownReport {
    /// Adds what another slice of the same teardown did.
    pub(crate) fn add(&mut self, other: TeardownReport) {
        self.entries += other.entries;
        self.destroyed += other.destroyed;
        self.panics += other.panics;
    }

    /// Records the end of one value's release: `None` if a holder remains.
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

/// Prints `msg` and aborts: used where continuing would corrupt memory.
pub(crate) fn abort_with(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::abort()
}
