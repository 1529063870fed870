//! `amap_read_t`: a pinned read section for hot paths (borrowed reads, no counts).

use std::cell::Cell;
use std::ffi::c_void;
use std::mem::MaybeUninit;

use atomic_map::ReadGuard;

use crate::args::{arg, key, out};
use crate::error::amap_status_t;
use crate::hasher::CHashBuilder;
use crate::key::Key;
use crate::map::amap_t;
use crate::panic::guard;
use crate::snapshot::amap_snapshot_t;
use crate::value::CValue;

/// A pinned read section on one generation of a map.
///
/// Belongs to the thread that began it: use and end it on that thread only. While
/// it lives it holds its generation and delays the reclamation of values removed
/// meanwhile, so keep it short.
#[allow(non_camel_case_types)]
pub struct amap_read_t {
    guard: ReadGuard<Key, CValue, CHashBuilder>,
    owner: usize,
    /// How many `amap_read_for_each` calls on this section are running (nested
    /// calls from a callback count each): `amap_read_end` from a callback would
    /// free the section under the walk, so it aborts instead. Only the owner thread
    /// touches it (checked before any use).
    walks: Cell<u32>,
}

/// A cheap identity of the calling thread: `pthread_self()`, unique among live
/// threads. `std::thread::current()` would clone an `Arc` per call, which doubled
/// the cost of `amap_read_get`; a thread-local's address costs a `__tls_get_addr`
/// call per use in the shared library, where `pthread_self` is one load.
fn thread_token() -> usize {
    // SAFETY: `pthread_self` has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as usize }
}

/// The allocation of a section this thread ended, kept for its next
/// `amap_read_begin`: a section begun and ended around each lookup then costs no
/// `malloc` and `free` (about 130 of the 400 instructions such a lookup took,
/// callgrind). Its contents were dropped when the section ended; the allocation is
/// freed when the thread exits.
type SpareSection = Box<MaybeUninit<amap_read_t>>;

thread_local! {
    static SPARE_SECTION: Cell<Option<SpareSection>> = const { Cell::new(None) };
}

/// This thread's spare section allocation, or a new one (also where the
/// thread-local is gone: a section begun from another thread-local's destructor).
fn section_allocation() -> SpareSection {
    SPARE_SECTION
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(Box::new_uninit)
}

/// Keeps an ended section's allocation for this thread's next section, or frees
/// it if one is kept already (or the thread-local is gone).
fn keep_section_allocation(allocation: SpareSection) {
    // `Cell` (not `RefCell`): a drop run from here (the spare replaced) cannot
    // find the thread-local borrowed.
    let _ = SPARE_SECTION.try_with(|spare| {
        if let Some(before) = spare.replace(Some(allocation)) {
            spare.set(Some(before));
        }
    });
}

/// The `owner` of a section that has ended (no thread's `pthread_self()` is 0): a
/// section used or ended again while its allocation waits as this thread's spare
/// fails the thread check, or `amap_read_end`'s own, instead of reading a dropped
/// guard. (Once the next `amap_read_begin` has taken the allocation, the old
/// pointer is the new section: that misuse goes undetected.)
const ENDED: usize = 0;

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
        out_read.set(begin_section(map.map.pin()));
        Ok(())
    })
}

/// A section of this thread over `guard`, in this thread's spare allocation if it
/// has one.
fn begin_section(guard: ReadGuard<Key, CValue, CHashBuilder>) -> *mut amap_read_t {
    let read = amap_read_t {
        guard,
        owner: thread_token(),
        walks: Cell::new(0),
    };
    let mut allocation = section_allocation();
    allocation.write(read);
    // Initialized just above: `amap_read_end` drops the contents and takes the
    // allocation back as uninitialized.
    Box::into_raw(allocation).cast::<amap_read_t>()
}

/// Begins a read section on the snapshot's generation (0.8.0) and writes it to
/// `*out_read`: borrowed lookups (`amap_read_get`, `amap_read_for_each`, ...)
/// where `amap_snapshot_get` retains and the caller releases each value. What
/// Rust callers have as `Snapshot::pin`.
///
/// Ownership: as `amap_read_begin`'s: the caller owns the section and ends it with
/// `amap_read_end`, on this same thread. The section holds the snapshot's
/// generation itself: it stays usable after `amap_snapshot_release` and
/// `amap_free`.
///
/// # Safety
/// `snap` must be a live snapshot; `out_read` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_snapshot_read_begin(
    snap: *const amap_snapshot_t,
    out_read: *mut *mut amap_read_t,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (snap, out_read) = unsafe { (arg(snap)?, out(out_read)?) };
        out_read.set(begin_section(snap.snapshot.pin()));
        Ok(())
    })
}

