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
const CASE_FLAG: &str = "--case";

/// Where benchmark results go: `target/bench-results` of the workspace (the folder
/// holding `Cargo.lock` above the compiling package: cargo runs a benchmark in its
/// own package's folder), or its `test` folder for the smoke runs of
/// `cargo bench -- --test`.
pub fn results_dir(test: bool) -> String {
    let package = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = package
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .unwrap_or(package);
    let dir = root.join("target").join("bench-results");
    let dir = if test { dir.join("test") } else { dir };
    dir.to_string_lossy().into_owned()
}

/// The driver of a benchmark whose cases each run in a child process.
///
/// In a child (started with `--case <spec>`), runs `case(spec)`, prints the CSV line
/// it returns and exits. Otherwise returns whether this is a smoke run (`--test`),
/// for the caller to pick its case specs and then call [`run_cases`].
pub fn child_or_parent(case: impl FnOnce(&str) -> String) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == CASE_FLAG) {
        println!("{}", case(&args[i + 1]));
        std::process::exit(0);
    }
    args.iter().any(|a| a == "--test")
}

/// Runs each case spec in a child process of this binary, echoing its CSV line,
/// and writes `header` and the lines to `file` under [`results_dir`].
pub fn run_cases(test: bool, specs: &[String], header: &str, file: &str) {
    let mut csv = format!("{header}\n");
    for spec in specs {
        let line = run_case_in_child(spec);
        eprintln!("{line}");
        csv.push_str(&line);
        csv.push('\n');
    }
    let dir = results_dir(test);
    std::fs::create_dir_all(&dir).expect("creating the results folder");
    std::fs::write(format!("{dir}/{file}"), csv).expect("writing the results");
    eprintln!("results in {dir}/{file}");
}

/// Runs this binary again with `--case <case>` and returns what the child printed
/// on stdout (its result line); panics, with the child's stderr, if it failed.
fn run_case_in_child(case: &str) -> String {
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .arg(CASE_FLAG)
        .arg(case)
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
