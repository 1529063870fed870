//! The default garbage collector.
//!
//! For each thread, a participant is lazily initialized on its first use, when the current thread
//! is registered in the default collector.  If initialized, the thread's participant will get
//! destructed on thread exit, which in turn unregisters the thread.

use crate::collector::{Collector, LocalHandle};
use crate::epoch::Epoch;
use crate::guard::Guard;
use crate::primitive::thread_local;
#[cfg(not(crossbeam_loom))]
use crate::sync::once_lock::OnceLock;

fn collector() -> &'static Collector {
    #[cfg(not(crossbeam_loom))]
    {
        /// The global data for the default garbage collector.
        static COLLECTOR: OnceLock<Collector> = OnceLock::new();
        COLLECTOR.get_or_init(Collector::new)
    }
    // FIXME: loom does not currently provide the equivalent of Lazy:
    // https://github.com/tokio-rs/loom/issues/263
    #[cfg(crossbeam_loom)]
    {
        loom::lazy_static! {
            /// The global data for the default garbage collector.
            static ref COLLECTOR: Collector = Collector::new();
        }
        &COLLECTOR
    }
}

thread_local! {
    /// The per-thread participant for the default garbage collector.
    static HANDLE: LocalHandle = collector().register();
}

/// Pins the current thread.
#[inline]
pub fn pin() -> Guard {
    with_handle(|handle| handle.pin())
}

/// Returns `true` if the current thread is pinned.
#[inline]
pub fn is_pinned() -> bool {
    with_handle(|handle| handle.is_pinned())
}

/// Whether a flush by the current thread would now interrupt other threads: see
/// [`LocalHandle::flush_would_interrupt`]. (This fork's, `asymmetric.rs`.)
#[inline]
pub fn flush_would_interrupt() -> bool {
    with_handle(|handle| handle.flush_would_interrupt())
}

/// A point in the default collector's epochs, as [`epoch_stamp`] takes it: for
/// [`pinned_no_later_than`]. (This fork's.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochStamp(Epoch);

/// The epoch the current thread is pinned at, or last pinned at (the starting
/// epoch if it never pinned): a point no later than the global epoch now, read
/// from the thread's own participant, with no load of the global epoch's line.
/// Garbage this thread defers from now on, or any thread defers after it has
/// seen what this thread does next, is sealed in this epoch or a later one.
/// (This fork's.)
#[inline]
pub fn epoch_stamp() -> EpochStamp {
    EpochStamp(with_handle(|handle| handle.local_epoch()))
}

/// Whether the current thread is pinned, at `stamp`'s epoch or before it. Then
/// garbage sealed at `stamp` or later cannot be reclaimed before this thread
/// unpins: the global epoch cannot pass the pin's epoch by more than one, and a
/// bag is reclaimed only two epochs after its seal. A pin taken later than
/// `stamp` may or may not hold such garbage up (it does if the epoch has not
/// moved since), so `false` promises nothing. (This fork's.)
#[inline]
pub fn pinned_no_later_than(stamp: EpochStamp) -> bool {
    with_handle(|handle| handle_pinned_no_later_than(handle, stamp))
}

/// [`pinned_no_later_than`] for `handle`'s participant.
#[inline]
fn handle_pinned_no_later_than(handle: &LocalHandle, stamp: EpochStamp) -> bool {
    handle
        .pinned_epoch()
        .is_some_and(|pinned| stamp.0.wrapping_sub(pinned) >= 0)
}

/// Returns the default global collector.
pub fn default_collector() -> &'static Collector {
    collector()
}

#[inline]
fn with_handle<F, R>(mut f: F) -> R
where
    F: FnMut(&LocalHandle) -> R,
{
    HANDLE
        .try_with(|h| f(h))
        .unwrap_or_else(|_| f(&collector().register()))
}

#[cfg(all(test, not(crossbeam_loom)))]
mod tests {
    use crossbeam_utils::thread;

    use super::{handle_pinned_no_later_than, EpochStamp};
    use crate::Collector;

    /// A pin is "no later than" a stamp taken while it is held, not than one
    /// taken before the epoch moved on to it; an unpinned thread is never.
    /// (This fork's.)
    #[test]
    fn a_pin_is_no_later_than_a_stamp_it_predates() {
        let collector = Collector::new();
        let handle = collector.register();
        let before = EpochStamp(handle.local_epoch());
        assert!(!handle_pinned_no_later_than(&handle, before), "unpinned");
        // The only participant: each flush advances the epoch.
        for _ in 0..4 {
            handle.pin().flush();
        }
        let guard = handle.pin();
        let now = EpochStamp(handle.local_epoch());
        assert_ne!(now, before, "the epoch moved on");
        assert!(
            !handle_pinned_no_later_than(&handle, before),
            "pinned after `before`"
        );
        assert!(handle_pinned_no_later_than(&handle, now), "pinned at `now`");
        let nested = handle.pin();
        assert!(
            handle_pinned_no_later_than(&handle, now),
            "a nested pin keeps the epoch"
        );
        drop((guard, nested));
        assert!(!handle_pinned_no_later_than(&handle, now), "unpinned again");
    }

    #[test]
    fn pin_while_exiting() {
        struct Foo;

        impl Drop for Foo {
            fn drop(&mut self) {
                // Pin after `HANDLE` has been dropped. This must not panic.
                super::pin();
            }
        }

        std::thread_local! {
            static FOO: Foo = const { Foo };
        }

        thread::scope(|scope| {
            scope.spawn(|_| {
                // Initialize `FOO` and then `HANDLE`.
                FOO.with(|_| ());
                super::pin();
                // At thread exit, `HANDLE` gets dropped first and `FOO` second.
            });
        })
        .unwrap();
    }
}
