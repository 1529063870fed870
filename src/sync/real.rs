//! The production side of the shim: `std`, `arc-swap`, `crossbeam-epoch`, `dashmap`.

pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence,
};
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
pub(crate) use std::thread_local;

/// Threads: spawning the background reclaimer and parking it between passes.
pub(crate) mod thread {
    pub(crate) use std::thread::{Builder, JoinHandle, current, park_timeout};
}

/// The slot holding the current generation: `arc_swap::ArcSwap`.
pub(crate) type Slot<T> = arc_swap::ArcSwap<T>;
/// A cheap, short-lived load of the slot (one of arc-swap's per-thread debt slots).
pub(crate) type SlotGuard<T> = arc_swap::Guard<std::sync::Arc<T>>;

/// Epoch-based deferral of frees: `crossbeam_epoch`'s default collector.
pub(crate) mod epoch {
    pub(crate) use crossbeam_epoch::{Guard, pin};
}
