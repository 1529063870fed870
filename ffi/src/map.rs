//! `amap_t`: the map, its options, writes, retained reads, clears and statistics.

use std::ffi::c_void;

use atomic_map::{AtomicMap, Builder, ReclaimMode, ValueRef};

use crate::args::{arg, key, out};
use crate::batch::amap_batch_t;
use crate::error::amap_status_t;
use crate::hasher::{AMAP_HASHER_FAST, CHashBuilder};
use crate::key::{Key, KeyBytes};
use crate::panic::guard;
use crate::reclaimer::{amap_reclaimer_t, write_count};
use crate::ticket::{amap_ticket_t, hand_out};
use crate::value::{CValue, amap_dtor_fn, amap_value_t, from_c, into_c};

/// A map from byte-string keys to C values.
///
/// Thread-safe: every function taking an `amap_t *` may be called from any number
/// of threads at once, except `amap_free`, which must be the last call on it.
#[allow(non_camel_case_types)]
pub struct amap_t {
    pub(crate) map: CMap,
}

/// The Rust map behind an `amap_t`.
pub(crate) type CMap = AtomicMap<Key, CValue, CHashBuilder>;

/// Reclaim mode: the process-wide reclaimer thread (one per process, shared by
/// every map in this mode) tears retired generations down.
pub const AMAP_RECLAIM_BACKGROUND: u32 = 0;
/// Reclaim mode: no thread; retired generations wait for `amap_reclaim`.
pub const AMAP_RECLAIM_MANUAL: u32 = 1;

/// Options for `amap_new_with`. Fill with `amap_options_init` first (or zero the
/// struct), then change what you need, so that fields added later get their
/// defaults: they take bytes that were padding before (0.5.0's, 0.8.0's), which
/// a struct filled field by field may leave holding garbage.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct amap_options_t {
    /// `AMAP_RECLAIM_BACKGROUND` (default) or `AMAP_RECLAIM_MANUAL`.
    pub reclaim_mode: u32,
    /// Shards per generation's table; 0 for the default (4 × CPUs). Rounded up to
    /// a power of two, at least 2; at most `AMAP_MAX_SHARDS` (more is
    /// `AMAP_INVALID_ARGUMENT`).
    pub shards: usize,
    /// Non-zero (default): after a large teardown, ask the allocator to return
    /// freed memory to the OS (glibc `malloc_trim`).
    pub trim_memory: u8,
    /// Non-zero: threads that release the map's values (`amap_value_release`, a
    /// replacing `amap_insert`, `amap_remove`) may
    /// run the destructors of released values themselves, a batch at a time
    /// after their grace period, every 256 releases, in a background mode:
    /// a `free` then runs on the thread that will `malloc` again (on glibc, 24–33%
    /// more replacements of heap values in the memory bench's churn). A destructor
    /// then runs on the thread that released the value, inside a later releasing
    /// call of that thread (of any map on the same reclaimer): it must not take a
    /// lock that thread may hold then. Only the first eight threads that release
    /// values in the process (and those that take over the stripe of one that
    /// exited) help; other threads' releases go to the reclaimer. Never inside
    /// an `amap_compute` or `amap_retain` callback, nor for a clear's teardown.
    /// 0 (default): destructors run on the map's reclaimer (see `amap_dtor_fn`).
    pub destructors_on_releasing_threads: u8,
    /// The keys' hash function (0.8.0): `AMAP_HASHER_FAST` (default, 0) or
    /// `AMAP_HASHER_SIPHASH` for keys an attacker may choose while watching the
    /// program (anything else is `AMAP_INVALID_ARGUMENT`). Either way the hash
    /// function's seeds come from the operating system's randomness, distinct for
    /// each map. The byte was padding before 0.8.0: a program that fills its
    /// options without `amap_options_init` (or zeroing the struct) may leave
    /// garbage in it, which 0.8.0 reads as this field.
    pub hasher: u8,
}