/// Writes the number of entries in the section's generation to `*out_len`
/// (0.8.0). Racy while writers run, as `amap_len` is.
///
/// # Safety
/// `read` must be a live section of this thread; `out_len` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_read_len(
    read: *const amap_read_t,
    out_len: *mut usize,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (read, out_len) = unsafe { (arg(read)?, out(out_len)?) };
        read.check_thread()?;
        out_len.set(read.guard.len());
        Ok(())
    })
}

/// Writes 1 to `*out_present` if `key` is in the section's generation, else 0
/// (0.8.0).
///
/// # Safety
/// `read` must be a live section of this thread; `key` as in `amap_insert`;
/// `out_present` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_read_contains(
    read: *const amap_read_t,
    key: *const u8,
    key_len: usize,
    out_present: *mut u8,
) -> amap_status_t {
    guard(|| {
        let (read, key, out_present) =
            // SAFETY: the contract of this function.
            unsafe { (arg(read)?, self::key(key, key_len)?, out(out_present)?) };
        read.check_thread()?;
        out_present.set(u8::from(read.guard.contains_key(key)));
        Ok(())
    })
}

/// Writes the id of the section's generation to `*out_generation` (0.8.0): 0 for
/// a new map's first, one more for each clear or replace after it; the id of the
/// ticket of the clear or replace that retires it (`amap_ticket_id`).
///
/// # Safety
/// `read` must be a live section of this thread; `out_generation` valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_read_generation(
    read: *const amap_read_t,
    out_generation: *mut u64,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (read, out_generation) = unsafe { (arg(read)?, out(out_generation)?) };
        read.check_thread()?;
        out_generation.set(read.guard.generation());
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
        let (read, key, out_data) =
            // SAFETY: the contract of this function.
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

/// Called by `amap_get_with` with the value's `data` and the caller's `user`
/// pointer.
///
/// Ownership: `data` is **borrowed for the call only**: the read section it was
/// found in ends when the callback returns. Never free it; retain the value with
/// `amap_get` to keep it longer.
#[allow(non_camel_case_types)]
pub type amap_visit_fn = Option<unsafe extern "C" fn(data: *mut c_void, user: *mut c_void)>;

/// Looks `key` up in the map's current generation and, if it is there, calls
/// `visit(data, user)` with its value's `data`; returns `AMAP_OK`, or
/// `AMAP_NOT_FOUND` without calling `visit`.
///
/// A read section in one call, as `amap_read_begin`, `amap_read_get` and
/// `amap_read_end` make in three: the lookup pins, `visit` runs while the value
/// is protected by that pin, and the pin ends when `visit` returns. No reference
/// count touched, nothing to end, and no allocation (but for a thread's first pin
/// of any map, which registers the thread). `visit` may read and write the map
/// (`amap_get`, `amap_insert`, `amap_remove`, ...), but must not wait for
/// reclamation (`amap_flush`, `amap_ticket_wait`, `amap_free`: the pin it runs
/// under holds up the grace periods they wait for, so they time out, or never
/// return without a limit; `amap_ticket_wait` for a clear made in the callback
/// returns `AMAP_WOULD_DEADLOCK` at once); it must return normally (no `longjmp` out of it), and
/// should be short: while it runs, it holds up the reclamation of every map's
/// removed values and retired generations, as a read section does. A `NULL`
/// `visit` is `AMAP_NULL_ARGUMENT`.
///
/// Ownership: as `amap_visit_fn` says: `data` borrowed for the call. `user` is
/// passed through untouched.
///
/// # Safety
/// `map` must be a live map; `key` as in `amap_insert`; `visit` `NULL` or a valid
/// function, which must not free `map`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_get_with(
    map: *const amap_t,
    key: *const u8,
    key_len: usize,
    visit: amap_visit_fn,
    user: *mut c_void,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let (map, key) = unsafe { (arg(map)?, self::key(key, key_len)?) };
        let visit = visit.ok_or(amap_status_t::AMAP_NULL_ARGUMENT)?;
        let pinned = map.map.pin();
        let value = pinned
            .get_borrowed(key)
            .ok_or(amap_status_t::AMAP_NOT_FOUND)?;
        // Soundness: `value.data` is the pointer given to `amap_insert`, kept
        // alive by `pinned` (an epoch pin on the generation `value` was found in:
        // `ReadGuard`), which lives until after the call.
        // SAFETY: the data outlives the call (above); the callback's validity is
        // the caller's contract.
        unsafe { visit(value.data, user) };
        Ok(())
    })
}

