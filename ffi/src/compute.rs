//! `amap_compute`: a read-modify-write of one entry, decided by a C callback
//! under the entry's shard lock (Rust's `AtomicMap::compute`).

use std::ffi::c_void;
use std::ptr;

use atomic_map::{Compute, Operation};

use crate::args::{arg, key, out};
use crate::error::amap_status_t;
use crate::map::amap_t;
use crate::panic::guard;
use crate::value::{CValue, amap_dtor_fn, amap_value_t, into_c};

/// What an `amap_compute_fn` returns: map the key to the value written to
/// `*out_new` (inserting it, or replacing the current value, which is released as
/// by `amap_insert`).
pub const AMAP_COMPUTE_INSERT: i32 = 0;
/// What an `amap_compute_fn` returns: unmap the key (nothing happens if it is
/// absent); the removed value is released as by `amap_remove`.
pub const AMAP_COMPUTE_REMOVE: i32 = 1;
/// What an `amap_compute_fn` returns: leave the entry as it is (the same value
/// stays mapped, or the key stays absent).
pub const AMAP_COMPUTE_KEEP: i32 = 2;

/// The value an `amap_compute_fn` asks to map, with its destructor: the same three
/// arguments `amap_insert` takes, with the same ownership once the callback returns
/// `AMAP_COMPUTE_INSERT`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct amap_new_value_t {
    /// The new value's data.
    pub data: *mut c_void,
    /// Called exactly once as `dtor(data, ctx)` after the last holder lets go (as
    /// `amap_insert`'s); `NULL` for none.
    pub dtor: amap_dtor_fn,
    /// The destructor's second argument.
    pub ctx: *mut c_void,
}

/// Called by `amap_compute`, exactly once, with the current value's `data`
/// (`NULL` if `present` is 0: the key is absent), the caller's `user` pointer, and
/// `out_new`, which `amap_compute` zeroes before the call. Returns
/// `AMAP_COMPUTE_INSERT` after filling `*out_new` with the value to map,
/// `AMAP_COMPUTE_REMOVE` or `AMAP_COMPUTE_KEEP`; any other value leaves the entry
/// as it was, and `amap_compute` returns `AMAP_INVALID_ARGUMENT`.
///
/// Ownership: `current` is borrowed for the call only, and read-only: readers on
/// other threads may be reading it meanwhile (the lock excludes writers only), so
/// never write through it (an in-place increment returned as `AMAP_COMPUTE_KEEP`
/// is a data race: make a new value), and never hand it back in `*out_new` (its
/// destructor would then run twice). To keep the value, look it up again or ask
/// `amap_compute` for the value mapped after the call. The value
/// in `*out_new` becomes the map's only if the callback returns
/// `AMAP_COMPUTE_INSERT`; otherwise it stays the caller's and its destructor is
/// never called. Runs under the write lock of the key's shard: see `amap_compute`
/// for what it must not do. It must return normally (no C++ exception, no
/// `longjmp` out of it).
#[allow(non_camel_case_types)]
pub type amap_compute_fn = Option<
    unsafe extern "C" fn(
        current: *const c_void,
        present: u8,
        user: *mut c_void,
        out_new: *mut amap_new_value_t,
    ) -> i32,
>;

/// Sets the entry of `key[0..key_len]` to what `compute` decides from its current
/// value, in one step with respect to other writers of the key: a counter's
/// increment, a merge, an insert-or-update, a remove-when-empty. No other writer
/// of the key comes between the look and the write (an `amap_get` followed by an
/// `amap_insert` would let two threads both read the old value and one overwrite
/// the other's update). Values are shared with readers, so an update maps a new
/// value; readers and holders of the old one keep it until they let go.
///
/// `compute` is called exactly once (unless an argument is rejected first: then
/// not at all). Returns `AMAP_OK` when it returned one of the three
/// `AMAP_COMPUTE_*` values, `AMAP_INVALID_ARGUMENT` (the map unchanged) for any
/// other. If `out_value` is not `NULL`, `*out_value` receives on `AMAP_OK` a
/// **retained** value: the one mapped after the call (the new one, or the one
/// kept), or `NULL` if the key is absent after it; it is left untouched on any
/// other status.
///
/// What `compute` may do: read this map or any other (`amap_get`,
/// `amap_contains`, read sections, snapshots), and retain or read other values.
/// What it must not: write to this map (a write to the locked shard would wait
/// for itself), write to a map that another thread may be computing on with a
/// callback that writes to this one (each would wait for the other's lock), wait
/// for reclamation (`amap_flush`, `amap_ticket_wait`, `amap_free`; since 0.8.1
/// `amap_ticket_wait` on a ticket of this map returns `AMAP_WOULD_DEADLOCK` at
/// once there), or run
/// destructors on its thread (`amap_reclaim`, `amap_reclaimer_reclaim`,
/// `amap_batch_free`: a destructor may write to this map). Other writers of the
/// key's shard wait for it to return: keep it short.
///
/// Ownership: the key bytes are copied; `user` is passed through untouched. The
/// value the callback puts in `*out_new` with `AMAP_COMPUTE_INSERT` is the map's,
/// as with `amap_insert` (its destructor runs exactly once, after its last holder;
/// after `AMAP_PANIC` it may already have run). A replaced or removed value is
/// released as by `amap_insert` and `amap_remove`. The caller owns the reference
/// in `*out_value` and gives it back with `amap_value_release`.
///
/// # Safety
/// `map` must be a live map; `key` as in `amap_insert`; `compute` a valid
/// function (`NULL` is `AMAP_NULL_ARGUMENT`); `out_value` `NULL` or valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_compute(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    compute: amap_compute_fn,
    user: *mut c_void,
    out_value: *mut *mut amap_value_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, key) = unsafe { (arg(map)?, self::key(key, key_len)?) };
        let compute = compute.ok_or(amap_status_t::AMAP_NULL_ARGUMENT)?;
        let done = map.map.compute(key.into(), |current| {
            let mut new = amap_new_value_t {
                data: ptr::null_mut(),
                dtor: None,
                ctx: ptr::null_mut(),
            };
            let (data, present) = current.map_or((ptr::null(), 0), |v| (v.data.cast_const(), 1));
            // SAFETY: `compute` is valid (the contract); `new` is a live local,
            // and `data` stays valid for the call (the shard's lock keeps the entry).
            match unsafe { compute(data, present, user, &mut new) } {
                AMAP_COMPUTE_INSERT => Operation::Insert(CValue::new(new.data, new.dtor, new.ctx)),
                AMAP_COMPUTE_REMOVE => Operation::Remove,
                AMAP_COMPUTE_KEEP => Operation::Keep,
                _ => Operation::Abort(()),
            }
        });
        if let Compute::Aborted(()) = done {
            return Err(amap_status_t::AMAP_INVALID_ARGUMENT);
        }
        // The out-parameter becomes a reference only now, after the callback (which
        // may reach `*out_value` through `user`) has returned.
        if !out_value.is_null() {
            // SAFETY: not `NULL`, so valid for a write (the contract), and no
            // callback runs any more.
            unsafe { out(out_value) }?.set(done.into_current().map_or(ptr::null_mut(), into_c));
        }
        Ok(())
    })
}