// 0.5.0's and 0.8.0's fields sit in the padding after `trim_memory`: the struct
// keeps 0.4's size and offsets, so that `amap_options_init` writes no more than a
// program built against 0.4's header allocated (docs/C-API.md, "Versions").
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<amap_options_t>() == 24);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::offset_of!(amap_options_t, trim_memory) == 16);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::offset_of!(amap_options_t, destructors_on_releasing_threads) == 17);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::offset_of!(amap_options_t, hasher) == 18);
#[cfg(target_pointer_width = "32")]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<amap_options_t>() == 12);
    assert!(offset_of!(amap_options_t, trim_memory) == 8);
    assert!(offset_of!(amap_options_t, destructors_on_releasing_threads) == 9);
    assert!(offset_of!(amap_options_t, hasher) == 10);
};

/// The defaults `amap_options_init` writes, and `amap_new` builds with.
const DEFAULT_OPTIONS: amap_options_t = amap_options_t {
    reclaim_mode: AMAP_RECLAIM_BACKGROUND,
    shards: 0,
    trim_memory: 1,
    destructors_on_releasing_threads: 0,
    hasher: AMAP_HASHER_FAST,
};

/// Generation and garbage counters of a map (see `amap_stats`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct amap_stats_t {
    /// Id of the current generation (0 for a new map, +1 per clear).
    pub generation: u64,
    /// Generations retired and not yet torn down.
    pub retired_generations: u64,
    /// Values whose destruction is scheduled but has not run yet.
    pub pending_values: u64,
    /// Generations torn down so far.
    pub reclaimed_generations: u64,
    /// Values destroyed so far.
    pub reclaimed_values: u64,
    /// Destructors that panicked (Rust-side; C destructors cannot).
    pub destructor_panics: u64,
}

/// Fills `options` with the defaults.
///
/// Ownership: `options` is the caller's; only written.
///
/// # Safety
/// `options` must be `NULL` or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_options_init(options: *mut amap_options_t) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let options = unsafe { out(options) }?;
        options.set(DEFAULT_OPTIONS);
        Ok(())
    })
}

/// The most shards `amap_options_t.shards` may ask for (65,536); more is
/// `AMAP_INVALID_ARGUMENT`.
pub const AMAP_MAX_SHARDS: usize = 65536;
// The C bound is the Rust one (a literal above, so that cbindgen can write it).
const _: () = assert!(AMAP_MAX_SHARDS == Builder::MAX_SHARDS);

/// A map built with `options`, on `reclaimer` if there is one (instead of the one
/// `reclaim_mode` names).
fn build(
    options: &amap_options_t,
    reclaimer: Option<&amap_reclaimer_t>,
) -> Result<amap_t, amap_status_t> {
    let mode = match options.reclaim_mode {
        AMAP_RECLAIM_BACKGROUND => ReclaimMode::Background,
        AMAP_RECLAIM_MANUAL => ReclaimMode::Manual,
        _ => return Err(amap_status_t::AMAP_INVALID_ARGUMENT),
    };
    let hasher = CHashBuilder::named(options.hasher).ok_or(amap_status_t::AMAP_INVALID_ARGUMENT)?;
    let mut builder = Builder::new()
        .hasher(hasher)
        .reclaim_mode(mode)
        .trim_memory(options.trim_memory != 0)
        .destructors_on_releasing_threads(options.destructors_on_releasing_threads != 0);
    if let Some(own) = reclaimer {
        builder = builder.reclaimer(&own.reclaimer);
    }
    if options.shards > AMAP_MAX_SHARDS {
        return Err(amap_status_t::AMAP_INVALID_ARGUMENT);
    }
    if options.shards != 0 {
        builder = builder.shards(options.shards);
    }
    Ok(amap_t {
        map: builder.build(),
    })
}

/// A new, empty map with the default options (background reclamation).
///
/// Ownership: the caller owns the map and frees it with `amap_free`. Returns
/// `NULL` if the map could not be created (the reclaimer thread could not start).
#[unsafe(no_mangle)]
pub extern "C" fn amap_new() -> *mut amap_t {
    let mut map = std::ptr::null_mut();
    // SAFETY: both pointers are valid (a local, a constant).
    match unsafe { amap_new_with(&DEFAULT_OPTIONS, &mut map) } {
        amap_status_t::AMAP_OK => map,
        _ => std::ptr::null_mut(),
    }
}

/// A new, empty map with `options`, written to `*out`.
///
/// Ownership: the caller owns `*out` and frees it with `amap_free`; `options` is
/// only read during the call.
///
/// # Safety
/// `options` must be `NULL` or point at an initialized `amap_options_t`; `out_map`
/// must be `NULL` or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_new_with(
    options: *const amap_options_t,
    out_map: *mut *mut amap_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function, for both pointers.
        let (options, out_map) = unsafe { (arg(options)?, out(out_map)?) };
        let map = build(options, None)?;
        out_map.set(Box::into_raw(Box::new(map)));
        Ok(())
    })
}

