//! `Key` and `KeyBytes`: the map's byte-string keys, compared without a call to
//! `bcmp` when they are short.
//!
//! A C caller's key comes with its length at run time, so `[u8]`'s equality
//! compiles to a call to `bcmp` (through the GOT in the shared library): 18 of the
//! 132 instructions of an `amap_read_get` (callgrind). `KeyBytes`' equality
//! compares keys of 4 to 16 bytes with two loads from each side instead (116
//! instructions), and other keys with `bcmp` as before (`docs/C-API.md`, "What
//! the C ABI costs", for what it does to the time).
//! Hashing is `[u8]`'s, unchanged, for both types: a `Key` and the `KeyBytes`
//! it borrows as hash alike, as `Borrow` requires.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use smallvec::SmallVec;

/// Key bytes as a lookup borrows them: `[u8]` with a short-key equality.
#[repr(transparent)]
#[derive(Debug)]
pub(crate) struct KeyBytes([u8]);

impl KeyBytes {
    /// `bytes` as `KeyBytes`.
    #[inline(always)]
    pub(crate) fn new(bytes: &[u8]) -> &KeyBytes {
        let raw = std::ptr::from_ref(bytes) as *const KeyBytes;
        // SAFETY: `KeyBytes` is `repr(transparent)` over `[u8]` (above): the same
        // layout, alignment and length metadata, so the cast pointer points at a
        // valid `KeyBytes` for as long as `bytes` is borrowed.
        unsafe { &*raw }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The first `N` bytes of `bytes` (at least `N` long) and its last `N`, as
/// integers: together they cover every byte of a slice of `N` to `2 * N` bytes.
#[inline(always)]
fn ends<const N: usize>(bytes: &[u8]) -> ([u8; N], [u8; N]) {
    let first: [u8; N] = bytes[..N].try_into().expect("at least N bytes");
    let last: [u8; N] = bytes[bytes.len() - N..]
        .try_into()
        .expect("at least N bytes");
    (first, last)
}

impl PartialEq for KeyBytes {
    #[inline(always)]
    fn eq(&self, other: &KeyBytes) -> bool {
        let (a, b) = (&self.0, &other.0);
        if a.len() != b.len() {
            return false;
        }
        // Two loads of each side cover a key of N to 2N bytes (the loads overlap
        // below 2N): equal keys load equal, and every byte of a key is in one
        // of its loads, so unequal keys of one length differ in one of them.
        match a.len() {
            8..=16 => {
                let ((a0, a1), (b0, b1)) = (ends::<8>(a), ends::<8>(b));
                u64::from_ne_bytes(a0) == u64::from_ne_bytes(b0)
                    && u64::from_ne_bytes(a1) == u64::from_ne_bytes(b1)
            }
            4..=7 => {
                let ((a0, a1), (b0, b1)) = (ends::<4>(a), ends::<4>(b));
                u32::from_ne_bytes(a0) == u32::from_ne_bytes(b0)
                    && u32::from_ne_bytes(a1) == u32::from_ne_bytes(b1)
            }
            _ => a == b,
        }
    }
}

impl Eq for KeyBytes {}

impl Hash for KeyBytes {
    #[inline(always)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// Key bytes a key holds in its own memory, in the map's cell, rather than
/// behind a pointer: up to 16, which covers integer keys, 16-byte identifiers
/// and short strings. It makes a `Key` 24 bytes (`SmallVec`'s length word and a
/// union of the inline bytes and the heap pointer and length, with its `union`
/// feature), and the C ABI's cell 64 ([`CELL_BYTES`]).
pub(crate) const INLINE_KEY_BYTES: usize = 16;

/// A key the map owns: the bytes copied from the caller's, in the key itself when
/// they fit ([`INLINE_KEY_BYTES`]), on the heap otherwise.
///
/// Inline, a key sits in the value's cell, on the line a lookup reads for the
/// key's length: a hit reads the slot and that one line. A boxed key (as every
/// key was until 2026-12-06) made a third dependent cache miss of every lookup
/// over a table larger than the caches (the key's bytes, in an allocation of
/// their own), and an allocation and a free of every insert and remove
/// (`docs/C-API.md`, "Short keys in the cell").
#[derive(Clone, Debug)]
pub(crate) struct Key(SmallVec<[u8; INLINE_KEY_BYTES]>);

/// The C ABI's cell: count, account, value (`data`, `dtor`, `ctx`) and key, one
/// cache line. The cells are carved from pages in 8-byte size classes
/// (`atomic-map`'s `reclaim/recycle.rs`), so a 64-byte cell starts on a line of
/// its own; at 56 bytes (a boxed key), 3 cells in 4 straddled two lines. (On
/// 32-bit targets the cell is 40 bytes, and straddles as often: the constant is
/// for 64-bit targets only.)
#[cfg(target_pointer_width = "64")]
pub(crate) const CELL_BYTES: usize = 64;

// The cell is `repr(C)`: the count and the account (a word each), the value, the
// key (`atomic-map`'s `src/value/mod.rs`, `ValueCell`), all word-aligned. On
// 32-bit targets it is 40 bytes. The test `cells_are_one_line_each` checks the
// cells a map carves.
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<Key>() == 24);
    assert!(
        2 * size_of::<usize>() + size_of::<crate::value::CValue>() + size_of::<Key>() == CELL_BYTES
    );
};

impl From<&KeyBytes> for Key {
    fn from(bytes: &KeyBytes) -> Key {
        Key(SmallVec::from_slice(bytes.as_bytes()))
    }
}

impl Borrow<KeyBytes> for Key {
    #[inline(always)]
    fn borrow(&self) -> &KeyBytes {
        KeyBytes::new(&self.0)
    }
}

impl Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.borrow() as &KeyBytes == other.borrow()
    }
}

