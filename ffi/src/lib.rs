//! The C ABI of atomic-map: a concurrent map, keyed by byte strings, whose values
//! are C-owned pointers with a destructor, and whose `clear` is an O(1) swap of
//! generations. C code can retain a value and keep using it across clears, removes
//! and the map's free: the destructor runs exactly once, after the last of every
//! generation holding the value, every Rust handle and every C retain.
//!
//! Conventions (after rustls-ffi):
//! * every name starts with `amap_`; objects are opaque pointers;
//! * fallible functions return an [`amap_status_t`] and write results through
//!   out-parameters, only on success;
//! * every pointer argument is checked: `NULL` gives `AMAP_NULL_ARGUMENT`, and
//!   `amap_*_free` / `amap_*_release` of `NULL` do nothing;
//! * a Rust panic never crosses the boundary: it becomes `AMAP_PANIC`;
//! * every function documents who owns what and for how long.
//!
//! The generated header is `ffi/include/amap.h`; `docs/C-API.md` covers
//! building, linking, the threading model and the ownership rules.

mod args;
mod batch;
mod compute;
mod error;
mod flush;
mod hasher;
mod key;
mod map;
mod panic;
mod read;
mod reclaimer;
mod snapshot;
mod ticket;
mod value;

pub use batch::{amap_batch_free, amap_batch_insert, amap_batch_len, amap_batch_new, amap_batch_t};
pub use compute::{
    AMAP_COMPUTE_INSERT, AMAP_COMPUTE_KEEP, AMAP_COMPUTE_REMOVE, amap_compute, amap_compute_fn,
    amap_new_value_t,
};
pub use error::{amap_status_str, amap_status_t, amap_version};
pub use flush::amap_flush;
pub use hasher::{AMAP_HASHER_FAST, AMAP_HASHER_SIPHASH};
pub use map::{
    AMAP_MAX_SHARDS, AMAP_RECLAIM_BACKGROUND, AMAP_RECLAIM_MANUAL, amap_clear_async, amap_contains,
    amap_free, amap_get, amap_insert, amap_len, amap_new, amap_new_with, amap_new_with_reclaimer,
    amap_options_init, amap_options_t, amap_reclaim, amap_remove, amap_replace, amap_stats,
    amap_stats_t, amap_t,
};
pub use read::{
    amap_get_with, amap_read_begin, amap_read_contains, amap_read_end, amap_read_fn,
    amap_read_for_each, amap_read_generation, amap_read_get, amap_read_len, amap_read_t,
    amap_snapshot_read_begin, amap_visit_fn,
};
pub use reclaimer::{
    amap_reclaimer_flush, amap_reclaimer_free, amap_reclaimer_new, amap_reclaimer_reclaim,
    amap_reclaimer_t,
};
pub use snapshot::{
    amap_foreach_fn, amap_snapshot, amap_snapshot_contains, amap_snapshot_foreach,
    amap_snapshot_generation, amap_snapshot_get, amap_snapshot_len, amap_snapshot_release,
    amap_snapshot_t,
};
pub use ticket::{
    amap_reclaimed_fn, amap_ticket_free, amap_ticket_id, amap_ticket_is_reclaimed,
    amap_ticket_on_reclaimed, amap_ticket_t, amap_ticket_wait,
};
pub use value::{
    amap_dtor_fn, amap_value_data, amap_value_release, amap_value_retain, amap_value_t,
};