/// A new, empty map with `options`, on `reclaimer` (from `amap_reclaimer_new`)
/// instead of the reclaimer `options.reclaim_mode` names, written to `*out_map`:
/// the map's generations are torn down and its destructors run by that reclaimer
/// only, in its mode (whatever `reclaim_mode` says). For maps whose destructors are
/// slow, so that they delay no other map's reclamation. Several maps may share a
/// reclaimer.
///
/// Ownership: the caller owns `*out_map` and frees it with `amap_free`; `options`
/// is only read during the call; `reclaimer` stays the caller's (the map keeps the
/// reclaimer itself alive: the handle may be freed with `amap_reclaimer_free` as
/// soon as this returns).
///
/// # Safety
/// `options` must be `NULL` or point at an initialized `amap_options_t`;
/// `reclaimer` must be `NULL` or a live reclaimer; `out_map` must be `NULL` or
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_new_with_reclaimer(
    options: *const amap_options_t,
    reclaimer: *const amap_reclaimer_t,
    out_map: *mut *mut amap_t,
) -> amap_status_t {
    guard(|| {
        let (options, reclaimer, out_map) =
            // SAFETY: the contract of this function, for the three pointers.
            unsafe { (arg(options)?, arg(reclaimer)?, out(out_map)?) };
        let map = build(options, Some(reclaimer))?;
        out_map.set(Box::into_raw(Box::new(map)));
        Ok(())
    })
}

/// Frees the map: releases its hold on its current generation, then waits until
/// its reclaimer has torn down what it was handed (at most 10 s; a grace period
/// that a read section open on another thread holds up gets 100 ms, and what it
/// holds up is torn down after it closes; the process-wide reclaimer thread stays,
/// parked, for the other maps). Values still retained by C, read sections and
/// snapshots survive: their destructors run when those let go. `NULL` is a no-op.
///
/// # Safety
/// `map` must be `NULL` or a map from `amap_new`/`amap_new_with` that no other
/// thread uses any more; it is invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_free(map: *mut amap_t) {
    let _ = guard(|| {
        if !map.is_null() {
            // SAFETY: a map from `amap_new`/`amap_new_with` (the contract) is
            // `Box::into_raw`'s, in `amap_new_with`; no other thread uses it any
            // more, so it is rebuilt once, here.
            let map = unsafe { Box::from_raw(map) };
            map.map.shutdown();
        }
        Ok(())
    });
}

/// Maps `key[0..key_len]` to a new value `data`, replacing any previous value for
/// the key (which is released: its destructor runs once nobody holds it).
///
/// Ownership: on `AMAP_OK` the map owns the value: `dtor(data, ctx)` will be called
/// exactly once, on some thread, after the last holder lets go (`dtor` may be `NULL`
/// for values that need no destructor). On any other status the map took nothing
/// and will never call `dtor` (except after `AMAP_PANIC`, see there). The key bytes
/// are copied (any length, including 0); `data` and `ctx` must stay valid until
/// `dtor` runs and must be usable from any thread. A value released after its map
/// was freed is destroyed by the background reclaimer within a few of its passes
/// (tens of milliseconds unless a read section stays open), with no further call;
/// `amap_flush` waits for that before exit.
///
/// # Safety
/// `map` must be a live map; `key` must point at `key_len` readable bytes (or be
/// `NULL` with `key_len == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_insert(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    data: *mut c_void,
    dtor: amap_dtor_fn,
    ctx: *mut c_void,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, key) = unsafe { (arg(map)?, self::key(key, key_len)?) };
        drop(map.map.insert(key.into(), CValue::new(data, dtor, ctx)));
        Ok(())
    })
}

