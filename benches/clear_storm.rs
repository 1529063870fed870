//! Clear storm: continuous clears (10,000 per second) while two readers and a
//! writer run, for a fixed time, on every map (`u64` keys over 100,000).
//!
//! Reported per map: reads, writes and clears per second; the peak of the garbage
//! the map reports (`AtomicMap`: retired generations not yet torn down and values
//! awaiting destruction, sampled every millisecond); and peak RSS above the starting
//! level, against the single-generation footprint (RSS added by filling the map
//! with all 100,000 keys before the storm). Each map runs in its own child process.
//! Results go to `target/bench-results/storm.csv`.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench clear_storm              # full run (5 s per map)
//! cargo bench -p atomic-map-benches --bench clear_storm -- --test    # smoke run (CI)
//! ```

mod peers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use peers::process::rss_bytes;
use peers::{Peer, Rng};

const KEYS: u64 = 100_000;
const CLEARS_PER_SECOND: u64 = 10_000;

/// One map for `millis`, in the child. Prints a CSV line.
fn case(index: usize, millis: u64) -> String {
    let map: Arc<dyn Peer<u64>> = peers::all::<u64>(false).swap_remove(index);
    let start_rss = rss_bytes();
    map.fill(KEYS);
    let footprint = rss_bytes().saturating_sub(start_rss);
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, writes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut threads = Vec::new();
    for r in 0..2u64 {
        let (map, stop, reads) = (Arc::clone(&map), Arc::clone(&stop), Arc::clone(&reads));
        threads.push(thread::spawn(move || {
            let mut rng = Rng::new(r + 1);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(map.read(&rng.below(KEYS)));
                n += 1;
            }
            reads.fetch_add(n, Ordering::Relaxed);
        }));
    }
    {
        let (map, stop, writes) = (Arc::clone(&map), Arc::clone(&stop), Arc::clone(&writes));
        threads.push(thread::spawn(move || {
            let mut rng = Rng::new(99);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let k = rng.below(KEYS);
                if rng.below(4) == 0 {
                    map.remove(&k);
                } else {
                    map.insert(k, k);
                }
                n += 1;
            }
            writes.fetch_add(n, Ordering::Relaxed);
        }));
    }
    let clears = Arc::new(AtomicU64::new(0));
    {
        let (map, stop, clears) = (Arc::clone(&map), Arc::clone(&stop), Arc::clone(&clears));
        threads.push(thread::spawn(move || {
            let began = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Paced: the n-th clear is due at n / CLEARS_PER_SECOND.
                let due = Duration::from_micros(n * 1_000_000 / CLEARS_PER_SECOND);
                if let Some(wait) = due.checked_sub(began.elapsed()) {
                    thread::sleep(wait);
                }
                drop(map.clear());
                n += 1;
            }
            clears.store(n, Ordering::Relaxed);
        }));
    }
    let began = Instant::now();
    let (mut peak_rss, mut peak_retired, mut peak_pending) = (0, 0, 0);
    while began.elapsed() < Duration::from_millis(millis) {
        thread::sleep(Duration::from_millis(1));
        peak_rss = peak_rss.max(rss_bytes().saturating_sub(start_rss));
        if let Some((retired, pending)) = map.garbage() {
            peak_retired = peak_retired.max(retired);
            peak_pending = peak_pending.max(pending);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = began.elapsed().as_secs_f64();
    for t in threads {
        t.join().expect("a storm thread panicked");
    }
    let per_s = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / elapsed;
    let garbage = |v: usize| {
        if map.garbage().is_some() {
            v.to_string()
        } else {
            String::new()
        }
    };
    format!(
        "{},{:.0},{:.0},{:.0},{},{},{footprint},{peak_rss},{:.2}",
        map.name(),
        per_s(&reads),
        per_s(&writes),
        per_s(&clears),
        garbage(peak_retired),
        garbage(peak_pending),
        peak_rss as f64 / footprint.max(1) as f64,
    )
}

fn main() {
    let test = peers::cases::child_or_parent(|spec| {
        let (index, millis) = spec.split_once(':').expect("index:millis");
        case(index.parse().unwrap(), millis.parse().unwrap())
    });
    let millis = if test { 200 } else { 5_000 };
    let specs: Vec<String> = (0..peers::all::<u64>(false).len())
        .map(|index| format!("{index}:{millis}"))
        .collect();
    peers::cases::run_cases(
        test,
        &specs,
        "map,reads_per_s,writes_per_s,clears_per_s,peak_retired,peak_pending,footprint_bytes,peak_rss_bytes,peak_rss_over_footprint",
        "storm.csv",
    );
}
