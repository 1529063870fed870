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

/// A key the map owns: the bytes copied from the caller's.
#[derive(Clone, Debug)]
pub(crate) struct Key(Box<[u8]>);

impl From<&KeyBytes> for Key {
    fn from(bytes: &KeyBytes) -> Key {
        Key(Box::from(bytes.as_bytes()))
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

    /// Every pair of keys of 0 to 20 bytes that differ in one byte (each
    /// position), or in length, compares unequal; each key equals its copy; and a
    /// `Key` hashes as the `KeyBytes` it borrows.
    #[test]
    fn short_keys_compare_as_bytes_do() {
        let hasher = std::collections::hash_map::RandomState::new();
        for len in 0..=20usize {
            let key: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            let owned = Key::from(KeyBytes::new(&key));
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
}