/// Maps `key[0..key_len]` to a new value `data`, as `amap_insert` does, and writes
/// the value it replaced, **retained**, to `*out_previous`, or `NULL` if the key
/// was absent: the value this insert took out, which no other writer can have
/// replaced in between (`amap_get` then `amap_insert` could report a value another
/// thread had already replaced). Returns `AMAP_OK` in both cases. Go's
/// `sync.Map.Swap`; Rust's `AtomicMap::insert`, which returns the previous value.
///
/// Ownership: the new value as with `amap_insert` (on `AMAP_OK` the map owns it; on
/// any other status the map took nothing, except after `AMAP_PANIC`). The caller
/// owns one reference to a non-`NULL` `*out_previous` (the map's own, handed over)
/// and gives it back with `amap_value_release`; the previous value's destructor
/// runs after that, once nothing else holds it. `*out_previous` is written on
/// `AMAP_OK` only; a `NULL` `out_previous` is `AMAP_NULL_ARGUMENT`, checked before
/// the map takes anything (use `amap_insert` to drop the previous value instead).
///
/// # Safety
/// `map` must be a live map; `key`, `data`, `dtor` and `ctx` as in `amap_insert`;
/// `out_previous` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_swap(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    data: *mut c_void,
    dtor: amap_dtor_fn,
    ctx: *mut c_void,
    out_previous: *mut *mut amap_value_t,
) -> amap_status_t {
    guard(|| {
        let (map, key, out_previous) =
            // SAFETY: the contract of this function; all three checked before the
            // map takes the value.
            unsafe { (arg(map)?, self::key(key, key_len)?, out(out_previous)?) };
        let previous = map.map.insert(key.into(), CValue::new(data, dtor, ctx));
        out_previous.set(previous.map_or(std::ptr::null_mut(), into_c));
        Ok(())
    })
}

/// Removes `key` from the current generation. The value is released: its
/// destructor runs once nobody (no retain, no read section, no snapshot) holds it.
/// Returns `AMAP_NOT_FOUND` if the key was absent.
///
/// # Safety
/// `map` must be a live map; `key` as in `amap_insert`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_remove(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, key) = unsafe { (arg(map)?, self::key(key, key_len)?) };
        map.map
            .remove(key)
            .map(drop)
            .ok_or(amap_status_t::AMAP_NOT_FOUND)
    })
}

/// Writes the number of entries of the current generation to `*out_len`.
///
/// # Safety
/// `map` must be a live map; `out_len` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_len(map: *const amap_t, out_len: *mut usize) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, out_len) = unsafe { (arg(map)?, out(out_len)?) };
        out_len.set(map.map.len());
        Ok(())
    })
}

/// Writes to `*out_capacity` how many entries the current generation holds before
/// its table grows (summed over its shards: a shard that fills ahead of the others
/// grows first). 0 for a new map without `amap_reserve`, and after a clear.
///
/// # Safety
/// `map` must be a live map; `out_capacity` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_capacity(
    map: *const amap_t,
    out_capacity: *mut usize,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, out_capacity) = unsafe { (arg(map)?, out(out_capacity)?) };
        out_capacity.set(map.map.capacity());
        Ok(())
    })
}

/// Makes room in the current generation for at least `additional` entries more
/// than it holds, so that inserting them does not rehash the table on the way
/// (each shard grows, if it must, to hold its entries and its share of
/// `additional`; a shard whose keys exceed their share may still grow once).
/// Writers of a shard wait while it is rehashed; readers never do. The room is
/// committed at once (resident from the call on, 8 bytes a slot), so readers
/// probing ahead of the inserts cost them no page faults. It sizes the
/// current generation: a clear publishes one that starts empty again, an
/// `amap_replace` its batch's, sized for the batch, and a reserve racing either
/// may size some shards of the generation being retired. The C form of a
/// capacity given at creation: `amap_new` then `amap_reserve`.
///
/// Returns `AMAP_INVALID_ARGUMENT`, with the map unchanged, if the shards' arrays
/// for the room would take more than `PTRDIFF_MAX` bytes, and `AMAP_NO_MEMORY` if
/// the system refused a shard's array (the shards reserved before it keep their
/// room; the map is otherwise unchanged). Like the other writes, it must not be
/// called from an `amap_compute` or `amap_retain` callback on the same map.
///
/// # Safety
/// `map` must be a live map.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_reserve(map: *const amap_t, additional: usize) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let map = unsafe { arg(map) }?;
        map.map.try_reserve(additional).map_err(|error| {
            if error.is_capacity_overflow() {
                amap_status_t::AMAP_INVALID_ARGUMENT
            } else {
                amap_status_t::AMAP_NO_MEMORY
            }
        })
    })
}

