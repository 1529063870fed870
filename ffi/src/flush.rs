//! `amap_flush`: destroy everything released and not yet destroyed, before exit.

use atomic_map::Reclaimer;

use crate::error::amap_status_t;
use crate::map::amap_t;
use crate::panic::guard;
use crate::reclaimer::flush;

/// Destroys everything released so far and not yet destroyed, then returns: every
/// retired generation no snapshot or read section holds any more, and every value
/// whose last holder let go (past its grace period), including values of maps
/// already freed. With `map` `NULL`, for the process-wide reclaimer, which serves
/// every map in `AMAP_RECLAIM_BACKGROUND` mode and finishes the work of freed
/// `AMAP_RECLAIM_MANUAL` maps; with a map, for that map's reclaimer (on the calling
/// thread in manual mode).
///
/// Without it, the background thread destroys such values within a few of its
/// passes (it sleeps at most 16 ms between them), but a process that exits first
/// never runs their destructors: call this before `exit` when destructors have
/// effects outside the process (files, sockets) or a leak checker looks.
///
/// Returns `AMAP_OK` once done, `AMAP_TIMED_OUT` if `timeout_ms` passed first (a
/// read section left open on some thread holds grace periods up), and
/// `AMAP_WOULD_DEADLOCK` at once when called from a destructor that the same
/// reclaimer is running (its pass cannot finish while the destructor waits).
///
/// # Safety
/// `map` must be `NULL` or a live map.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_flush(map: *const amap_t, timeout_ms: u32) -> amap_status_t {
    guard(|| {
        let reclaimer = if map.is_null() {
            Reclaimer::process_wide()
        } else {
            // SAFETY: non-null, so a live map by the contract.
            let map = unsafe { &*map };
            map.map.reclaimer()
        };
        flush(&reclaimer, timeout_ms)
    })
}
