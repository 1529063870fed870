//! One `clear_async` after a large fill, alone: what the clear costs when the fill
//! has evicted every line it touches (on a 2-core VM, a cold line costs more than
//! the clear's whole instruction count). `clear_latency` times clears among the
//! peers and with readers; this one is small enough to run under
//! `valgrind --tool=callgrind --cache-sim=yes`, which counts the clear's
//! instructions and first-level misses exactly where a timing is noisy.
//!
//! Fills `--entries` `u64` entries (1,000,000), times one clear and waits for its
//! teardown; `--rounds` times (25, after one untimed round that registers the map,
//! so that every timed clear takes a spare the reclaimer parked). Prints the
//! median and the spread. `--readers N` (0) runs N threads of pinned gets of
//! random filled keys meanwhile, as `clear_latency` does, with more rounds per run
//! than its 7 at 1,000,000 entries.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench clear_cold                     # 1,000,000 entries, 25 rounds
//! cargo bench -p atomic-map-benches --bench clear_cold -- --entries 1000 --rounds 201
//! cargo bench -p atomic-map-benches --bench clear_cold -- --readers 2      # with 2 readers
//! cargo bench -p atomic-map-benches --bench clear_cold -- --test           # smoke run (CI)
//! cargo bench -p atomic-map-benches --bench clear_cold --no-run            # then, on the binary it names:
//! valgrind --tool=callgrind --cache-sim=yes --LL=4194304,16,64 --toggle-collect='*clear_once*' \
//!     target/release/deps/clear_cold-<hash> --rounds 3                      # misses in the 3 timed clears
//! ```

mod args;

use args::arg;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use atomic_map::{AtomicMap, Retired};

fn fill(map: &AtomicMap<u64, u64>, entries: usize) {
    for k in 0..entries as u64 {
        map.insert(k, k);
    }
}

/// The timed call (a symbol of its own, for callgrind's `--toggle-collect`).
#[inline(never)]
fn clear_once(map: &AtomicMap<u64, u64>) -> Retired {
    black_box(map).clear_async()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let test = args.iter().any(|a| a == "--test");
    let entries: usize = arg(&args, "--entries", if test { 1000 } else { 1_000_000 });
    let rounds: usize = arg(&args, "--rounds", if test { 2 } else { 25 });
    let readers: usize = arg(&args, "--readers", 0);
    let map = AtomicMap::new();
    fill(&map, 1);
    map.clear_async().wait();
    // How many keys the readers draw from: the fill's, once it is complete.
    let filled = AtomicUsize::new(1);
    let stop = AtomicBool::new(false);
    let mut times = Vec::with_capacity(rounds);
    thread::scope(|scope| {
        for r in 0..readers {
            let (map, filled, stop) = (&map, &filled, &stop);
            scope.spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ r as u64;
                // Relaxed: a flag and a bound, no data published through them.
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = x % filled.load(Ordering::Relaxed) as u64;
                    black_box(map.pin().get_borrowed(&k).copied());
                }
            });
        }
        for _ in 0..rounds {
            fill(&map, entries);
            filled.store(entries, Ordering::Relaxed);
            let start = Instant::now();
            let retired = clear_once(&map);
            times.push(start.elapsed());
            retired.wait();
        }
        stop.store(true, Ordering::Relaxed);
    });
    times.sort();
    println!(
        "clear_async after a fill of {entries} u64 entries, {readers} readers ({rounds} rounds): median {:.2?}, min {:.2?}, max {:.2?}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