/// Shrinks the current generation's table as far as its entries allow: each
/// shard, one at a time under its write lock, moves to the smallest array that
/// holds its entries (none, if it has none). The arrays it replaces are freed
/// once no read section can still see them. Values, holders and read sections are
/// untouched. Like the other writes, it must not be called from an
/// `amap_compute` or `amap_retain` callback on the same map.
///
/// # Safety
/// `map` must be a live map.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_shrink_to_fit(map: *const amap_t) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let map = unsafe { arg(map) }?;
        map.map.shrink_to_fit();
        Ok(())
    })
}

/// Writes whether the current generation maps `key` to `*out_present` (1 or 0).
///
/// # Safety
/// `map` must be a live map; `key` as in `amap_insert`; `out_present` valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_contains(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    out_present: *mut u8,
) -> amap_status_t {
    guard(|| {
        let (map, key, out_present) =
            // SAFETY: the contract of this function.
            unsafe { (arg(map)?, self::key(key, key_len)?, out(out_present)?) };
        out_present.set(u8::from(map.map.contains_key(key)));
        Ok(())
    })
}

/// Looks `key` up and writes a **retained** value to `*out_value`, or returns
/// `AMAP_NOT_FOUND` (leaving `*out_value` untouched).
///
/// Ownership: the caller owns one reference to `*out_value` and must give it back
/// with `amap_value_release`; until then the value and its `data` stay valid across
/// clears, removes and `amap_free`.
///
/// # Safety
/// `map` must be a live map; `key` as in `amap_insert`; `out_value` valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_get(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    out_value: *mut *mut amap_value_t,
) -> amap_status_t {
    // SAFETY: the contract of this function, which is `hand_out_value`'s.
    unsafe { hand_out_value(map, key, key_len, out_value, |map, key| map.get(key)) }
}

/// Maps `key[0..key_len]` to a new value `data` only if the key is absent from the
/// current generation, in one step with respect to other writers of the key (a
/// `get` followed by an `insert` would let two threads both insert, one
/// replacing the other's value). Returns `AMAP_OK` if it inserted, `AMAP_EXISTS`
/// if the key was present (the map is unchanged).
///
/// Ownership: on `AMAP_OK` the map owns the value, as with `amap_insert`. On
/// `AMAP_EXISTS` (and every other status but `AMAP_PANIC`) the map took nothing:
/// `dtor` will never be called for `data`, which is still the caller's. If
/// `out_value` is not `NULL`, `*out_value` receives a **retained** value on
/// `AMAP_OK` (the one inserted) and on `AMAP_EXISTS` (the one already mapped),
/// and is left untouched otherwise; the caller gives it back with
/// `amap_value_release`.
///
/// # Safety
/// `map` must be a live map; `key`, `data`, `dtor` and `ctx` as in `amap_insert`;
/// `out_value` `NULL` or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_try_insert(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    data: *mut c_void,
    dtor: amap_dtor_fn,
    ctx: *mut c_void,
    out_value: *mut *mut amap_value_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, key) = unsafe { (arg(map)?, self::key(key, key_len)?) };
        // Checked before the map takes anything.
        let out_value = if out_value.is_null() {
            None
        } else {
            // SAFETY: not `NULL`, so valid for a write (the contract).
            Some(unsafe { out(out_value) }?)
        };
        let (status, value) = match map.map.try_insert(key.into(), CValue::new(data, dtor, ctx)) {
            Ok(inserted) => (Ok(()), inserted),
            Err(occupied) => {
                occupied.not_inserted.give_back();
                (Err(amap_status_t::AMAP_EXISTS), occupied.current)
            }
        };
        if let Some(out_value) = out_value {
            out_value.set(into_c(value));
        }
        status
    })
}

/// Removes `key` from the current generation and writes its value, **retained**,
/// to `*out_value`: the value the removal took out, which no other writer can
/// have replaced in between (`amap_get` then `amap_remove` could remove a newer
/// value than the one it read). Returns `AMAP_NOT_FOUND` if the key was absent
/// (leaving `*out_value` untouched).
///
/// Ownership: the caller owns one reference to `*out_value` (the map's own, handed
/// over) and gives it back with `amap_value_release`; the destructor runs after
/// that, once nothing else holds the value.
///
/// # Safety
/// `map` must be a live map; `key` as in `amap_insert`; `out_value` valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_take(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    out_value: *mut *mut amap_value_t,
) -> amap_status_t {
    // SAFETY: the contract of this function, which is `hand_out_value`'s.
    unsafe { hand_out_value(map, key, key_len, out_value, |map, key| map.remove(key)) }
}

