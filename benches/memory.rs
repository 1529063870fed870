//! Memory of every map: bytes per entry at 1,000,000 entries, and resident memory
//! after a clear (and, for `AtomicMap`, the reclamation of the retired generation).
//!
//! Each map and key type runs in its own child process, so that what one case left
//! in the allocator is not counted against the next. RSS after the clear is read
//! twice: as the map left it, and after `malloc_trim(0)` (glibc keeps freed memory
//! unless asked; `AtomicMap`'s reclaimer asks after large teardowns, the peers do
//! not), so allocator retention and memory the map still holds can be told apart.
//! Results go to `target/bench-results/memory.csv`.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench memory              # full run (1,000,000 entries)
//! cargo bench -p atomic-map-benches --bench memory -- --test    # smoke run (CI)
//! ```

mod peers;

use std::time::Duration;

use peers::Key;
use peers::process::rss_bytes;

/// One case, in the child: `key:index:entries`. Prints a CSV line.
fn case<K: Key>(index: usize, entries: u64) -> String {
    let map = peers::all::<K>(false).swap_remove(index);
    // Nothing of the other (empty) maps is left; settle the allocator first.
    trim();
    let before = rss_bytes();
    map.fill(entries);
    let filled = rss_bytes();
    let (_, leftover) = map.clear();
    if let Some(retired) = leftover {
        retired.wait();
    }
    // Give deferred frees (papaya's, the reclaimer's values) a moment to land.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        map.read(&K::key(0));
    }
    let cleared = rss_bytes();
    trim();
    let trimmed = rss_bytes();
    format!(
        "{},{},{entries},{before},{filled},{:.1},{cleared},{trimmed}",
        K::NAME,
        map.name(),
        filled.saturating_sub(before) as f64 / entries as f64,
    )
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the OS; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn main() {
    let test = peers::process::child_or_parent(|spec| {
        let spec: Vec<&str> = spec.split(':').collect();
        let (index, entries) = (spec[1].parse().unwrap(), spec[2].parse().unwrap());
        match spec[0] {
            "u64" => case::<u64>(index, entries),
            _ => case::<String>(index, entries),
        }
    });
    let entries: u64 = if test { 10_000 } else { 1_000_000 };
    let maps = peers::all::<u64>(false).len();
    let specs: Vec<String> = ["u64", "string"]
        .iter()
        .flat_map(|key| (0..maps).map(move |index| format!("{key}:{index}:{entries}")))
        .collect();
    peers::process::run_cases(
        test,
        &specs,
        "key,map,entries,rss_before,rss_filled,bytes_per_entry,rss_after_clear,rss_after_trim",
        "memory.csv",
    );
}
