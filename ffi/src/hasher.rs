//! The hashers a C caller may pick for a map (`amap_options_t.hasher`): the
//! crate's default, foldhash, or std's SipHash-1-3 for keys chosen by an
//! attacker who can watch the program.

use std::collections::hash_map::{DefaultHasher as SipHasher13, RandomState};
use std::hash::{BuildHasher, Hash, Hasher};

use atomic_map::{DefaultHashBuilder, DefaultMapHasher};

/// `amap_options_t.hasher`: the crate's default hasher, foldhash's quality
/// variant with every seed drawn from the operating system (the default: about
/// 190-230 instructions a key faster than SipHash for keys of 8 to 40 bytes;
/// "minimally DoS-resistant").
pub const AMAP_HASHER_FAST: u8 = 0;
/// `amap_options_t.hasher`: std's SipHash-1-3, keyed from the operating system's
/// randomness (drawn once per thread, distinct for each map), for keys an
/// attacker chooses while watching the program's
/// behaviour (the order `amap_snapshot_foreach` yields, timings): Rust's
/// `HashMap` default, built to withstand such an attacker.
pub const AMAP_HASHER_SIPHASH: u8 = 1;

/// The hasher builder of a C map: one of the two above, chosen once when the
/// map is made. A map hashes through [`BuildHasher::hash_one`], which picks the
/// variant once per key.
#[derive(Clone, Debug)]
pub(crate) enum CHashBuilder {
    Fast(DefaultHashBuilder),
    SipHash(RandomState),
}

impl CHashBuilder {
    /// The builder `amap_options_t.hasher` names, with fresh keys; `None` for a
    /// value that names none.
    pub(crate) fn named(hasher: u8) -> Option<Self> {
        match hasher {
            AMAP_HASHER_FAST => Some(CHashBuilder::Fast(DefaultHashBuilder::new())),
            AMAP_HASHER_SIPHASH => Some(CHashBuilder::SipHash(RandomState::new())),
            _ => None,
        }
    }
}

/// `Hasher` methods that hand their integer to the variant's own.
macro_rules! forward_writes {
    ($($method:ident($int:ty)),*) => {
        $(
            fn $method(&mut self, i: $int) {
                match self {
                    CHasher::Fast(h) => h.$method(i),
                    CHasher::SipHash(h) => h.$method(i),
                }
            }
        )*
    };
}

/// The state of a [`CHashBuilder`]'s hasher.
pub(crate) enum CHasher {
    Fast(DefaultMapHasher),
    SipHash(SipHasher13),
}

impl BuildHasher for CHashBuilder {
    type Hasher = CHasher;

    fn build_hasher(&self) -> CHasher {
        match self {
            CHashBuilder::Fast(fast) => CHasher::Fast(fast.build_hasher()),
            CHashBuilder::SipHash(sip) => CHasher::SipHash(sip.build_hasher()),
        }
    }

    /// The variant's own `hash_one`: one branch per key, not one per word hashed.
    #[inline(always)]
    fn hash_one<T: Hash>(&self, x: T) -> u64 {
        match self {
            CHashBuilder::Fast(fast) => fast.hash_one(x),
            CHashBuilder::SipHash(sip) => sip.hash_one(x),
        }
    }
}

impl Hasher for CHasher {
    fn finish(&self) -> u64 {
        match self {
            CHasher::Fast(h) => h.finish(),
            CHasher::SipHash(h) => h.finish(),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        match self {
            CHasher::Fast(h) => h.write(bytes),
            CHasher::SipHash(h) => h.write(bytes),
        }
    }

    // Every integer write is forwarded (a hasher may hash an integer otherwise
    // than its bytes); the signed ones default to these.
    forward_writes!(
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_usize(usize)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyBytes;

    /// Each variant hashes as the builder it wraps, through `hash_one` and
    /// through a built hasher alike (`hash_one` is overridden: the two must agree).
    #[test]
    fn each_variant_hashes_as_the_builder_it_wraps() {
        let (fast, sip) = (DefaultHashBuilder::new(), RandomState::new());
        let ours = [
            CHashBuilder::Fast(fast.clone()),
            CHashBuilder::SipHash(sip.clone()),
        ];
        for key in [&b""[..], b"k", b"tenant-0042", &[7u8; 40][..]] {
            let key = KeyBytes::new(key);
            let theirs = [fast.hash_one(key), sip.hash_one(key)];
            for (builder, expected) in ours.iter().zip(theirs) {
                assert_eq!(builder.hash_one(key), expected, "{builder:?}");
                // Through a built hasher, on purpose: not the overridden `hash_one`.
                #[allow(clippy::manual_hash_one)]
                let through_built = {
                    let mut built = builder.build_hasher();
                    key.hash(&mut built);
                    built.finish()
                };
                assert_eq!(through_built, expected, "{builder:?}, built");
            }
        }
    }

    #[test]
    fn the_named_hashers_and_no_other() {
        assert!(matches!(
            CHashBuilder::named(AMAP_HASHER_FAST),
            Some(CHashBuilder::Fast(_))
        ));
        assert!(matches!(
            CHashBuilder::named(AMAP_HASHER_SIPHASH),
            Some(CHashBuilder::SipHash(_))
        ));
        assert!(CHashBuilder::named(2).is_none());
        assert!(CHashBuilder::named(u8::MAX).is_none());
    }
}