/// Removes `key` from the current generation only if it still maps to the value
/// `expected` is a handle on (compared by identity: the value a `get` returned, not
/// its `data`), in one step with respect to other writers of the key: an
/// invalidation that does not remove a newer value inserted meanwhile. Returns
/// `AMAP_OK` if it removed the entry, `AMAP_NOT_FOUND` if the key is absent or
/// maps to another value (the map is unchanged). The removed value is released as
/// with `amap_remove`.
///
/// Ownership: `expected` stays the caller's (still retained after the call).
///
/// # Safety
/// `map` must be a live map; `key` as in `amap_insert`; `expected` a retained
/// value (from `amap_get`, `amap_try_insert`, `amap_take`, `amap_swap`,
/// `amap_compute`, `amap_snapshot_get` or `amap_value_retain`), not yet released.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_remove_if_same(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    expected: *const amap_value_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, key) = unsafe { (arg(map)?, self::key(key, key_len)?) };
        if expected.is_null() {
            return Err(amap_status_t::AMAP_NULL_ARGUMENT);
        }
        // Compared as addresses only: the caller's retain keeps `expected`'s cell
        // alive, so no other value can have its address meanwhile.
        let expected = from_c(expected);
        map.map
            .remove_if(key, |_, current| std::ptr::eq(current, expected))
            .map(drop)
            .ok_or(amap_status_t::AMAP_NOT_FOUND)
    })
}

/// Called by `amap_retain` for each entry: the key bytes, the value's `data` and
/// the caller's `user` pointer. Return non-zero to keep the entry, 0 to remove it.
///
/// Ownership: `key` and `data` are borrowed for the call only. Runs under the write
/// lock of the entry's shard: it must not write to the same map (see
/// `amap_retain`).
///
/// The same C type as `amap_read_fn`, whose return value means "stop" instead:
/// one type under two names, the name saying which meaning a callback gives its
/// return value.
#[allow(non_camel_case_types)]
pub type amap_keep_fn = crate::amap_read_fn;

/// Keeps only the entries of the current generation for which `keep` returns
/// non-zero: cache eviction (entries past their time, of a tenant that left) in one
/// call, each decision taken with no other writer of the entry's shard between the
/// look and the removal. It visits one shard at a time under that shard's write
/// lock, so writers of other shards go on meanwhile, and an entry inserted during
/// the call may or may not be visited. Removed values are released as with
/// `amap_remove` (holders keep them). If `out_removed` is not `NULL`, writes the
/// number of entries removed there.
///
/// What `keep` may do: read this map or any other (`amap_get`, `amap_contains`,
/// read sections, snapshots). What it must not:
/// * write to this map (`amap_insert`, `amap_remove`, the conditional writes,
///   `amap_retain`, `amap_reserve`, `amap_shrink_to_fit`, `amap_clear_async`,
///   `amap_replace`): a write to the shard being visited would wait for itself;
/// * write to a map that another thread may be retaining with a callback that
///   writes to this one: each would wait for the other's shard lock;
/// * wait for this map's reclamation (`amap_ticket_wait` on a ticket of its
///   clears returns `AMAP_WOULD_DEADLOCK` at once there, since 0.8.1), or flush (`amap_flush`
///   of any map on this map's reclaimer, or of all: by default the process-wide
///   reclaimer serves every map): `keep` runs under one of the map's shard locks,
///   and the release of its retired generations waits until each of them has been
///   taken once;
/// * run destructors on its thread (`amap_reclaim`, `amap_reclaimer_reclaim`,
///   `amap_batch_free`, or `amap_ticket_wait` on a map in manual mode, which runs
///   its reclamation on the waiting thread): a destructor may write to this map.
///
/// It may wait for a ticket of another map in background mode (since 0.7.1): the
/// walk pins no epoch, each shard is taken in the generation current when its
/// lock is taken (after a concurrent clear, the shards not yet visited are the new
/// generation's), and reclamation, this map's values included, goes on while it
/// runs. The writers of the shard being visited wait for `keep` to return: keep
/// it short.
///
/// # Safety
/// `map` must be a live map; `keep` a valid function; `out_removed` `NULL` or valid
/// for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_retain(
    map: *const amap_t,
    keep: amap_keep_fn,
    user: *mut c_void,
    out_removed: *mut usize,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let map = unsafe { arg(map) }?;
        let keep = keep.ok_or(amap_status_t::AMAP_NULL_ARGUMENT)?;
        let mut removed = 0;
        map.map.retain(|key, value| {
            // Soundness: `key` and `value` are borrowed from the map for this call
            // (the entry's shard is locked); `keep` is valid (the contract).
            // SAFETY: the key and the value outlive the call (above).
            let kept = unsafe { keep(key.as_ptr(), key.len(), value.data, user) } != 0;
            removed += usize::from(!kept);
            kept
        });
        // SAFETY: `NULL` or valid for a write (the contract).
        unsafe { write_count(out_removed, removed) };
        Ok(())
    })
}

