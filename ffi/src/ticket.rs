//! `amap_ticket_t`: the caller's ticket for a generation retired by
//! `amap_clear_async` or `amap_replace`.

use std::ffi::c_void;
use std::time::Duration;

use atomic_map::Retired;

use crate::args::{arg, free_boxed, out};
use crate::error::amap_status_t;
use crate::panic::guard;

/// A ticket for one retired generation: tells whether, and waits until, the
/// generation has been torn down (its table walked, and every value it alone held
/// destroyed). Values still retained elsewhere survive the teardown.
///
/// Obtained from `amap_clear_async` or `amap_replace`; owned by the caller, who
/// frees it with `amap_ticket_free`. A ticket does not hold its generation (it does
/// not delay the teardown) and does not need the map: it stays valid after
/// `amap_free`. Thread-safe: `amap_ticket_wait`, `amap_ticket_is_reclaimed` and
/// `amap_ticket_id` may be called on one ticket from several threads at once;
/// `amap_ticket_free` must be the last call on it.
#[allow(non_camel_case_types)]
pub struct amap_ticket_t {
    retired: Retired,
}

/// Hands `retired` to the caller through `out_ticket`, if the caller wants it
/// (`out_ticket` not `NULL`); otherwise nothing is allocated.
///
/// # Safety
/// `out_ticket` must be `NULL` or valid for a write.
pub(crate) unsafe fn hand_out(retired: Retired, out_ticket: *mut *mut amap_ticket_t) {
    if !out_ticket.is_null() {
        let ticket = Box::into_raw(Box::new(amap_ticket_t { retired }));
        // SAFETY: non-null, and valid for a write by the caller's contract.
        unsafe { out_ticket.write(ticket) };
    }
}

/// Waits until the ticket's generation has been torn down, or `timeout_ms`
/// milliseconds have passed (`timeout_ms < 0` waits without limit; 0 checks once,
/// in manual mode after one reclamation pass). Returns `AMAP_OK` once torn down,
/// `AMAP_TIMED_OUT` otherwise.
///
/// In background mode this wakes the reclaimer thread; in manual mode the waiting
/// thread runs the reclamation itself (destructors included). The generation is
/// torn down only after its last snapshot (and the last read section begun on
/// one, `amap_snapshot_read_begin`) has ended and a grace period has passed,
/// which every read section of every map holds up (and every `amap_get_with`
/// callback or foreach walk while it runs): waiting without limit while this
/// thread is in one never returns.
///
/// Where waiting could never end, it returns at once, whatever `timeout_ms`:
/// `AMAP_OK` if the generation was already torn down, `AMAP_WOULD_DEADLOCK`
/// otherwise. It never blocks or aborts there. That is:
/// * inside a value's destructor run by the same reclaimer (a destructor waiting
///   for a teardown that cannot finish while it waits);
/// * inside a callback that the ticket's own map runs under one of its shard
///   locks (`amap_retain`'s `keep`, `amap_compute`'s callback; since 0.8.1): the
///   release of the map's retired generations takes each of its shard locks
///   first, so the wait would never end if that has not happened yet (and once
///   it has, the wait is refused all the same, whatever the reclaimer's
///   progress). Found in the outermost four such callbacks nested on the thread
///   (one writing to another map, and so on), not deeper;
/// * on a thread in a read section (or callback, or walk) whose pin holds the
///   teardown up: one begun before the clear or replace that made the ticket, if
///   that clear was made on this thread; for another thread's clear, one whose
///   epoch is no later than that thread's last pin before the clear (its last
///   read, read section or reclamation pass), while the epoch has not moved two
///   past it. A snapshot of the retired generation, a read section begun on one
///   (which holds the generation itself), or a read section the check does not
///   find, is not detected: there a wait without limit may never
///   return. (A refusal can be wrong in one case, two races at once: the read
///   section's pin preempted between its read of the epoch and its store, and an
///   advance of the epoch that completes after the check.)
///
/// Ownership: `ticket` is only borrowed; it stays the caller's.
///
/// # Safety
/// `ticket` must be `NULL` or a live ticket.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_ticket_wait(
    ticket: *const amap_ticket_t,
    timeout_ms: i64,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let ticket = unsafe { arg(ticket) }?;
        // A negative timeout is `Duration::MAX`, not `Retired::wait`: it waits just
        // as long (no deadline can be computed, so there is none), but from inside a
        // destructor of the same reclaimer it returns at once instead of panicking.
        let timeout = u64::try_from(timeout_ms).map_or(Duration::MAX, Duration::from_millis);
        if ticket.retired.would_wait_for_itself() {
            return Err(amap_status_t::AMAP_WOULD_DEADLOCK);
        }
        if ticket.retired.wait_timeout(timeout) {
            Ok(())
        } else {
            Err(amap_status_t::AMAP_TIMED_OUT)
        }
    })
}

/// Writes whether the ticket's generation has been torn down to `*out_reclaimed`
/// (1 or 0). Never blocks and runs no reclamation.
///
/// Ownership: `ticket` is only borrowed.
///
/// # Safety
/// `ticket` must be `NULL` or a live ticket; `out_reclaimed` `NULL` or valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_ticket_is_reclaimed(
    ticket: *const amap_ticket_t,
    out_reclaimed: *mut u8,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (ticket, out_reclaimed) = unsafe { (arg(ticket)?, out(out_reclaimed)?) };
        out_reclaimed.set(u8::from(ticket.retired.is_reclaimed()));
        Ok(())
    })
}

