//! `amap_read_t`: a pinned read section for hot paths (borrowed reads, no counts).

use std::collections::hash_map::RandomState;
use std::ffi::c_void;

use atomic_map::ReadGuard;

use crate::args::{arg, key, out};
use crate::error::amap_status_t;
use crate::map::amap_t;
use crate::panic::guard;
use crate::value::CValue;

/// A pinned read section on one generation of a map.
///
/// Belongs to the thread that began it: use and end it on that thread only. While
/// it lives it holds its generation and delays the reclamation of values removed
/// meanwhile, so keep it short.
#[allow(non_camel_case_types)]
pub struct amap_read_t {
    guard: ReadGuard<Box<[u8]>, CValue, RandomState>,
    owner: usize,
}

/// A cheap identity of the calling thread: `pthread_self()`, unique among live
/// threads. `std::thread::current()` would clone an `Arc` per call, which doubled
/// the cost of `amap_read_get`; a thread-local's address costs a `__tls_get_addr`
/// call per use in the shared library, where `pthread_self` is one load.
fn thread_token() -> usize {
    // SAFETY: `pthread_self` has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as usize }
}

impl amap_read_t {
    fn check_thread(&self) -> Result<(), amap_status_t> {
        if thread_token() == self.owner {
            Ok(())
        } else {
            Err(amap_status_t::AMAP_WRONG_THREAD)
        }
    }
}

/// Begins a read section on the map's current generation and writes it to
/// `*out_read`.
///
/// Ownership: the caller owns the section and must end it with `amap_read_end`, on
/// this same thread. The section holds its generation, not the map: it stays usable
/// after `amap_free`.
///
/// # Safety
/// `map` must be a live map; `out_read` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_read_begin(
    map: *const amap_t,
    out_read: *mut *mut amap_read_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, out_read) = unsafe { (arg(map)?, out(out_read)?) };
        let read = amap_read_t {
            guard: map.map.pin(),
            owner: thread_token(),
        };
        out_read.set(Box::into_raw(Box::new(read)));
        Ok(())
    })
}

/// Looks `key` up in the section's generation and writes the value's `data` to
/// `*out_data`, or returns `AMAP_NOT_FOUND`.
///
/// Ownership: `*out_data` is **borrowed**: valid until `amap_read_end` on this
/// section, even if the key is removed or the map cleared meanwhile. Never free it;
/// retain the value with `amap_get` instead to keep it longer.
///
/// # Safety
/// `read` must be a live section of this thread; `key` as in `amap_insert`;
/// `out_data` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_read_get(
    read: *const amap_read_t,
    key: *const u8,
    key_len: usize,
    out_data: *mut *mut c_void,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (read, key, out_data) =
            unsafe { (arg(read)?, self::key(key, key_len)?, out(out_data)?) };
        read.check_thread()?;
        let value = read
            .guard
            .get_borrowed(key)
            .ok_or(amap_status_t::AMAP_NOT_FOUND)?;
        out_data.set(value.data);
        Ok(())
    })
}

/// Ends a read section; every pointer it handed out is invalid afterwards. `NULL`
/// is a no-op.
///
/// Ending a section on another thread than the one that began it would corrupt the
/// epoch's per-thread state: it is detected and aborts the process with a message.
///
/// # Safety
/// `read` must be `NULL` or a live section; it is invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_read_end(read: *mut amap_read_t) {
    let _ = guard(|| {
        if read.is_null() {
            return Ok(());
        }
        // SAFETY: a live section (the contract) is `Box::into_raw`'s from
        // `amap_read_begin`; the caller gives it up, so it is rebuilt once, here.
        let read = unsafe { Box::from_raw(read) };
        if read.check_thread().is_err() {
            eprintln!(
                "atomic-map: amap_read_end called on a thread other than the one that began the section"
            );
            std::process::abort();
        }
        drop(read);
        Ok(())
    });
}