/// Called by `amap_read_for_each` for each entry: the key bytes, the value's
/// `data`, and the caller's `user` pointer. Return 0 to go on, anything else to
/// stop.
///
/// Ownership: `key` is **borrowed for the call only** (a copy: keep the bytes by
/// copying them). `data` is **borrowed for the section**, as from `amap_read_get`:
/// valid until `amap_read_end`, even if the key is removed or the map cleared
/// meanwhile. Never free either.
#[allow(non_camel_case_types)]
pub type amap_read_fn = Option<
    unsafe extern "C" fn(
        key: *const u8,
        key_len: usize,
        data: *mut c_void,
        user: *mut c_void,
    ) -> i32,
>;

/// Calls `callback(key, key_len, data, user)` for each entry of the section's
/// generation, until it returns non-zero. Returns `AMAP_OK` whether or not the
/// callback stopped early.
///
/// No lock is held while the callback runs: the walk reads the section's
/// generation lock-free, and `key` and `data` are borrowed from it (no copy, no
/// reference count touched). So the callback may call into the map, including
/// `amap_insert`, `amap_remove`, `amap_get` and `amap_read_get` on this section; it
/// must not end this section. An entry present for the whole walk is seen exactly
/// once; entries written to the generation during the walk may or may not be seen
/// (a key removed and inserted again during the walk may be seen twice); entries
/// of another generation (after a clear or replace) never are.
///
/// Ownership: as `amap_read_fn` says: `data` borrowed until `amap_read_end`, `key`
/// for the call. `user` is passed through untouched.
///
/// # Safety
/// `read` must be a live section of this thread; `callback` must be a valid
/// function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_read_for_each(
    read: *const amap_read_t,
    callback: amap_read_fn,
    user: *mut c_void,
) -> amap_status_t {
    guard(|| {
        // SAFETY: the contract of this function.
        let read = unsafe { arg(read) }?;
        let callback = callback.ok_or(amap_status_t::AMAP_NULL_ARGUMENT)?;
        read.check_thread()?;
        read.walks.set(read.walks.get() + 1);
        // Counted down however the walk ends (a panic included).
        let _walking = Walking(&read.walks);
        // `iter` holds no lock, and each key and value is borrowed from
        // `read.guard`, which lives until `amap_read_end`.
        for (key, value) in read.guard.iter() {
            // Soundness: `key` (borrowed from the section) lives for the call; `value.data` is the C
            // pointer given to `amap_insert`, kept alive by the section (the borrow
            // of `read.guard`: epoch pin + generation guard, `ReadGuard::new`); the
            // callback's validity is the caller's contract.
            // SAFETY: the key copy and the section-held value outlive the call (above).
            let stop = unsafe { callback(key.as_ptr(), key.len(), value.data, user) } != 0;
            if stop {
                break;
            }
        }
        Ok(())
    })
}

/// Counts a walk of `amap_read_for_each` down when dropped.
struct Walking<'a>(&'a Cell<u32>);

