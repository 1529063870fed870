//! Values as C sees them: a `void *data` with a destructor, held through
//! `amap_value_t` pointers that carry one reference each.

use std::ffi::c_void;

use atomic_map::ValueRef;

use crate::error::amap_status_t;
use crate::panic::{guard, guard_or};

/// A value's destructor: called exactly once with the `data` and `ctx` given to
/// `amap_insert`, after the last of every generation holding the value, every
/// retain and every read section or callback that could see it. It runs on the
/// map's reclaimer: in background mode the process-wide reclaimer thread
/// (`atomic-map-reclaim`, one for the whole process, shared by every map, before
/// and after `amap_free`); in manual mode a thread calling `amap_reclaim`,
/// `amap_ticket_wait` or `amap_free`, and after `amap_free` of a manual map the
/// process-wide reclaimer thread; for a map made by `amap_new_with_reclaimer`, that
/// reclaimer's own thread (background) or a thread calling it or one of its maps
/// (manual: also `amap_reclaimer_reclaim`, `amap_reclaimer_flush`, and the
/// `amap_reclaimer_free` that drops its last user). Never on a thread that merely
/// reads or releases, unless the map was built with
/// `amap_options_t.destructors_on_releasing_threads`: then also on the thread
/// that released the value, in a later releasing call (background mode; see
/// there).
/// A value of a batch that is never published is destroyed by the thread
/// calling `amap_batch_free` (or the `amap_replace` that failed).
/// A slow destructor delays the reclamation of the other maps on its reclaimer:
/// give maps with slow destructors a reclaimer of their own. It may
/// call into the same map (insert, get, remove, clear), except
/// while that map is being freed by `amap_free`. May be `NULL` for values that need
/// no destructor.
#[allow(non_camel_case_types)]
pub type amap_dtor_fn = Option<unsafe extern "C" fn(data: *mut c_void, ctx: *mut c_void)>;

/// The Rust side of a C value.
pub(crate) struct CValue {
    pub(crate) data: *mut c_void,
    dtor: amap_dtor_fn,
    ctx: *mut c_void,
}

// SAFETY: the C contract of `amap_insert`: `data` and `ctx` must be usable from any
// thread, and `dtor` may run on any thread (the header says so). Rust never
// dereferences `data` or `ctx`; it only copies them and calls `dtor` once.
unsafe impl Send for CValue {}
// SAFETY: as above; through `&CValue` Rust only copies the pointers.
unsafe impl Sync for CValue {}

impl CValue {
    pub(crate) fn new(data: *mut c_void, dtor: amap_dtor_fn, ctx: *mut c_void) -> Self {
        CValue { data, dtor, ctx }
    }

    /// Gives the value back to C without calling its destructor: for a call that
    /// took nothing (`amap_try_insert` on a present key).
    pub(crate) fn give_back(self) {
        std::mem::forget(self);
    }
}

impl Drop for CValue {
    fn drop(&mut self) {
        if let Some(dtor) = self.dtor {
            // Soundness: the destructor and its arguments come from `amap_insert`,
            // whose contract makes this call valid once, on any thread, once nothing
            // uses `data` any more (the map drops a `CValue` in `ValueRef::destroy`:
            // count 0, no reader left); `Drop` runs once.
            // SAFETY: amap_insert's contract, called once with nothing using `data` (above).
            unsafe { dtor(self.data, self.ctx) }
        }
    }
}

/// A retained value: the pointer itself carries one reference.
///
/// Obtained from `amap_get`, `amap_snapshot_get`, `amap_try_insert`, `amap_take`,
/// `amap_swap` or `amap_compute`
/// (and lent to `amap_snapshot_foreach`'s callback); it stays valid, with its
/// `data`, until it is given to `amap_value_release`, whatever happens to the map
/// (clears, removes, `amap_free`).
#[allow(non_camel_case_types)]
pub struct amap_value_t {
    _opaque: [u8; 0],
}

/// Hands a Rust handle to C as an `amap_value_t *`.
pub(crate) fn into_c(value: ValueRef<CValue>) -> *mut amap_value_t {
    ValueRef::into_raw(value).cast_mut().cast()
}

pub(crate) fn from_c(value: *const amap_value_t) -> *const CValue {
    value.cast()
}

/// Takes back the reference an `amap_value_t *` from `into_c` carries.
///
/// # Safety
/// `value` must come from `into_c` and its reference must not be given back twice.
pub(crate) unsafe fn from_c_owned(value: *mut amap_value_t) -> ValueRef<CValue> {
    // SAFETY: `into_c` is `ValueRef::<CValue>::into_raw` plus a cast, so the cast
    // back gives `into_raw`'s pointer; its reference is given back once (the
    // caller's contract): `from_raw`'s contract.
    unsafe { ValueRef::from_raw(from_c(value)) }
}

/// The `data` pointer of a retained value, or `NULL` if `value` is `NULL`.
///
/// Ownership: borrowed; valid as long as `value` is retained. Never free it
/// yourself: the destructor given to `amap_insert` does.
///
/// # Safety
/// `value` must be `NULL` or a retained `amap_value_t *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_value_data(value: *const amap_value_t) -> *mut c_void {
    guard_or(std::ptr::null_mut(), || {
        // SAFETY: a retained value (the contract) is `into_raw`'s pointer to the
        // `CValue` of a cell its reference keeps alive: aligned, initialized, never
        // mutated before the cell is destroyed. `as_ref` checks for null.
        unsafe { from_c(value).as_ref() }.map_or(std::ptr::null_mut(), |v| v.data)
    })
}

/// Adds a reference to `value`: each retain needs one more `amap_value_release`.
/// The same pointer stays in use (no new pointer is made).
///
/// Returns `AMAP_NULL_ARGUMENT` for `NULL`. A count past `PTRDIFF_MAX` aborts the
/// process with a message.
///
/// # Safety
/// `value` must be a retained `amap_value_t *` (not yet fully released).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_value_retain(value: *const amap_value_t) -> amap_status_t {
    guard(|| {
        if value.is_null() {
            return Err(amap_status_t::AMAP_NULL_ARGUMENT);
        }
        // Soundness: a retained value (the contract) comes from `into_c`
        // (`ValueRef::into_raw`), and its reference is held across this call, by the
        // caller or by whoever lent it the pointer (`amap_snapshot_foreach`):
        // `increment_count`'s contract.
        // SAFETY: a pointer from `into_raw` whose reference is held during the call (above).
        unsafe { ValueRef::increment_count(from_c(value)) };
        Ok(())
    })
}

/// Gives back one reference to `value`. After the last one (and once no map
/// generation holds the value) its destructor runs, possibly on another thread and
/// possibly later. `NULL` is a no-op.
///
/// Releasing more times than retained is a bug the library cannot always catch:
/// while the value is still mapped, and after it was unmapped until it is
/// destroyed, the process aborts with "atomic-map: value released more times than
/// retained" (the table's own reference is kept apart and never taken by a
/// release); after the value has been destroyed the behaviour is undefined.
///
/// # Safety
/// `value` must be `NULL` or a retained `amap_value_t *` whose reference the caller
/// gives up here.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_value_release(value: *const amap_value_t) -> amap_status_t {
    guard(|| {
        if !value.is_null() {
            // SAFETY: a retained value (the contract) comes from `into_c`
            // (`ValueRef::into_raw`), and the caller gives up a reference it owns:
            // `decrement_count`'s contract.
            unsafe { ValueRef::decrement_count(from_c(value)) };
        }
        Ok(())
    })
}
