//! `amap_status_t`: how every fallible function of the C ABI reports its outcome.

use std::ffi::c_char;

/// Outcome of a call. `AMAP_OK` is 0; every other value is an error that left the
/// map unchanged (except `AMAP_PANIC`, see there).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum amap_status_t {
    /// Success.
    AMAP_OK = 0,
    /// The key is not in the map (or snapshot, or read section).
    AMAP_NOT_FOUND = 1,
    /// A required pointer argument was `NULL` (or a key was `NULL` with a
    /// non-zero length).
    AMAP_NULL_ARGUMENT = 2,
    /// An argument was out of range (an unknown reclaim mode, a batch given to
    /// another map than the one it was made for).
    AMAP_INVALID_ARGUMENT = 3,
    /// `amap_ticket_wait` gave up before the generation was reclaimed.
    AMAP_TIMED_OUT = 4,
    /// A read section was used on a thread other than the one that began it.
    AMAP_WRONG_THREAD = 5,
    /// atomic-map panicked (a bug, or the reclaimer thread could not be started).
    /// The panic was stopped at the boundary; the call had no effect, except that
    /// a value passed to `amap_insert` or `amap_try_insert` (or by an
    /// `amap_compute` callback) may already have been destroyed, and `amap_retain`
    /// may already have removed entries.
    AMAP_PANIC = 6,
    /// The call would wait for itself: `amap_ticket_wait` or `amap_flush` called from
    /// a value's destructor that the same reclaimer is running, for work that
    /// cannot finish until that destructor returns; or `amap_ticket_wait` called
    /// in a read section that began before the clear it waits for, whose pin holds
    /// the teardown up. Nothing was waited for.
    AMAP_WOULD_DEADLOCK = 7,
    /// The key is already in the map (`amap_try_insert`): nothing was inserted, and
    /// the value passed in is still the caller's.
    AMAP_EXISTS = 8,
    /// The system refused memory the call asked for (`amap_reserve`: a shard's
    /// array; the shards reserved before it keep their room).
    AMAP_NO_MEMORY = 9,
}

/// A static, NUL-terminated description of `status` (an `amap_status_t` value).
///
/// Ownership: the string is static; never free it. Unknown values give
/// "unknown status".
#[unsafe(no_mangle)]
pub extern "C" fn amap_status_str(status: i32) -> *const c_char {
    let text: &'static [u8] = match status {
        0 => b"ok\0",
        1 => b"key not found\0",
        2 => b"a required pointer argument was NULL\0",
        3 => b"an argument was out of range\0",
        4 => b"timed out before the generation was reclaimed\0",
        5 => b"read section used on a thread other than the one that began it\0",
        6 => b"atomic-map panicked (the panic was stopped at the C boundary)\0",
        7 => b"would wait for itself (called from a destructor the same reclaimer runs, or in a read section begun before the clear)\0",
        8 => b"the key is already in the map\0",
        9 => b"the system refused the memory asked for\0",
        _ => b"unknown status\0",
    };
    text.as_ptr().cast()
}

/// The library's version, e.g. "0.2.0", as a static NUL-terminated string.
///
/// Ownership: static; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn amap_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