impl Drop for Walking<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Ends a read section; every pointer it handed out is invalid afterwards. `NULL`
/// is a no-op.
///
/// Ending a section on another thread than the one that began it would corrupt the
/// epoch's per-thread state: it is detected and aborts the process with a message.
/// So is ending it from inside an `amap_read_for_each` callback on it (the walk
/// still uses the section), and ending it a second time before this thread begins
/// another section: its memory is kept for this thread's next section, whose
/// pointer it then is, so a second end after that ends the new section.
///
/// # Safety
/// `read` must be `NULL` or a live section; it is invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn amap_read_end(read: *mut amap_read_t) {
    let _ = guard(|| {
        if read.is_null() {
            return Ok(());
        }
        // SAFETY: `read` is a live section from `amap_read_begin` or
        // `amap_snapshot_read_begin` (the contract);
        // its thread and walks are checked below before it is ended.
        let section = unsafe { &*read };
        if section.owner == ENDED {
            // Only reached while the allocation is this thread's spare: a section
            // ended twice (its next begin would make it live again).
            eprintln!("atomic-map: amap_read_end called on a section already ended");
            std::process::abort();
        }
        if section.check_thread().is_err() {
            eprintln!(
                "atomic-map: amap_read_end called on a thread other than the one that began the section"
            );
            std::process::abort();
        }
        if section.walks.get() != 0 {
            eprintln!(
                "atomic-map: amap_read_end called from an amap_read_for_each callback on the same section"
            );
            std::process::abort();
        }
        // Taken back as the `Box<MaybeUninit<amap_read_t>>` it was made from
        // (`begin_section`; the same layout), before its contents are dropped, so
        // that a panic in the drop frees it.
        // SAFETY: the contract: ours to end, once; no walk borrows it (checked
        // above), and `section` is not used past this point.
        let mut allocation = unsafe { Box::from_raw(read.cast::<MaybeUninit<amap_read_t>>()) };
        let ended = allocation.as_mut_ptr();
        // SAFETY: `ended` holds the initialized section (`begin_section`), dropped
        // here, once; what is left is uninitialized, and so the box treats it.
        unsafe { std::ptr::drop_in_place(ended) };
        // SAFETY: `ended` points into the live allocation; a plain word is written
        // in place of the dropped section's, read by a later `amap_read_end` or
        // check of the same (ended) pointer while the allocation is the spare.
        unsafe { std::ptr::addr_of_mut!((*ended).owner).write(ENDED) };
        keep_section_allocation(allocation);
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AMAP_RECLAIM_MANUAL, amap_free, amap_insert, amap_new_with, amap_options_init,
        amap_options_t,
    };

    /// An ended section's allocation is kept as the thread's spare and taken by its
    /// next section (no `malloc` per section); sections open at once have their own,
    /// and one spare at most is kept; every section reads its value. (A use of an
    /// ended section, refused while its allocation waits as the spare, is
    /// `test_api.c`'s `read_end_twice_aborts`: contract broken on purpose, which
    /// Miri would flag here.)
    #[test]
    fn an_ended_section_is_reused_by_the_next() {
        // Manual mode: no reclaimer thread.
        let mut options = MaybeUninit::<amap_options_t>::uninit();
        let mut map = std::ptr::null_mut();
        // SAFETY: `options` is valid for a write, initialized by `amap_options_init`
        // before it is read; `map` is valid for a write.
        unsafe {
            assert_eq!(
                amap_options_init(options.as_mut_ptr()),
                amap_status_t::AMAP_OK
            );
            (*options.as_mut_ptr()).reclaim_mode = AMAP_RECLAIM_MANUAL;
            assert_eq!(
                amap_new_with(options.as_ptr(), &mut map),
                amap_status_t::AMAP_OK
            );
        }
        let key = *b"k";
        // SAFETY: a live map and a valid key; the data is an integer with no destructor.
        let status = unsafe {
            amap_insert(
                map,
                key.as_ptr(),
                1,
                7 as *mut c_void,
                None,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(status, amap_status_t::AMAP_OK);
        let begin = move |map: *const amap_t| {
            let mut read = std::ptr::null_mut();
            let mut data = std::ptr::null_mut();
            // SAFETY: a live map, a valid key and out-pointers.
            unsafe {
                assert_eq!(amap_read_begin(map, &mut read), amap_status_t::AMAP_OK);
                assert_eq!(
                    amap_read_get(read, key.as_ptr(), 1, &mut data),
                    amap_status_t::AMAP_OK
                );
            }
            assert_eq!(data as usize, 7);
            read
        };
        let end = |read: *mut amap_read_t| {
            // SAFETY: a live section of this thread (from `begin`), ended once.
            unsafe { amap_read_end(read) }
        };
        // This thread's spare allocation, as an address (left in place).
        let spare = || {
            SPARE_SECTION.with(|cell| {
                let kept = cell.take();
                let at = kept
                    .as_ref()
                    .map(|b| b.as_ptr().cast::<amap_read_t>().cast_mut());
                cell.set(kept);
                at
            })
        };
        assert_eq!(spare(), None);
        let first = begin(map);
        assert_eq!(spare(), None);
        end(first);
        assert_eq!(
            spare(),
            Some(first),
            "an ended section's allocation not kept"
        );
        let second = begin(map);
        assert_eq!(second, first, "the spare allocation not taken");
        assert_eq!(spare(), None, "the spare taken but still kept");
        let nested = begin(map);
        assert_ne!(nested, second);
        end(second);
        end(nested); // one spare is kept: the first ended; `nested`'s is freed
        assert_eq!(spare(), Some(second));
        // SAFETY: a map from `amap_new_with`, freed once, no section open on it.
        unsafe { amap_free(map) };
    }
}