impl Eq for Key {}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `KeyBytes` hashes (`Borrow`'s contract).
        (self.borrow() as &KeyBytes).hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Every pair of keys of 0 to 20 bytes (inline up to 16, boxed above) that differ in one byte (each
    /// position), or in length, compares unequal; each key equals its copy; and a
    /// `Key` hashes as the `KeyBytes` it borrows.
    #[test]
    fn short_keys_compare_as_bytes_do() {
        let hasher = std::collections::hash_map::RandomState::new();
        for len in 0..=20usize {
            let key: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            let owned = Key::from(KeyBytes::new(&key));
            assert_eq!(owned.0.spilled(), len > INLINE_KEY_BYTES, "{len} bytes");
            assert_eq!(&*owned, &key[..]);
            assert!(KeyBytes::new(&key) == owned.borrow(), "{len} bytes");
            assert_eq!(
                hasher.hash_one(KeyBytes::new(&key)),
                hasher.hash_one(&owned)
            );
            for at in 0..len {
                let mut other = key.clone();
                other[at] ^= 0x80;
                assert!(
                    KeyBytes::new(&key) != KeyBytes::new(&other),
                    "{len} bytes, byte {at}"
                );
                assert!(owned != Key::from(KeyBytes::new(&other)));
            }
            let mut longer = key.clone();
            longer.push(0);
            assert!(
                KeyBytes::new(&key) != KeyBytes::new(&longer),
                "{len} bytes and one more"
            );
        }
    }

    /// Each cell a map carves for the C ABI's values is one cache line, at the
    /// start of one: what keeps a lookup's key compare, count and value on the
    /// line it reads for the key's length. (Cells are carved from 64 KiB-aligned
    /// pages, under Miri too; only under `atomic-map`'s loom feature, which this
    /// crate never enables, is each a heap allocation.) 64-bit targets only: on
    /// 32-bit ones the cell is 40 bytes.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn cells_are_one_line_each() {
        use crate::{
            amap_free, amap_get, amap_insert, amap_new, amap_status_t, amap_value_release,
        };
        let map = amap_new();
        for i in 0..1000u64 {
            let key = i.to_le_bytes();
            // SAFETY: a live map and a valid key; the data is an integer with no
            // destructor.
            let status = unsafe {
                amap_insert(
                    map,
                    key.as_ptr(),
                    key.len(),
                    std::ptr::null_mut(),
                    None,
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(status, amap_status_t::AMAP_OK);
        }
        for i in 0..1000u64 {
            let key = i.to_le_bytes();
            let mut value = std::ptr::null_mut();
            // SAFETY: a live map, a valid key and out-pointer; the value is released once.
            unsafe {
                assert_eq!(
                    amap_get(map, key.as_ptr(), key.len(), &mut value),
                    amap_status_t::AMAP_OK
                );
                // The value handle points at the cell's value, after its count and
                // account (a word each).
                let cell = value as usize - 2 * std::mem::size_of::<usize>();
                assert_eq!(cell % CELL_BYTES, 0, "key {i}: a cell at {cell:#x}");
                assert_eq!(amap_value_release(value), amap_status_t::AMAP_OK);
            }
        }
        // SAFETY: the map from amap_new, freed once.
        unsafe { amap_free(map) };
    }
}
