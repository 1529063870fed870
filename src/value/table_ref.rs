//! `TableRef`: the table's own reference to a value cell, what a generation's
//! table stores in its slots (the `SlotPointer` the table is generic over).

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use super::{HANDED_OVER, MAPPED, ValueCell, ValueRef};
use crate::reclaim::home::HomeRef;
use crate::reclaim::recycle::{self, Recycle};
use crate::reclaim::report::DropOutcome;
use crate::sync::AtomicUsize;
use crate::table::SlotPointer;

/// The table's own reference to a value: what a generation's table stores. It is
/// the count's `MAPPED` bit, kept apart from the holders' count (see `MAPPED`).
///
/// Leaving the table, it becomes the caller's [`ValueRef`] ([`into_handle`](Self::into_handle),
/// no atomic step: `remove` hands the table's reference over) or is released
/// (its drop: an eviction; [`release_unreachable`](Self::release_unreachable): a
/// teardown).
pub(crate) struct TableRef<K, V> {
    cell: NonNull<ValueCell<V, K>>,
    _owns: PhantomData<ValueCell<V, K>>,
}

// SAFETY: as for `ValueRef`: the table shares `&V` and `&K` with every reader's
// thread and its release may destroy both on another thread.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for TableRef<K, V> {}
// SAFETY: as above; `&TableRef` only gives `&V`, `&K` and new handles.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for TableRef<K, V> {}

impl<K, V> TableRef<K, V> {
    /// Allocates a cell holding `value` for `key`, mapped: its count is `MAPPED`
    /// (no holder yet). The caller holds an owner of `home` (a map or a generation).
    #[inline]
    pub(crate) fn new(key: K, value: V, home: HomeRef) -> Self {
        Self::with_count(key, value, home, MAPPED)
    }

    /// Allocates a cell as [`new`](Self::new) does, with one holder counted from the
    /// start: the table's reference and a handle on the value, which `compute`'s
    /// inserts and `get_or_insert_with` return. Counting the holder in the cell's
    /// first write costs nothing, where [`retain`](Self::retain) after `new` is a
    /// locked read-modify-write (the cell is not shared yet: no other thread can
    /// see its count before the table publishes it, under the lock, with Release).
    #[inline]
    pub(crate) fn new_with_handle(key: K, value: V, home: HomeRef) -> (Self, ValueRef<V>) {
        let entry = Self::with_count(key, value, home, MAPPED + 1);
        let handle = ValueRef {
            cell: entry.head(),
            _owns: PhantomData,
        };
        (entry, handle)
    }

    /// A new cell whose count starts at `refs`: `MAPPED`, and 1 more for each
    /// handle the caller makes of it.
    #[inline(always)]
    fn with_count(key: K, value: V, home: HomeRef, refs: usize) -> Self {
        home.get().count_created();
        let cell = recycle::alloc_cell::<ValueCell<V, K>>();
        // Soundness: `alloc_cell` returns fresh memory valid for writes of one
        // `ValueCell<V, K>` and aligned for it (its own layout, or a size class at
        // least as large with alignment 8, which `class_of` grants only to types
        // aligned to at most 8); it is written whole here, before any use.
        // SAFETY: fresh memory for one cell, written whole before use (above).
        unsafe {
            cell.as_ptr().write(ValueCell {
                refs: AtomicUsize::new(refs),
                home,
                value,
                key,
            })
        };
        TableRef {
            cell,
            _owns: PhantomData,
        }
    }

    /// The cell as its handles see it (the prefix without the key).
    fn head(&self) -> NonNull<ValueCell<V>> {
        self.cell.cast()
    }

    /// A new holder's handle on the value (one atomic increment): the table's
    /// reference keeps the cell alive meanwhile (the caller holds the shard's lock,
    /// so no writer can give that reference up; a lock-free reader uses
    /// [`ValueRef::retain_if_mapped`] instead).
    pub(crate) fn retain(&self) -> ValueRef<V> {
        // SAFETY: this table reference keeps the cell alive during the call.
        unsafe { ValueRef::retain_raw(self.head()) };
        ValueRef {
            cell: self.head(),
            _owns: PhantomData,
        }
    }

    /// The table's reference, handed over to the caller as a handle, with no
    /// atomic step (see `HANDED_OVER`): what `remove` and a replacing `insert`
    /// return.
    pub(crate) fn into_handle(self) -> ValueRef<V> {
        let cell = self.head();
        std::mem::forget(self);
        ValueRef {
            // A cell's address is aligned to at least 4 (`ValueCell` holds a
            // `usize`): the lowest bit is free for the tag.
            cell: cell.map_addr(|addr| addr | HANDED_OVER),
            _owns: PhantomData,
        }
    }

    /// Gives up the reference of a generation being torn down on the reclaimer.
    ///
    /// No guard can reach a generation whose teardown has begun, so if this was the
    /// last reference the value is destroyed here, at once; otherwise a handle or a C
    /// retain still holds it and its own release will defer the free. Returns how
    /// the destructor ended if the value was destroyed.
    /// A value destroyed here frees its cell to `to` (a teardown's
    /// [`teardown_recycling`](Self::teardown_recycling)).
    pub(crate) fn release_unreachable(self, to: Recycle) -> Option<DropOutcome> {
        let cell = self.cell;
        std::mem::forget(self);
        // SAFETY: the table's reference owned by `self` is given up here, and its
        // generation is being torn down (the only caller is `Store::teardown_slice`).
        unsafe { ValueRef::<V>::release_unreachable(cell, to) }
    }

    /// Where a teardown of a table of `entries` entries frees the cells it
    /// destroys ([`recycle::for_teardown`]).
    pub(crate) fn teardown_recycling(entries: usize) -> Recycle {
        recycle::for_teardown::<ValueCell<V, K>>(entries)
    }
}

// SAFETY: `into_raw` hands the table the cell pointer with the table's reference
// (the `MAPPED` bit) and `from_raw` takes it back; the cell stays alive while that
// reference is held, and longer for a pinned reader (`key`'s contract).
unsafe impl<K, V> SlotPointer for TableRef<K, V> {
    type Target = ValueCell<V, K>;
    type Key = K;

    fn into_raw(self) -> NonNull<ValueCell<V, K>> {
        let cell = self.cell;
        std::mem::forget(self);
        cell
    }

    fn as_raw(&self) -> NonNull<ValueCell<V, K>> {
        self.cell
    }

    unsafe fn from_raw(cell: NonNull<ValueCell<V, K>>) -> Self {
        TableRef {
            cell,
            _owns: PhantomData,
        }
    }

    unsafe fn key<'a>(cell: NonNull<ValueCell<V, K>>) -> &'a K {
        // SAFETY: the caller keeps the cell alive for `'a` (the trait's contract);
        // the key is never written after `new` and dropped only by `destroy`.
        unsafe { &(*cell.as_ptr()).key }
    }
}

impl<K, V> Deref for TableRef<K, V> {
    type Target = V;
    fn deref(&self) -> &V {
        // SAFETY: the table's reference keeps the cell alive (its count has `MAPPED`).
        unsafe { &self.cell.as_ref().value }
    }
}

impl<K, V> Drop for TableRef<K, V> {
    /// The table lets go of the value (an eviction): released like a holder's last
    /// reference would be, so readers pinned before are waited for.
    fn drop(&mut self) {
        // SAFETY: the table's reference is given up here, once.
        unsafe { ValueRef::release_units(self.head(), MAPPED) }
    }
}
