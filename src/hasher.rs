//! `DefaultHashBuilder`: the hasher a map uses unless it is given another.
//!
//! foldhash's quality variant, with every seed drawn from the
//! operating system's randomness through std's `RandomState`: the six seeds foldhash
//! shares between hashers, once per process, and a per-map seed. foldhash on its
//! own seeds the shared ones from ASLR addresses, the clock and a heap address, and
//! shares them with every other foldhash user in the process; knowing them, keys
//! that collide in every map can be built (a word equal to a seed zeroes a multiply).
//! std's SipHash cost about 80 instructions of every operation: a 1-thread `u64`
//! upsert took 677 with it and 594 with foldhash (callgrind, `docs/BENCHMARKS.md`).
//! foldhash is "minimally DoS-resistant": it does not claim to withstand an attacker
//! who studies a long-running program's behaviour (iteration order, timings) to
//! recover its seeds; SipHash does. Maps with untrusted keys whose order or timing
//! an attacker can observe can take std's hasher (`Builder::hasher`).

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use foldhash::SharedSeed;
use foldhash::quality::{FoldHasher, SeedableRandomState};

use crate::sync::ProcessOnce;

/// The seeds shared by every `DefaultHashBuilder` of the process: from the OS, once.
static SHARED_SEED: ProcessOnce<SharedSeed> = ProcessOnce::new();

/// A fresh 64-bit seed from the OS's randomness: std's `RandomState` keys come from
/// the OS once per thread and change with each `new`; hashing a constant with them
/// gives an unpredictable value.
fn os_random_u64() -> u64 {
    std::hash::RandomState::new().hash_one(0x5eed_u64)
}

/// The default hasher builder of [`AtomicMap`](crate::AtomicMap) (and of the C
/// ABI's maps): [foldhash](https://docs.rs/foldhash)'s quality variant, every seed of it drawn from the
/// operating system's randomness (through std's
/// [`RandomState`](std::hash::RandomState)): the seeds foldhash shares, once per
/// process, and one per map, so that no caller can predict a hash. Like std's, the
/// hashes differ from map to map and from run to run.
///
/// foldhash is much faster than std's SipHash (about 80 instructions less per
/// operation on `u64` keys) but, unlike SipHash, does not claim to withstand an
/// attacker who studies the program's behaviour (the order an iteration yields,
/// timings) to recover its seeds and then chooses colliding keys. A map whose keys
/// come from such an attacker can use std's hasher, as any other `BuildHasher +
/// Clone`:
///
/// ```
/// let map: atomic_map::AtomicMap<String, u32, std::hash::RandomState> =
///     atomic_map::Builder::new().hasher(std::hash::RandomState::new()).build();
/// map.insert("k".to_string(), 1);
/// ```
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
        let shared = SHARED_SEED.get_or_init(|| SharedSeed::from_u64(os_random_u64()));
        DefaultHashBuilder {
            foldhash: SeedableRandomState::with_seed(os_random_u64(), shared),
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
    type Hasher = DefaultMapHasher;

    #[inline(always)]
    fn build_hasher(&self) -> DefaultMapHasher {
        DefaultMapHasher(self.foldhash.build_hasher())
    }
}

/// The [`Hasher`] of [`DefaultHashBuilder`] (foldhash's quality variant; not std's SipHash
/// `DefaultHasher`).
#[derive(Clone)]
pub struct DefaultMapHasher(FoldHasher<'static>);

impl fmt::Debug for DefaultMapHasher {
    /// Never shows the seed or the state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultMapHasher").finish_non_exhaustive()
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

impl Hasher for DefaultMapHasher {
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
    fn the_shared_seed_is_not_foldhashs_own() {
        // foldhash's own shared seed comes from addresses and the clock; ours from the
        // OS. With the same per-map seed, hashes differ unless the shared seeds match.
        let _sets_the_shared_seed = DefaultHashBuilder::new();
        let ours = SeedableRandomState::with_seed(0, SHARED_SEED.get().unwrap());
        let theirs = SeedableRandomState::with_seed(0, SharedSeed::global_random());
        let differ = (0u64..8)
            .filter(|k| ours.hash_one(k) != theirs.hash_one(k))
            .count();
        assert_eq!(differ, 8);
    }

    /// The mean number of slots a linear probe visits to place each hash, in 8
    /// arrays of 2,048 slots chosen by the top 3 bits (a default map's shards on
    /// 2 CPUs), indexed by the low 11 (as `table/array.rs` takes them).
    #[cfg(target_pointer_width = "64")]
    fn mean_probe(hashes: impl Iterator<Item = u64>) -> f64 {
        let mut taken = vec![[false; 2048]; 8];
        let (mut probes, mut placed) = (0, 0);
        for hash in hashes {
            let shard = &mut taken[(hash >> 61) as usize];
            let mut i = hash as usize & 2047;
            probes += 1;
            while shard[i] {
                i = (i + 1) & 2047;
                probes += 1;
            }
            shard[i] = true;
            placed += 1;
        }
        f64::from(probes) / f64::from(placed)
    }

    /// Under a shared seed that makes foldhash's fast variant cluster small even
    /// keys (found by a search over `SharedSeed::from_u64`), the default hasher
    /// spreads them like a random function (about 1.22 probes at this load)
    /// for every per-map seed tried.
    ///
    /// 64-bit targets only: foldhash's fast variant folds differently on 32-bit
    /// ones, where this seed does not make it cluster.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn small_keys_spread_under_a_seed_that_clusters_them() {
        static CLUSTERING: SharedSeed = SharedSeed::from_u64(119);
        let keys = || (0..10_000u64).step_by(2);
        for map_seed in [0, 1, 0x5eed, 0x0123_4567_89ab_cdef] {
            let fast = foldhash::fast::SeedableRandomState::with_seed(map_seed, &CLUSTERING);
            let fast_probes = mean_probe(keys().map(|k| fast.hash_one(k)));
            assert!(
                fast_probes > 2.0,
                "the seed does not cluster (fast: {fast_probes:.2}): the test cannot fail"
            );
            let ours = DefaultHashBuilder {
                foldhash: SeedableRandomState::with_seed(map_seed, &CLUSTERING),
            };
            let probes = mean_probe(keys().map(|k| ours.hash_one(k)));
            assert!(
                probes < 1.4,
                "small keys cluster: {probes:.2} probes per key (fast: {fast_probes:.2})"
            );
        }
    }

    #[test]
    fn debug_hides_the_seed() {
        assert_eq!(
            format!("{:?}", DefaultHashBuilder::new()),
            "DefaultHashBuilder { .. }"
        );
    }
}