/// Writes the id of the ticket's generation to `*out_id`: the map's first
/// generation is 0, and each clear or replace publishes the next, so the ticket of
/// the n-th clear or replace of a map has id n - 1 (`amap_stats` gives the current
/// generation's id).
///
/// Ownership: `ticket` is only borrowed.
///
/// # Safety
/// `ticket` must be `NULL` or a live ticket; `out_id` `NULL` or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_ticket_id(
    ticket: *const amap_ticket_t,
    out_id: *mut u64,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (ticket, out_id) = unsafe { (arg(ticket)?, out(out_id)?) };
        out_id.set(ticket.retired.id());
        Ok(())
    })
}

/// Called by `amap_ticket_on_reclaimed` once the ticket's generation has been
/// torn down, with the caller's `user` pointer.
#[allow(non_camel_case_types)]
pub type amap_reclaimed_fn = Option<unsafe extern "C" fn(user: *mut c_void)>;

/// What `amap_ticket_on_reclaimed` registers: the callback and its `user`.
struct OnReclaimed {
    callback: unsafe extern "C" fn(user: *mut c_void),
    user: *mut c_void,
}

// SAFETY: the contract of `amap_ticket_on_reclaimed`: `user` must be usable from
// any thread, and `callback` may run on any thread (the header says so). Rust
// never dereferences `user`; it only passes it to `callback`, once.
unsafe impl Send for OnReclaimed {}

impl OnReclaimed {
    /// Calls the callback, once (it consumes the registration).
    fn call(self) {
        // SAFETY: the callback's validity on any thread, with `user`, is the
        // caller's contract (`amap_ticket_on_reclaimed`).
        unsafe { (self.callback)(self.user) }
    }
}

/// Calls `callback(user)` once the ticket's generation has been torn down (0.9.0),
/// without a thread waiting for it: for event loops, and for bindings that turn
/// it into a future or a channel (Go's `Ticket.Done`). If the generation is
/// already torn down, the callback runs at once, on the calling thread, before
/// this returns (so do not register while holding a lock the callback takes);
/// otherwise on the thread that tears it down, right after: where the map's
/// value destructors run (`amap_dtor_fn`), and also on a thread calling
/// `amap_reclaim` on a background map while its reclaimer is between passes.
/// Returns `AMAP_OK`, or `AMAP_NULL_ARGUMENT` for a `NULL` ticket or callback
/// (nothing registered).
///
/// The registration belongs to the generation, not to the ticket: the ticket may
/// be freed right after this returns, and each call registers one more callback.
/// Nothing here runs a pass: in manual mode the callback waits for the program's
/// next one. If the generation is never torn down (a snapshot of it, or a read
/// section begun on one, held until exit), the callback never runs, and nothing
/// gives `user` back: free what it points to only after the callback.
///
/// Run by the teardown, the callback is held to a value destructor's rules: keep
/// it short (the reclaimer's other work waits meanwhile); `amap_ticket_wait` and
/// `amap_flush` for the same reclaimer return `AMAP_WOULD_DEADLOCK` there; it
/// must not use a map that is being freed by the `amap_free` running it; it
/// must return normally (no C++ exception, no `longjmp`).
///
/// Waiting for what the callback signals (a condition variable, a pipe) gets
/// none of `amap_ticket_wait`'s refusals: done where that wait returns
/// `AMAP_WOULD_DEADLOCK` (in a destructor of the same reclaimer, in a callback
/// under the map's shard lock, in a read section begun before the clear), it
/// never ends.
///
/// Ownership: `ticket` is only borrowed. `user` is passed through untouched; it
/// must stay valid until the callback has run, and the callback may run on any
/// thread.
///
/// # Safety
/// `ticket` must be `NULL` or a live ticket; `callback` `NULL` or a function that
/// may be called with `user` on any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_ticket_on_reclaimed(
    ticket: *const amap_ticket_t,
    callback: amap_reclaimed_fn,
    user: *mut c_void,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let ticket = unsafe { arg(ticket) }?;
        let callback = callback.ok_or(amap_status_t::AMAP_NULL_ARGUMENT)?;
        let registered = OnReclaimed { callback, user };
        // A method call, so that the closure captures the whole registration
        // (`Send`), not its fields. It runs once: `on_reclaimed` takes a `FnOnce`.
        ticket.retired.on_reclaimed(move || registered.call());
        Ok(())
    })
}

/// Frees a ticket. The generation is unaffected: it is torn down all the same,
/// ticket or not. `NULL` is a no-op.
///
/// # Safety
/// `ticket` must be `NULL` or a live ticket that no other thread uses any more; it
/// is invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_ticket_free(ticket: *mut amap_ticket_t) {
    // SAFETY: `NULL` or a live ticket from `hand_out` (`Box::into_raw`'s) that no other
    // thread uses any more (the contract).
    unsafe { free_boxed(ticket) }
}