/// Retires the current generation and publishes an empty one, in O(1): one
/// swap of the generation pointer under the map's publish lock (which only
/// clears and replaces take), then the generation slot's lock taken and released,
/// each held for a few instructions (a snapshot taken on another thread holds the
/// slot's as briefly; reads and writes never take either), no allocation (the empty generation is normally built ahead by the
/// reclaimer). If `out_ticket` is not `NULL`, writes a ticket for the
/// retired generation to `*out_ticket` (one small allocation); with `NULL`, no
/// ticket is made and nothing is allocated.
///
/// Nothing is freed here: the old generation is torn down later (by the reclaimer)
/// once no read section or snapshot holds it, and each of its values is destroyed
/// once no retain holds it. Readers in a read section keep reading the old
/// generation; new ones see the empty one.
///
/// Ownership: the caller owns `*out_ticket` and frees it with `amap_ticket_free`
/// (`amap_ticket_wait` waits for the teardown).
///
/// # Safety
/// `map` must be a live map; `out_ticket` `NULL` or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_clear_async(
    map: *const amap_t,
    out_ticket: *mut *mut amap_ticket_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let map = unsafe { arg(map) }?;
        let retired = map.map.clear_async();
        // SAFETY: `out_ticket` is `NULL` or valid for a write (the contract).
        unsafe { hand_out(retired, out_ticket) };
        Ok(())
    })
}

/// Publishes `batch` as the map's whole contents, atomically: builds its table on
/// the calling thread (O(entries in the batch); readers are not blocked meanwhile
/// and see nothing of it), then retires the current generation and publishes the
/// new one with one swap. A reader sees either all of the old contents
/// or all of the batch, never a mix and never an empty map in between. Writes made
/// to the old generation while the table is being built are retired with it.
/// If `out_ticket` is not `NULL`, writes a ticket for the retired generation to
/// `*out_ticket` (as `amap_clear_async`).
///
/// Ownership: **consumes `batch`**, whatever the status (unless `batch` is `NULL`):
/// on `AMAP_OK` the map owns its values (each destructor runs once, after the
/// value's last holder lets go); on `AMAP_NULL_ARGUMENT` (a `NULL` `map`) or
/// `AMAP_INVALID_ARGUMENT` (a batch made for another map) nothing is published and
/// the batch's destructors run here, on this thread. The caller owns `*out_ticket`
/// (written on `AMAP_OK` only) and frees it with `amap_ticket_free`.
///
/// # Safety
/// `map` must be a live map; `batch` `NULL` or a live batch that no other thread is
/// using (it is invalid afterwards); `out_ticket` `NULL` or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_replace(
    map: *const amap_t,
    batch: *mut amap_batch_t,
    out_ticket: *mut *mut amap_ticket_t,
) -> amap_status_t {
    guard(|| {
        if batch.is_null() {
            return Err(amap_status_t::AMAP_NULL_ARGUMENT);
        }
        // SAFETY: the contract: a live batch, ours to consume, once. Taken before
        // any other check, so that it is consumed on every path.
        let batch = unsafe { Box::from_raw(batch) };
        // SAFETY: the contract of this function.
        let map_ref = unsafe { arg(map) }?;
        if !std::ptr::eq(batch.map, map) {
            return Err(amap_status_t::AMAP_INVALID_ARGUMENT);
        }
        let retired = map_ref.map.replace(batch.entries);
        // SAFETY: `out_ticket` is `NULL` or valid for a write (the contract).
        unsafe { hand_out(retired, out_ticket) };
        Ok(())
    })
}

