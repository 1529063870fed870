//! The process's resident memory, as every measurement here reads it.
//!
//! Also used by `tests/memory.rs` and `examples/clear_under_load.rs` (through
//! `#[path]`), so there is one way to read RSS.

/// Resident set size of this process, from /proc/self/statm (0 where unavailable).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
