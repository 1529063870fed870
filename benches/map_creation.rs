//! Creating many maps: one map per tenant is a common shape, so building a map must
//! cost about what building a `DashMap` costs, and must not start a thread.
//!
//! Creates `--maps` maps (1,000 by default) of `AtomicMap` (default settings: the
//! process-wide reclaimer) and of `DashMap`, alternately, `--rounds` times (9), and
//! prints the median time of each and the ratio; then the same for dropping them
//! (empty maps: a tenant that goes away). The process's thread count (from
//! `/proc/self/task`) is printed before and after; `tests/threads.rs` asserts it.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench map_creation                    # 1,000 maps, 9 rounds
//! cargo bench -p atomic-map-benches --bench map_creation -- --maps 10000
//! cargo bench -p atomic-map-benches --bench map_creation -- --test          # smoke run (CI)
//! ```

mod args;

use args::{arg, median};

use std::hint::black_box;
use std::time::Instant;

use atomic_map::AtomicMap;
use dashmap::DashMap;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let test = args.iter().any(|a| a == "--test");
    let maps: usize = arg(&args, "--maps", if test { 10 } else { 1000 });
    let rounds: usize = arg(&args, "--rounds", if test { 1 } else { 9 });
    let before = threads();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_dropped, mut theirs_dropped) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let built: Vec<AtomicMap<u64, u64>> = (0..maps).map(|_| AtomicMap::new()).collect();
        ours.push(t.elapsed());
        black_box(&built);
        let t = Instant::now();
        let peers: Vec<DashMap<u64, u64>> = (0..maps).map(|_| DashMap::new()).collect();
        theirs.push(t.elapsed());
        black_box(&peers);
        let t = Instant::now();
        drop(built);
        ours_dropped.push(t.elapsed());
        let t = Instant::now();
        drop(peers);
        theirs_dropped.push(t.elapsed());
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "create {maps} maps (median of {rounds}): AtomicMap {ours:.2?}, DashMap {theirs:.2?}, ratio {:.2}x; threads {before} before, {} after",
        ours.as_secs_f64() / theirs.as_secs_f64(),
        threads()
    );
    let (ours, theirs) = (median(ours_dropped), median(theirs_dropped));
    println!(
        "drop {maps} maps (median of {rounds}): AtomicMap {ours:.2?}, DashMap {theirs:.2?}, ratio {:.2}x",
        ours.as_secs_f64() / theirs.as_secs_f64(),
    );
}
