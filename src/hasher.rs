//! `DefaultHashBuilder`: the hasher a map uses unless it is given another.
//!
//! foldhash (the hash hashbrown uses by default), seeded per map from std's
//! `RandomState`, which draws its keys from the operating system's randomness: as
//! fast as foldhash, and no caller can predict the seed to force collisions (the
//! contract in ARCHITECTURE.md, "hashing"). std's SipHash cost about 90
//! instructions of a 1-thread `u64` upsert's 746 (callgrind, `docs/BENCHMARKS.md`).

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use foldhash::SharedSeed;
use foldhash::fast::{FoldHasher, SeedableRandomState};

/// The default hasher builder of [`AtomicMap`](crate::AtomicMap) (and of the C
/// ABI's maps): [foldhash](https://docs.rs/foldhash), randomly seeded for each map
/// from the operating system's randomness (through std's
/// [`RandomState`](std::hash::RandomState)), so that no caller can choose keys that
/// collide. Like std's, the hashes differ from map to map and from run to run.
///
/// Any other `BuildHasher + Clone` can be given instead
/// ([`Builder::hasher`](crate::Builder::hasher)).
///
/// ```
/// use std::hash::BuildHasher;
/// let a = atomic_map::DefaultHashBuilder::new();
/// let b = a.clone();
/// assert_eq!(a.hash_one(42u64), b.hash_one(42u64)); // a clone hashes alike
/// ```
#[derive(Clone)]
pub struct DefaultHashBuilder {
    foldhash: SeedableRandomState,
}

impl DefaultHashBuilder {
    /// A hasher builder with a fresh random seed.
    pub fn new() -> Self {
        // std's `RandomState` keys come from the OS once per thread and change with
        // each `new`: hashing a constant with them gives a fresh unpredictable seed.
        let seed = std::hash::RandomState::new().hash_one(0x5eed_u64);
        DefaultHashBuilder {
            foldhash: SeedableRandomState::with_seed(seed, SharedSeed::global_random()),
        }
    }
}

impl Default for DefaultHashBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DefaultHashBuilder {
    /// Never shows the seed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultHashBuilder").finish_non_exhaustive()
    }
}

impl BuildHasher for DefaultHashBuilder {
    type Hasher = DefaultHasher;

    #[inline(always)]
    fn build_hasher(&self) -> DefaultHasher {
        DefaultHasher(self.foldhash.build_hasher())
    }
}

/// The [`Hasher`] of [`DefaultHashBuilder`].
#[derive(Clone)]
pub struct DefaultHasher(FoldHasher<'static>);

impl fmt::Debug for DefaultHasher {
    /// Never shows the seed or the state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultHasher").finish_non_exhaustive()
    }
}

/// Forwards each `write_*` (foldhash specializes the integer ones).
macro_rules! forward_writes {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            #[inline(always)]
            fn $method(&mut self, i: $ty) {
                self.0.$method(i)
            }
        )*
    };
}

impl Hasher for DefaultHasher {
    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes)
    }

    forward_writes!(
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_usize(usize),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_isize(isize),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_get_different_seeds() {
        // Two builders hash the same keys differently: the seed is per builder, not
        // a constant (a fixed seed would let a caller precompute collisions).
        let (a, b) = (DefaultHashBuilder::new(), DefaultHashBuilder::new());
        let differ = (0u64..8).filter(|k| a.hash_one(k) != b.hash_one(k)).count();
        assert_eq!(differ, 8);
    }

    #[test]
    fn integer_writes_are_forwarded() {
        // foldhash hashes `write_u64(7)` and `write(&7u64.to_ne_bytes())`
        // differently; a `write_u64` not forwarded would take the default path
        // through `write` and give the second.
        let s = DefaultHashBuilder::new();
        let inner = |f: fn(&mut FoldHasher<'static>)| {
            let mut h = s.foldhash.build_hasher();
            f(&mut h);
            h.finish()
        };
        let (as_int, as_bytes) = (
            inner(|h| h.write_u64(7)),
            inner(|h| h.write(&7u64.to_ne_bytes())),
        );
        assert_ne!(as_int, as_bytes, "the test cannot tell the paths apart");
        let mut ours = s.build_hasher();
        ours.write_u64(7);
        assert_eq!(ours.finish(), as_int);
    }

    #[test]
    fn debug_hides_the_seed() {
        assert_eq!(
            format!("{:?}", DefaultHashBuilder::new()),
            "DefaultHashBuilder { .. }"
        );
    }
}
