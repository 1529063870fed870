//! `amap_reclaimer_t`: a reclaimer of the caller's own, shared by the maps built on
//! it (`amap_new_with_reclaimer`), so that slow destructors delay no other map.

use std::time::Duration;

use atomic_map::Reclaimer;

use crate::args::{arg, free_boxed, out};
use crate::error::amap_status_t;
use crate::map::{AMAP_RECLAIM_BACKGROUND, AMAP_RECLAIM_MANUAL};
use crate::panic::guard;

/// A reclaimer: what tears down the retired generations and runs the value
/// destructors of the maps built on it with `amap_new_with_reclaimer`. By default
/// every map uses the process-wide reclaimer (one thread for the whole process); a
/// map whose destructors are slow (they take locks, do I/O) can be given one of its
/// own, shared with whichever maps the caller chooses, so that its destructors
/// never delay other maps' reclamation, and theirs never delay it.
///
/// Obtained from `amap_reclaimer_new`; owned by the caller, who frees it with
/// `amap_reclaimer_free` (the maps given it keep it alive meanwhile).
/// Thread-safe: every function taking an `amap_reclaimer_t *` may be called from
/// any number of threads at once, except `amap_reclaimer_free`, which must be the
/// caller's last call on it.
#[allow(non_camel_case_types)]
pub struct amap_reclaimer_t {
    pub(crate) reclaimer: Reclaimer,
}

/// A new reclaimer, written to `*out_reclaimer`. `mode`: `AMAP_RECLAIM_BACKGROUND`
/// (a thread of its own, named `atomic-map-reclaim`, which runs the destructors of
/// the values of its maps; parked when idle) or `AMAP_RECLAIM_MANUAL` (no thread:
/// destructors run on the threads that call `amap_reclaimer_reclaim`,
/// `amap_reclaimer_flush`, `amap_reclaim`, `amap_flush` or `amap_ticket_wait` on it
/// or its maps). Any other `mode` is `AMAP_INVALID_ARGUMENT`; `AMAP_PANIC` if the
/// thread could not be started.
///
/// Ownership: the caller owns `*out_reclaimer` and frees it with
/// `amap_reclaimer_free`.
///
/// # Safety
/// `out_reclaimer` must be `NULL` or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_reclaimer_new(
    mode: u32,
    out_reclaimer: *mut *mut amap_reclaimer_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let out_reclaimer = unsafe { out(out_reclaimer) }?;
        let reclaimer = match mode {
            AMAP_RECLAIM_BACKGROUND => Reclaimer::new(),
            AMAP_RECLAIM_MANUAL => Reclaimer::manual(),
            _ => return Err(amap_status_t::AMAP_INVALID_ARGUMENT),
        };
        out_reclaimer.set(Box::into_raw(Box::new(amap_reclaimer_t { reclaimer })));
        Ok(())
    })
}

/// Runs one reclamation pass on the calling thread, for every map of this
/// reclaimer (live or freed): tears down every retired generation nobody holds any
/// more, starts the grace period of values released since the last pass and
/// destroys those past theirs (their destructors run on this thread). Writes the
/// number of generations torn down to `*out_count` (may be `NULL`). Needed in
/// `AMAP_RECLAIM_MANUAL` mode, where nothing else runs passes; with a background
/// reclaimer it writes 0 at once while the thread is in a pass of its own. From a
/// destructor run by this reclaimer it writes 0 and returns `AMAP_OK`.
///
/// A cleared generation waits for a grace period (read sections may still be in
/// it): when no other thread is pinned meanwhile (a read section, another
/// reclaimer's pass, such as the process-wide one's), one call tears it down;
/// otherwise a later call does. In manual mode, call this periodically rather
/// than once.
///
/// Ownership: `reclaimer` is only borrowed.
///
/// # Safety
/// `reclaimer` must be `NULL` or a live reclaimer; `out_count` `NULL` or valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_reclaimer_reclaim(
    reclaimer: *const amap_reclaimer_t,
    out_count: *mut usize,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let reclaimer = unsafe { arg(reclaimer) }?;
        let count = reclaimer.reclaimer.reclaim();
        // SAFETY: `out_count` is `NULL` or valid for a write (the contract).
        unsafe { write_count(out_count, count) };
        Ok(())
    })
}

/// Destroys everything released to this reclaimer and not yet destroyed, then
/// returns, as `amap_flush` does for a map's reclaimer: every retired generation
/// no snapshot or read section holds any more and every value whose last holder
/// let go, of every map of this reclaimer, freed maps included (manual mode: the
/// passes run on this thread; background mode: this waits for the thread's).
/// `AMAP_OK` once done, `AMAP_TIMED_OUT` if `timeout_ms` passed first (a read
/// section open on some thread holds grace periods up), `AMAP_WOULD_DEADLOCK` at
/// once from a destructor that this reclaimer is running.
///
/// Ownership: `reclaimer` is only borrowed.
///
/// # Safety
/// `reclaimer` must be `NULL` or a live reclaimer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_reclaimer_flush(
    reclaimer: *const amap_reclaimer_t,
    timeout_ms: u32,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let reclaimer = unsafe { arg(reclaimer) }?;
        flush(&reclaimer.reclaimer, timeout_ms)
    })
}

/// Frees the caller's handle on the reclaimer. The maps built on the reclaimer
/// keep using it. A background reclaimer's thread exits by itself once no handle
/// and no map of it is left and the last value of its maps is destroyed (values
/// retained by C, snapshots and read sections keep it running until they let go);
/// this does not wait for that. A manual reclaimer whose maps are all freed runs
/// its last passes here, on the calling thread (destructors included), and hands
/// whatever is still held to the process-wide reclaimer. Call
/// `amap_reclaimer_flush` first to have everything released destroyed before the
/// program exits. `NULL` is a no-op.
///
/// # Safety
/// `reclaimer` must be `NULL` or a reclaimer from `amap_reclaimer_new` that no other
/// thread uses any more; it is invalid afterwards (maps created with it stay
/// valid).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_reclaimer_free(reclaimer: *mut amap_reclaimer_t) {
    // SAFETY: `NULL` or a reclaimer from `amap_reclaimer_new` (`Box::into_raw`'s) that no
    // other thread uses any more (the contract).
    unsafe { free_boxed(reclaimer) }
}

/// `reclaimer.flush(timeout_ms)` as a status: what `amap_flush` and
/// `amap_reclaimer_flush` return.
pub(crate) fn flush(reclaimer: &Reclaimer, timeout_ms: u32) -> Result<(), amap_status_t> {
    if reclaimer.in_pass() {
        return Err(amap_status_t::AMAP_WOULD_DEADLOCK);
    }
    if reclaimer.flush(Duration::from_millis(u64::from(timeout_ms))) {
        Ok(())
    } else {
        Err(amap_status_t::AMAP_TIMED_OUT)
    }
}

/// Writes `count` to `out_count` unless it is `NULL`: what `amap_reclaim` and
/// `amap_reclaimer_reclaim` report.
///
/// # Safety
/// `out_count` must be `NULL` or valid for a write.
pub(crate) unsafe fn write_count(out_count: *mut usize, count: usize) {
    if !out_count.is_null() {
        // SAFETY: non-null, valid for a write by the caller's contract.
        unsafe { out_count.write(count) };
    }
}