/// Tears down, on the calling thread, every retired generation nobody holds any
/// more, and writes how many to `*out_count` (may be `NULL`). Required in
/// `AMAP_RECLAIM_MANUAL` mode; harmless in background mode. Destructors of the
/// values it frees run on this thread. A map on a reclaimer of the caller's
/// (`amap_new_with_reclaimer`) shares the pass with that reclaimer's other maps:
/// this is `amap_reclaimer_reclaim` on it.
///
/// A value removed or replaced (rather than cleared away with its generation) is
/// destroyed after a grace period: when no other thread is in a read section, one
/// call starts it and destroys the value; otherwise a later call does, once every
/// read section begun before has ended. A cleared generation waits for one too
/// (read sections may still be in it): when no other thread is pinned meanwhile (a
/// read section, another reclaimer's pass), one call tears it down; otherwise a
/// later call does. In manual mode, call this periodically rather than once;
/// `amap_stats` counts the generations and values still pending.
///
/// # Safety
/// `map` must be a live map; `out_count` `NULL` or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_reclaim(map: *const amap_t, out_count: *mut usize) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let map = unsafe { arg(map) }?;
        let count = map.map.reclaim();
        // SAFETY: `out_count` is `NULL` or valid for a write (the contract).
        unsafe { write_count(out_count, count) };
        Ok(())
    })
}

/// Writes the map's generation and garbage counters to `*out_stats` (a racy sample
/// while other threads work; exact once they stop).
///
/// # Safety
/// `map` must be a live map; `out_stats` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_stats(
    map: *const amap_t,
    out_stats: *mut amap_stats_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, out_stats) = unsafe { (arg(map)?, out(out_stats)?) };
        let s = map.map.stats();
        out_stats.set(amap_stats_t {
            generation: s.generation,
            retired_generations: s.retired_generations as u64,
            pending_values: s.pending_values as u64,
            reclaimed_generations: s.reclaimed_generations,
            reclaimed_values: s.reclaimed_values,
            destructor_panics: s.destructor_panics,
        });
        Ok(())
    })
}

/// The body of `amap_get` and `amap_take`: runs `find` on the map and `key`, and
/// hands the value it returns to C as a retained `*out_value`, or returns
/// `AMAP_NOT_FOUND` (leaving `*out_value` untouched).
///
/// # Safety
/// `map` must be a live map; `key` as in `amap_insert`; `out_value` valid for a
/// write.
#[inline(always)]
unsafe fn hand_out_value(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    out_value: *mut *mut amap_value_t,
    find: impl FnOnce(&CMap, &KeyBytes) -> Option<ValueRef<CValue>>,
) -> amap_status_t {
    guard(|| {
        let (map, key, out_value) =
            // SAFETY: the contract of this function.
            unsafe { (arg(map)?, self::key(key, key_len)?, out(out_value)?) };
        let value = find(&map.map, key).ok_or(amap_status_t::AMAP_NOT_FOUND)?;
        out_value.set(into_c(value));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hasher::AMAP_HASHER_SIPHASH;

    /// `amap_options_t.hasher` picks the map's hash function; the default is the
    /// fast one, and a value that names none is refused.
    #[test]
    fn the_hasher_option_picks_the_maps_hasher() {
        let mut options = DEFAULT_OPTIONS;
        // SAFETY: a local, valid for the write.
        assert_eq!(
            unsafe { amap_options_init(&mut options) },
            amap_status_t::AMAP_OK
        );
        assert_eq!(options.hasher, AMAP_HASHER_FAST);
        let fast = build(&options, None).unwrap();
        assert!(matches!(fast.map.hasher(), CHashBuilder::Fast(_)));
        options.hasher = AMAP_HASHER_SIPHASH;
        let sip = build(&options, None).unwrap();
        assert!(matches!(sip.map.hasher(), CHashBuilder::SipHash(_)));
        options.hasher = 2;
        assert_eq!(
            build(&options, None).err(),
            Some(amap_status_t::AMAP_INVALID_ARGUMENT)
        );
    }
}
