//! A fill while readers run: the time to insert `--entries` new keys into an empty
//! map (1,000,000 by default) on one thread, as every benchmark fills its maps
//! (`Peer::fill` in `peers/mod.rs`: `u64` keys `0..n`), while `--readers` threads (1
//! by default) look those keys up, and the page faults the process took meanwhile.
//! The maps are the other benchmarks' peers (`AtomicMap` read pinned, `DashMap`).
//!
//! This is where a table's growth meets its readers: every rehash makes a new slot
//! array, and on Linux a page of it that is first read (by the rehash's probes) maps
//! the kernel's zero page, whose replacement on the first write must be flushed
//! from every CPU running a thread of the process, an interrupt per page to each
//! reader (`src/mapped.rs`). `perf stat -e tlb:tlb_flush` beside this probe counts
//! those flushes. The maps (`--maps`, comma-separated: `atomic`, `dashmap`, and
//! `atomic-reserved`, `atomic-capacity` and `dashmap-capacity`, each sized for
//! the fill before it, with `AtomicMap::reserve`, `Builder::capacity` and
//! `DashMap::with_capacity`, the sizing counted in the fill's time) alternate `--repeat`
//! times in one process; the probe prints each fill, then each map's median and
//! its ratio to `dashmap`'s (all on their default hashers).
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench fill_probe -- --repeat 7
//! cargo bench -p atomic-map-benches --bench fill_probe -- --readers 0
//! cargo bench -p atomic-map-benches --bench fill_probe -- --test      # smoke run (CI)
//! perf stat -e tlb:tlb_flush,page-faults target/release/deps/fill_probe-* --maps atomic
//! ```

mod args;
mod peers;

use args::{arg, median};
use peers::{AtomicPinned, Key, Peer};

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use atomic_map::AtomicMap;
use dashmap::DashMap;

/// Minor page faults of the whole process so far (`getrusage`).
fn page_faults() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes one `rusage` into the buffer it is given.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(status, 0, "getrusage");
    // SAFETY: initialized by the successful call above.
    let usage = unsafe { usage.assume_init() };
    u64::try_from(usage.ru_minflt).unwrap_or(0)
}

/// One fill of `map` (empty) with keys `0..entries`, as every benchmark fills
/// (`Peer::fill`), while `readers` threads look those keys up: the time and the
/// page faults it took. Then the map is cleared and, for `AtomicMap`, its
/// teardown waited for, so that the next fill does not share the cores with it.
fn fill<M: Peer<u64>>(map: M, entries: u64, readers: usize) -> (Duration, u64) {
    let map = Arc::new(map);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..readers as u64)
        .map(|r| {
            let (map, stop) = (Arc::clone(&map), Arc::clone(&stop));
            thread::spawn(move || {
                let mut i = r * 7919;
                let mut found = 0u64;
                // Relaxed: a flag to stop; it orders nothing.
                while !stop.load(Ordering::Relaxed) {
                    found = found.wrapping_add(map.read(&u64::key(i % entries)));
                    i += 1;
                }
                black_box(found);
            })
        })
        .collect();
    // The readers are running before the fill starts.
    thread::sleep(Duration::from_millis(10));
    let faults = page_faults();
    let start = Instant::now();
    map.fill(entries);
    let took = start.elapsed();
    let faults = page_faults() - faults;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a reader panicked");
    }
    if let (_, Some(retired)) = map.clear() {
        retired.wait();
    }
    (took, faults)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test = args.iter().any(|a| a == "--test");
    let entries: u64 = arg(&args, "--entries", if test { 10_000 } else { 1_000_000 });
    let readers: usize = arg(&args, "--readers", 1);
    let repeat: usize = arg(&args, "--repeat", if test { 1 } else { 5 });
    let maps: Vec<String> = args
        .iter()
        .position(|a| a == "--maps")
        .and_then(|i| args.get(i + 1))
        .map_or("atomic,dashmap", String::as_str)
        .split(',')
        .map(String::from)
        .collect();
    assert!(
        entries > 0 && repeat > 0,
        "fill_probe: --entries and --repeat must be at least 1"
    );
    println!("fill_probe: --entries {entries} --readers {readers} --repeat {repeat}");
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); maps.len()];
    for run in 0..repeat {
        for (m, name) in maps.iter().enumerate() {
            let (took, faults) = match name.as_str() {
                "atomic" => fill(AtomicPinned(AtomicMap::new()), entries, readers),
                "dashmap" => fill(DashMap::new(), entries, readers),
                // Sized for the fill before it starts, the sizing timed with it.
                "atomic-reserved" => {
                    let start = Instant::now();
                    let map = AtomicMap::new();
                    map.reserve(entries as usize);
                    let sized = start.elapsed();
                    let (took, faults) = fill(AtomicPinned(map), entries, readers);
                    (sized + took, faults)
                }
                "atomic-capacity" => {
                    let start = Instant::now();
                    let map = atomic_map::Builder::new()
                        .capacity(entries as usize)
                        .build();
                    let sized = start.elapsed();
                    let (took, faults) = fill(AtomicPinned(map), entries, readers);
                    (sized + took, faults)
                }
                "dashmap-capacity" => {
                    let start = Instant::now();
                    let map = DashMap::with_capacity(entries as usize);
                    let sized = start.elapsed();
                    let (took, faults) = fill(map, entries, readers);
                    (sized + took, faults)
                }
                other => panic!(
                    "unknown map {other} (atomic, dashmap, atomic-reserved, atomic-capacity, dashmap-capacity)"
                ),
            };
            println!(
                "run {run}: {name}: {:.1} ms, {faults} page faults",
                took.as_secs_f64() * 1e3
            );
            times[m].push(took);
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    let dashmap = maps.iter().position(|m| m == "dashmap").map(|i| medians[i]);
    for (name, m) in maps.iter().zip(&medians) {
        match dashmap {
            // A time: the ratio is dashmap's over ours (above 1: we are faster).
            Some(d) => println!(
                "median {name}: {:.1} ms ({:.2}x dashmap's speed)",
                m.as_secs_f64() * 1e3,
                d.as_secs_f64() / m.as_secs_f64()
            ),
            None => println!("median {name}: {:.1} ms", m.as_secs_f64() * 1e3),
        }
    }
}
