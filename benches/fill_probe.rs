//! A fill while readers run: the time to insert `--entries` new keys into an empty
//! map (1,000,000 by default) on one thread while `--readers` threads (1 by
//! default) look keys up in it, and the page faults the process took meanwhile.
//!
//! This is where a table's growth meets its readers: every rehash makes a new slot
//! array, and on Linux a page of it that is first read (by the rehash's probes) maps
//! the kernel's zero page, whose replacement on the first write must be flushed
//! from every CPU running a thread of the process, an interrupt per page to each
//! reader (`src/mapped.rs`). `perf stat -e tlb:tlb_flush` beside this probe counts
//! those flushes. The maps (`--maps`, comma-separated: `atomic`, `dashmap`)
//! alternate `--repeat` times in one process; the probe prints each fill, then each
//! map's median and its ratio to `dashmap`'s (both on their default hashers).
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench fill_probe -- --repeat 7
//! cargo bench -p atomic-map-benches --bench fill_probe -- --readers 0
//! cargo bench -p atomic-map-benches --bench fill_probe -- --test      # smoke run (CI)
//! perf stat -e tlb:tlb_flush,page-faults target/release/deps/fill_probe-* --maps atomic
//! ```

mod args;

use args::{arg, median};

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use atomic_map::AtomicMap;
use dashmap::DashMap;

/// The maps this probe fills.
trait Fillable: Send + Sync + 'static {
    fn make() -> Self;
    fn insert(&self, key: u64, value: u64);
    fn contains(&self, key: u64) -> bool;
    /// Empties the map, and for `AtomicMap` waits for the teardown of what it held
    /// (the map's own small remains go to the reclaimer with its drop), so that the
    /// next fill does not share the cores with it.
    fn empty(self);
}

impl Fillable for AtomicMap<u64, u64> {
    fn make() -> Self {
        AtomicMap::new()
    }
    fn insert(&self, key: u64, value: u64) {
        AtomicMap::insert(self, key, value);
    }
    fn contains(&self, key: u64) -> bool {
        self.get(&key).is_some()
    }
    fn empty(self) {
        // The teardown runs on the reclaimer: waiting for it keeps it out of the
        // next fill.
        self.clear_async().wait();
    }
}

impl Fillable for DashMap<u64, u64> {
    fn make() -> Self {
        DashMap::new()
    }
    fn insert(&self, key: u64, value: u64) {
        DashMap::insert(self, key, value);
    }
    fn contains(&self, key: u64) -> bool {
        self.contains_key(&key)
    }
    fn empty(self) {
        drop(self);
    }
}

/// The keys of a fill: distinct, in no order a table could exploit.
fn keys(entries: usize) -> Vec<u64> {
    (0..entries as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555)
        .collect()
}

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

/// One fill of a fresh map with `readers` threads looking up its keys meanwhile:
/// the time and the page faults it took.
fn fill<M: Fillable>(keys: &Arc<Vec<u64>>, readers: usize) -> (Duration, u64) {
    let map = Arc::new(M::make());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..readers)
        .map(|r| {
            let (map, keys, stop) = (Arc::clone(&map), Arc::clone(keys), Arc::clone(&stop));
            thread::spawn(move || {
                let mut i = r * 7919;
                let mut found = 0usize;
                // Relaxed: a flag to stop; it orders nothing.
                while !stop.load(Ordering::Relaxed) {
                    found += usize::from(map.contains(keys[i % keys.len()]));
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
    for (value, &key) in keys.iter().enumerate() {
        map.insert(key, value as u64);
    }
    let took = start.elapsed();
    let faults = page_faults() - faults;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a reader panicked");
    }
    let map = Arc::into_inner(map).expect("the readers are gone");
    map.empty();
    (took, faults)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test = args.iter().any(|a| a == "--test");
    let entries: usize = arg(&args, "--entries", if test { 10_000 } else { 1_000_000 });
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
    let keys = Arc::new(keys(entries));
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); maps.len()];
    for run in 0..repeat {
        for (m, name) in maps.iter().enumerate() {
            let (took, faults) = match name.as_str() {
                "atomic" => fill::<AtomicMap<u64, u64>>(&keys, readers),
                "dashmap" => fill::<DashMap<u64, u64>>(&keys, readers),
                other => panic!("unknown map {other} (atomic, dashmap)"),
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
