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
    static HANDLE: LocalHandle = {
        REGISTERED.with(|registered| registered.set(true));
        collector().register()
    };

    /// Whether this thread's `HANDLE` was made (this fork's): `epoch_stamp` and
    /// `pinned_no_later_than` read the participant only then, and never register
    /// a thread (a thread that only writes and clears never pins).
    static REGISTERED: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// `f` applied to this thread's handle if the thread is registered and its
/// handle not yet torn down (this fork's); `None` otherwise, without
/// registering it.
#[inline]
fn with_registered_handle<R>(f: impl FnOnce(&LocalHandle) -> R) -> Option<R> {
    if REGISTERED.try_with(|registered| registered.get()) != Ok(true) {
        return None;
    }
    HANDLE.try_with(f).ok()
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
/// epoch if it never pinned, or is not registered: this call registers no
/// thread): a point no later than the global epoch now, read from the thread's
/// own participant, with no load of the global epoch's line. Garbage this
/// thread defers from now on, or any thread defers after it has seen what this
/// thread does next, is sealed in this epoch or a later one. (This fork's.)
#[inline]
pub fn epoch_stamp() -> EpochStamp {
    EpochStamp(
        with_registered_handle(|handle| handle.local_epoch()).unwrap_or_else(Epoch::starting),
    )
}

/// Whether garbage sealed at `stamp` or later can no longer be reclaimed
/// before the current thread unpins: the thread is pinned, at `stamp`'s epoch
/// or before it, and the global epoch (read after a `SeqCst` fence) is less
/// than two past `stamp`. A visible pin keeps the global epoch from passing the
/// pin's epoch by more than one, and a bag is reclaimed only two epochs after
/// its seal. The second condition covers a pin whose epoch was read stale (its
/// thread preempted between its load of the global epoch and its store): the
/// epoch may have moved on two or more before the pin counted. What it cannot
/// cover is an advance that scanned the participants before this pin counted
/// and stores its epoch after this call, which can move the global epoch one
/// past what this call read: a wrong `true` needs both races at once. A pin
/// taken later than `stamp` may or may not hold such garbage up (it does if the
/// epoch has not moved since), so `false` promises nothing. Registers no
/// thread. (This fork's.)
#[inline]
pub fn pinned_no_later_than(stamp: EpochStamp) -> bool {
    with_registered_handle(|handle| handle_pinned_no_later_than(handle, stamp)).unwrap_or(false)
}

/// [`pinned_no_later_than`] for `handle`'s participant.
#[inline]
fn handle_pinned_no_later_than(handle: &LocalHandle, stamp: EpochStamp) -> bool {
    handle.pinned_epoch().is_some_and(|pinned| {
        stamp.0.wrapping_sub(pinned) >= 0 && {
            // SeqCst: orders the load below after this thread's pin (its store
            // and fence, made before this call), so that it reads the global
            // epoch no older than any advance that saw the pin did; the
            // check is a diagnostic, off every hot path.
            crate::primitive::sync::atomic::fence(crate::primitive::sync::atomic::Ordering::SeqCst);
            handle.global_epoch().wrapping_sub(stamp.0) < 2
        }
    })
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

    use super::{
        epoch_stamp, handle_pinned_no_later_than, pin, pinned_no_later_than, EpochStamp, REGISTERED,
    };
    use crate::Collector;

    /// A pin is "no later than" a stamp taken while it is held, not than one
    /// taken before the epoch moved on to it; an unpinned thread is never.
    /// (This fork's.)
    #[test]
    fn a_pin_is_no_later_than_a_stamp_it_predates() {
        let collector = Collector::new();
        let handle = collector.register();
        assert!(
            !handle_pinned_no_later_than(&handle, EpochStamp(handle.local_epoch())),
            "unpinned"
        );
        // The only participant: each flush advances the epoch, and the last
        // leaves the global epoch one past the participant's.
        for _ in 0..4 {
            handle.pin().flush();
        }
        let before = EpochStamp(handle.local_epoch());
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

    /// A thread that never pinned is stamped with the starting epoch and found
    /// unpinned, and stays unregistered; once it pins, it is found pinned no
    /// later than its own stamp. (This fork's.)
    #[test]
    fn stamps_register_no_thread() {
        std::thread::spawn(|| {
            let stamp = epoch_stamp();
            assert_eq!(stamp, EpochStamp(crate::epoch::Epoch::starting()));
            assert!(!pinned_no_later_than(stamp));
            assert!(
                !REGISTERED.with(|r| r.get()),
                "a stamp registered the thread"
            );
            let _guard = pin();
            assert!(REGISTERED.with(|r| r.get()));
            assert!(pinned_no_later_than(epoch_stamp()));
        })
        .join()
        .unwrap();
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
