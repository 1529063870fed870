//! `amap_batch_t`: the next contents of a map, built off to the side, then published
//! whole by `amap_replace` (an atomic reload).

use std::ffi::c_void;

use crate::args::{arg, free_boxed, key, out};
use crate::error::amap_status_t;
use crate::key::Key;
use crate::map::amap_t;
use crate::panic::guard;
use crate::value::{CValue, amap_dtor_fn};

/// The next contents of one map, invisible to every reader until `amap_replace`
/// publishes them all at once.
///
/// Not thread-safe: use a batch from one thread at a time (it may move between
/// threads). It belongs to the map it was made for (`amap_replace` checks it).
#[allow(non_camel_case_types)]
pub struct amap_batch_t {
    /// The map this batch is for: compared, never dereferenced (the map may be
    /// freed before the batch).
    pub(crate) map: *const amap_t,
    pub(crate) entries: Vec<(Key, CValue)>,
}

/// A new, empty batch for `map`, written to `*out_batch`.
///
/// Ownership: the caller owns the batch until it gives it to `amap_replace` (which
/// consumes it) or frees it with `amap_batch_free`. The batch does not hold the map:
/// only `amap_replace` on this same map may publish it.
///
/// # Safety
/// `map` must be a live map; `out_batch` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_batch_new(
    map: *const amap_t,
    out_batch: *mut *mut amap_batch_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, out_batch) = unsafe { (arg(map)?, out(out_batch)?) };
        let batch = amap_batch_t {
            map,
            entries: Vec::new(),
        };
        out_batch.set(Box::into_raw(Box::new(batch)));
        Ok(())
    })
}

/// Adds the entry `key[0..key_len]` -> `data` to the batch. A later entry for the
/// same key replaces an earlier one when the batch is published (the earlier value
/// is then destroyed, once).
///
/// Ownership: as `amap_insert`: on `AMAP_OK` the batch owns the value, and
/// `dtor(data, ctx)` will be called exactly once: after the last holder lets go
/// once it is published, or by `amap_batch_free` (or a failed `amap_replace`) if it
/// never is. On any other status the batch took nothing (except after
/// `AMAP_PANIC`, see there). The key bytes are copied; `data` and `ctx` must be
/// usable, and destroyable, from any thread.
///
/// # Safety
/// `batch` must be a live batch that no other thread is using; `key` must point at
/// `key_len` readable bytes (or be `NULL` with `key_len == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_batch_insert(
    batch: *mut amap_batch_t,
    key: *const u8,
    key_len: usize,
    data: *mut c_void,
    dtor: amap_dtor_fn,
    ctx: *mut c_void,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function: a live batch, used by this thread
        // only, so the exclusive borrow is unique; the key's bytes are readable.
        let (batch, key) = unsafe { (batch.as_mut(), self::key(key, key_len)?) };
        let batch = batch.ok_or(amap_status_t::AMAP_NULL_ARGUMENT)?;
        batch
            .entries
            .push((key.into(), CValue::new(data, dtor, ctx)));
        Ok(())
    })
}

/// Writes the number of entries added to the batch to `*out_len` (duplicates of a
/// key counted each time).
///
/// # Safety
/// `batch` must be a live batch that no other thread is using; `out_len` valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_batch_len(
    batch: *const amap_batch_t,
    out_len: *mut usize,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (batch, out_len) = unsafe { (arg(batch)?, out(out_len)?) };
        out_len.set(batch.entries.len());
        Ok(())
    })
}

/// Frees a batch that was not published: the destructor of every value in it runs
/// now, on this thread (no reader ever saw them). `NULL` is a no-op.
///
/// # Safety
/// `batch` must be `NULL` or a live batch that no other thread is using; it is
/// invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_batch_free(batch: *mut amap_batch_t) {
    // SAFETY: `NULL` or a live batch from `amap_batch_new` (`Box::into_raw`'s) that no other
    // thread is using (the contract).
    unsafe { free_boxed(batch) }
}
