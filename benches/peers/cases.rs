//! Benchmarks whose cases each run in a child process, so that what earlier cases
//! left in the allocator is not counted against a later one, and where every
//! benchmark writes its results.

use std::process::Command;

/// The argument that makes a benchmark binary run one case and print its result.
const CASE_FLAG: &str = "--case";

/// Where benchmark results go: `target/bench-results` of the workspace (the folder
/// holding `Cargo.lock` above the compiling package: cargo runs a benchmark in its
/// own package's folder), or its `test` folder for the smoke runs of
/// `cargo bench -- --test`; under `mimalloc/` there when built with the `mimalloc`
/// feature.
pub fn results_dir(test: bool) -> String {
    let package = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = package
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .unwrap_or(package);
    let dir = root.join("target").join("bench-results");
    // Runs on another allocator keep their results apart (the `mimalloc` feature).
    let dir = if cfg!(feature = "mimalloc") {
        dir.join("mimalloc")
    } else {
        dir
    };
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
