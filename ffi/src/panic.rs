//! The panic boundary: every exported function runs its body through one of these,
//! so that a Rust panic becomes a status (or a null result) instead of unwinding
//! into C.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::amap_status_t;

/// Runs `body`; a panic becomes `AMAP_PANIC`, an `Err` its status.
///
/// Inlined into each exported function (its only caller), so that the arguments
/// are not spilled to the stack and passed through a closure by reference.
#[inline(always)]
pub(crate) fn guard(body: impl FnOnce() -> Result<(), amap_status_t>) -> amap_status_t {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => amap_status_t::AMAP_OK,
        Ok(Err(status)) => status,
        Err(_) => amap_status_t::AMAP_PANIC,
    }
}

/// Runs `body` for a function that returns a value; a panic gives `fallback`.
#[inline(always)]
pub(crate) fn guard_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}
