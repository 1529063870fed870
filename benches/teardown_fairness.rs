//! Teardown fairness: one process-wide reclaimer serves every map, so a large
//! teardown must not hold up the small ones queued behind it.
//!
//! Fills a large map (`--entries`, 1,000,000 by default) and a small one (100
//! entries), both on the process-wide reclaimer; clears the large one, waits until
//! its teardown has begun (its entries count as pending), then clears the small one
//! and times how long the small one's `Retired` ticket takes, and the large one's.
//! `--rounds` rounds (9); prints the medians. Before teardowns ran in slices the
//! small map waited for the whole large teardown. `--values string` gives the
//! large map `String` values (a key's decimal digits: a destructor that frees a
//! small heap block) instead of `u64`s.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench teardown_fairness                       # 1,000,000 entries, 9 rounds
//! cargo bench -p atomic-map-benches --bench teardown_fairness -- --entries 100000
//! cargo bench -p atomic-map-benches --bench teardown_fairness -- --values string
//! cargo bench -p atomic-map-benches --bench teardown_fairness -- --test             # smoke run (CI)
//! ```

mod args;

use args::{arg, median};

use std::time::Instant;

use atomic_map::AtomicMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let test = args.iter().any(|a| a == "--test");
    let entries: u64 = arg(&args, "--entries", if test { 20_000 } else { 1_000_000 });
    let rounds: u64 = arg(&args, "--rounds", if test { 1 } else { 9 });
    let values: String = arg(&args, "--values", "u64".to_string());
    match values.as_str() {
        "u64" => run(entries, rounds, |key| key),
        "string" => run(entries, rounds, |key| key.to_string()),
        other => panic!("--values takes u64 or string, not {other:?}"),
    }
}

/// The rounds on a large map whose values `value` makes from their keys.
fn run<V: Send + Sync + 'static>(entries: u64, rounds: u64, value: impl Fn(u64) -> V) {
    let large: AtomicMap<u64, V> = AtomicMap::new();
    let small: AtomicMap<u64, u64> = AtomicMap::new();
    let (mut small_waits, mut large_waits) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for key in 0..entries {
            large.insert(key, value(key));
        }
        for key in 0..100 {
            small.insert(key, key);
        }
        let t = Instant::now();
        let large_retired = large.clear_async();
        while large.stats().pending_values == 0 && !large_retired.is_reclaimed() {
            std::thread::yield_now();
        }
        let began = Instant::now();
        let small_retired = small.clear_async();
        small_retired.wait();
        small_waits.push(began.elapsed());
        large_retired.wait();
        large_waits.push(t.elapsed());
    }
    let (small_wait, large_wait) = (median(small_waits), median(large_waits));
    println!(
        "teardown of {entries} entries (median of {rounds}): {large_wait:.2?}; a small map cleared meanwhile waited {small_wait:.2?} for its own"
    );
}
