//! Checks of pointer arguments, shared by every exported function.

use crate::error::amap_status_t;
use crate::key::KeyBytes;

/// `ptr` as a reference, or `AMAP_NULL_ARGUMENT`.
///
/// # Safety
/// A non-null `ptr` must be aligned and point at a live, initialized `T` that
/// nothing mutates or frees for `'a` (the exported function's contract).
pub(crate) unsafe fn arg<'a, T>(ptr: *const T) -> Result<&'a T, amap_status_t> {
    // SAFETY: non-null is checked by `as_ref`; the rest is the caller's contract.
    unsafe { ptr.as_ref() }.ok_or(amap_status_t::AMAP_NULL_ARGUMENT)
}

/// The key bytes `key[0..len]`; `NULL` is accepted only with `len == 0`; a `len`
/// past `isize::MAX` (no object is that large) is `AMAP_INVALID_ARGUMENT`.
///
/// # Safety
/// A non-null `key` must point at `len` initialized bytes, readable and not written
/// for `'a`.
pub(crate) unsafe fn key<'a>(key: *const u8, len: usize) -> Result<&'a KeyBytes, amap_status_t> {
    if len > isize::MAX as usize {
        return Err(amap_status_t::AMAP_INVALID_ARGUMENT);
    }
    if key.is_null() {
        return if len == 0 {
            Ok(KeyBytes::new(&[]))
        } else {
            Err(amap_status_t::AMAP_NULL_ARGUMENT)
        };
    }
    // SAFETY: non-null (checked above), and the caller guarantees `len` initialized
    // bytes that stay unwritten for `'a` (a `u8` needs no alignment).
    Ok(KeyBytes::new(unsafe {
        std::slice::from_raw_parts(key, len)
    }))
}

/// A checked out-parameter: checked before any work is done, written on success.
pub(crate) struct Out<'a, T>(&'a mut std::mem::MaybeUninit<T>);

impl<T> Out<'_, T> {
    pub(crate) fn set(self, value: T) {
        self.0.write(value);
    }
}

/// `ptr` as an out-parameter, or `AMAP_NULL_ARGUMENT`.
///
/// # Safety
/// A non-null `ptr` must be aligned, valid for a write of `T`, and not accessed
/// otherwise for `'a`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T) -> Result<Out<'a, T>, amap_status_t> {
    // SAFETY: non-null is checked by `as_mut`; validity is the caller's contract.
    // Viewing it as `MaybeUninit` means the old contents are never read or dropped.
    unsafe { ptr.cast::<std::mem::MaybeUninit<T>>().as_mut() }
        .map(Out)
        .ok_or(amap_status_t::AMAP_NULL_ARGUMENT)
}

/// Frees a handle that an `amap_*_new`-like function made with `Box::into_raw`:
/// the body of every `amap_*_free` / `amap_*_release` of a boxed handle. `NULL` is a
/// no-op; a panic in the handle's drop does not cross the boundary.
///
/// # Safety
/// A non-null `handle` must be a `Box::into_raw` of a `T` that no other thread
/// uses any more and that nothing frees again (the exported function's contract):
/// it is rebuilt once, here.
pub(crate) unsafe fn free_boxed<T>(handle: *mut T) {
    let _ = crate::panic::guard(|| {
        if !handle.is_null() {
            // SAFETY: the caller's contract, above.
            drop(unsafe { Box::from_raw(handle) });
        }
        Ok(())
    });
}
