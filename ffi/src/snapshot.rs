//! `amap_snapshot_t`: a long-lived view of one generation, with iteration.

use std::ffi::c_void;

use atomic_map::Snapshot;

use crate::args::{arg, free_boxed, key, out};
use crate::error::amap_status_t;
use crate::hasher::CHashBuilder;
use crate::key::Key;
use crate::map::amap_t;
use crate::panic::guard;
use crate::value::{CValue, amap_value_t, from_c_owned, into_c};

/// A snapshot of one generation of a map: it never sees a clear, and keeps that
/// generation (and its values) alive until released. It sees later writes made to
/// that same generation. Unlike a read section it may be kept for long, and used
/// and released from any thread (one thread at a time per call is not required:
/// the functions are thread-safe).
#[allow(non_camel_case_types)]
pub struct amap_snapshot_t {
    pub(crate) snapshot: Snapshot<Key, CValue, CHashBuilder>,
}

/// Called by `amap_snapshot_foreach` for each entry: the key bytes, the value, and
/// the caller's `user` pointer. Return 0 to go on, anything else to stop.
///
/// Ownership: `key` and `value` are **borrowed** for the duration of the call; read
/// the value with `amap_value_data`, or call `amap_value_retain` on it to keep it
/// (then release it later as usual).
#[allow(non_camel_case_types)]
pub type amap_foreach_fn = Option<
    unsafe extern "C" fn(
        key: *const u8,
        key_len: usize,
        value: *const amap_value_t,
        user: *mut c_void,
    ) -> i32,
>;

/// Takes a snapshot of the map's current generation and writes it to `*out_snap`.
///
/// Ownership: the caller owns the snapshot and releases it with
/// `amap_snapshot_release`; it may outlive `amap_free` of the map.
///
/// # Safety
/// `map` must be a live map; `out_snap` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_snapshot(
    map: *const amap_t,
    out_snap: *mut *mut amap_snapshot_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, out_snap) = unsafe { (arg(map)?, out(out_snap)?) };
        let snap = amap_snapshot_t {
            snapshot: map.map.snapshot(),
        };
        out_snap.set(Box::into_raw(Box::new(snap)));
        Ok(())
    })
}

/// Looks `key` up in the snapshot and writes a **retained** value to `*out_value`,
/// or returns `AMAP_NOT_FOUND`.
///
/// Ownership: as `amap_get`: release the value with `amap_value_release`.
///
/// # Safety
/// `snap` must be a live snapshot; `key` as in `amap_insert`; `out_value` valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_snapshot_get(
    snap: *const amap_snapshot_t,
    key: *const u8,
    key_len: usize,
    out_value: *mut *mut amap_value_t,
) -> amap_status_t {
    guard(|| {
        let (snap, key, out_value) =
            // SAFETY: the contract of this function.
            unsafe { (arg(snap)?, self::key(key, key_len)?, out(out_value)?) };
        let value = snap
            .snapshot
            .get(key)
            .ok_or(amap_status_t::AMAP_NOT_FOUND)?;
        out_value.set(into_c(value));
        Ok(())
    })
}

/// Writes the number of entries in the snapshot's generation to `*out_len`.
///
/// # Safety
/// `snap` must be a live snapshot; `out_len` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_snapshot_len(
    snap: *const amap_snapshot_t,
    out_len: *mut usize,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (snap, out_len) = unsafe { (arg(snap)?, out(out_len)?) };
        out_len.set(snap.snapshot.len());
        Ok(())
    })
}

/// Writes 1 to `*out_present` if `key` is in the snapshot's generation, else 0
/// (0.8.0).
///
/// # Safety
/// `snap` must be a live snapshot; `key` as in `amap_insert`; `out_present` valid
/// for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_snapshot_contains(
    snap: *const amap_snapshot_t,
    key: *const u8,
    key_len: usize,
    out_present: *mut u8,
) -> amap_status_t {
    guard(|| {
        let (snap, key, out_present) =
            // SAFETY: the contract of this function.
            unsafe { (arg(snap)?, self::key(key, key_len)?, out(out_present)?) };
        out_present.set(u8::from(snap.snapshot.contains_key(key)));
        Ok(())
    })
}

/// Writes the id of the snapshot's generation to `*out_generation` (0.8.0): 0 for
/// a new map's first, one more for each clear or replace after it; the id of the
/// ticket of the clear or replace that retires it (`amap_ticket_id`), so a snapshot taken
/// before a clear has a smaller id than the map's generation after it
/// (`amap_stats`).
///
/// # Safety
/// `snap` must be a live snapshot; `out_generation` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_snapshot_generation(
    snap: *const amap_snapshot_t,
    out_generation: *mut u64,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (snap, out_generation) = unsafe { (arg(snap)?, out(out_generation)?) };
        out_generation.set(snap.snapshot.generation());
        Ok(())
    })
}

/// Calls `callback(key, key_len, value, user)` for each entry of the snapshot's
/// generation, until it returns non-zero. No lock is held during the callback (the
/// entries are copied shard by shard and each value retained meanwhile), so the
/// callback may call into the map, including `amap_get` and `amap_insert`.
///
/// # Safety
/// `snap` must be a live snapshot; `callback` must be a valid function; `user` is
/// passed through untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_snapshot_foreach(
    snap: *const amap_snapshot_t,
    callback: amap_foreach_fn,
    user: *mut c_void,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let snap = unsafe { arg(snap) }?;
        let callback = callback.ok_or(amap_status_t::AMAP_NULL_ARGUMENT)?;
        for (key, value) in snap.snapshot.iter() {
            // The reference this loop holds is lent to the callback as a pointer,
            // and taken back right after.
            let lent = into_c(value);
            // SAFETY: `key` and `lent` stay valid for the call (held here); the
            // callback's validity is the caller's contract.
            let stop = unsafe { callback(key.as_ptr(), key.len(), lent, user) } != 0;
            // SAFETY: `lent` came from `into_c` above and its reference is taken
            // back exactly once; retains made by the callback are its own.
            drop(unsafe { from_c_owned(lent) });
            if stop {
                break;
            }
        }
        Ok(())
    })
}

/// Releases a snapshot; its generation is torn down once nothing else holds it.
/// `NULL` is a no-op.
///
/// # Safety
/// `snap` must be `NULL` or a live snapshot; it is invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_snapshot_release(snap: *mut amap_snapshot_t) {
    // SAFETY: `NULL` or a live snapshot from `amap_snapshot` (`Box::into_raw`'s), which the
    // caller gives up (the contract).
    unsafe { free_boxed(snap) }
}
