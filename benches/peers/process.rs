//! Process-level measurements: resident memory, and running one case of a
//! benchmark in a child process, so that what earlier cases left in the allocator
//! is not counted against a later one.
//!
//! Also used by `tests/memory.rs` and `examples/clear_under_load.rs` (through
//! `#[path]`), so there is one way to read RSS.

#![allow(dead_code)] // each user takes what it needs

use std::process::Command;

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

/// The argument that makes a benchmark binary run one case and print its result.
pub const CASE_FLAG: &str = "--case";

/// Runs this binary again with `--case <case>` and returns what the child printed
/// on stdout (its result line); panics, with the child's stderr, if it failed.
pub fn run_case_in_child(case: &str, extra: &[String]) -> String {
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .arg(CASE_FLAG)
        .arg(case)
        .args(extra)
        .output()
        .expect("starting a child process");
    assert!(
        out.status.success(),
        "case {case} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}
