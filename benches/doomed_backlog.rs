//! Values in flight under a write-heavy loop: how many doomed values (replaced,
//! not yet destroyed) wait for the reclaimer while threads upsert as fast as they
//! can, and how fast they upsert meanwhile.
//!
//! `--threads` threads (1) each upsert random keys of `--keys` (10,000, prefilled)
//! for `--secs` seconds (3), on one `AtomicMap` in background mode; the main thread
//! samples `stats().pending_values` every millisecond. Printed per run: upserts per
//! second per thread, and the median, 90th percentile and maximum of the samples;
//! `--repeat` runs (3), each on a fresh map.
//!
//! A doomed value's cell is reused only once a pass has destroyed it, so this count
//! is both memory and the lines the writers' caches lose: with a pass every
//! millisecond it was 30,000–50,000 for one thread (three to five times the live
//! values), and in about one run in ten it grew without bound (1–11 M values
//! within 3 s: `docs/BENCHMARKS.md`, "History", "A reclaimer that keeps pace").
//! The keys come from a xorshift, not from a sequence in memory, so that the loop
//! reads nothing but the map.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench doomed_backlog
//! cargo bench -p atomic-map-benches --bench doomed_backlog -- --threads 2 --secs 5 --repeat 5
//! cargo bench -p atomic-map-benches --bench doomed_backlog -- --test    # smoke run (CI)
//! ```

mod args;

use args::arg;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use atomic_map::AtomicMap;

/// One run: upserts per second per thread, and the sorted samples.
fn run(threads: usize, keys: u64, secs: f64) -> (f64, Vec<usize>) {
    let map: Arc<AtomicMap<u64, u64>> = Arc::new(AtomicMap::new());
    (0..keys).for_each(|k| drop(map.insert(k, k)));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let (map, stop) = (Arc::clone(&map), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let (mut n, began) = (0u64, Instant::now());
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    drop(map.insert(x % keys, x));
                    n += 1;
                }
                n as f64 / began.elapsed().as_secs_f64()
            })
        })
        .collect();
    let began = Instant::now();
    let mut samples = Vec::new();
    while began.elapsed().as_secs_f64() < secs {
        std::thread::sleep(Duration::from_millis(1));
        samples.push(map.stats().pending_values);
    }
    stop.store(true, Ordering::Relaxed);
    let rate = writers.into_iter().map(|w| w.join().unwrap()).sum::<f64>() / threads as f64;
    samples.sort_unstable();
    (rate, samples)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let test = args.iter().any(|a| a == "--test");
    let threads: usize = arg(&args, "--threads", 1);
    let keys: u64 = arg(&args, "--keys", if test { 100 } else { 10_000 });
    let secs: f64 = arg(&args, "--secs", if test { 0.05 } else { 3.0 });
    let repeat: usize = arg(&args, "--repeat", if test { 1 } else { 3 });
    assert!(threads >= 1 && keys >= 1 && secs > 0.0 && repeat >= 1);
    println!("doomed_backlog: --threads {threads} --keys {keys} --secs {secs}");
    for i in 0..repeat {
        let (rate, samples) = run(threads, keys, secs);
        let at = |q: f64| {
            samples
                .get(((samples.len() - 1) as f64 * q) as usize)
                .copied()
        };
        println!(
            "run {i}: {:.1} M upserts/s per thread; values in flight: median {}, p90 {}, max {} ({} samples)",
            rate / 1e6,
            at(0.5).unwrap_or(0),
            at(0.9).unwrap_or(0),
            samples.last().copied().unwrap_or(0),
            samples.len()
        );
    }
}
