//! What the background reclaimer costs when there is nothing to do: builds `--maps`
//! maps (100,000 by default; one per tenant is a common shape), inserts into and
//! clears each once (so that each is registered with the reclaimer, whose passes
//! walk the registered maps), lets the reclaimer finish, then reads the CPU time of
//! its thread (`/proc/self/task/*/stat`, in clock ticks) over `--seconds` (5) of
//! idleness and prints it as a share of one core.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench idle_reclaimer                    # 100,000 maps
//! cargo bench -p atomic-map-benches --bench idle_reclaimer -- --maps 10000
//! cargo bench -p atomic-map-benches --bench idle_reclaimer -- --test          # smoke run (CI)
//! ```
//!
//! Linux only (reads `/proc`).

mod args;

use args::arg;

use std::time::Duration;

use atomic_map::AtomicMap;

/// The CPU time (user + system, in clock ticks) of the reclaimer's thread.
fn reclaimer_ticks() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("Linux: /proc/self/task");
    for task in tasks {
        let path = task.expect("a task entry").path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.starts_with("atomic-map") {
            let stat = std::fs::read_to_string(path.join("stat")).expect("the task's stat");
            // The fields after the command's closing parenthesis: utime and stime
            // are the 12th and 13th of them (proc(5)).
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .expect("a stat line")
                .split_whitespace()
                .collect();
            let ticks = |i: usize| fields[i].parse::<u64>().expect("a tick count");
            return ticks(11) + ticks(12);
        }
    }
    panic!("no reclaimer thread (named atomic-map-…) in this process");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let test = args.iter().any(|a| a == "--test");
    let maps = arg::<f64>(&args, "--maps", if test { 1000.0 } else { 100_000.0 }) as usize;
    let seconds: f64 = arg(&args, "--seconds", if test { 0.5 } else { 5.0 });
    let built: Vec<AtomicMap<u64, u64>> = (0..maps).map(|_| AtomicMap::new()).collect();
    let retired: Vec<_> = built
        .iter()
        .map(|map| {
            map.insert(1, 1);
            map.clear_async()
        })
        .collect();
    for ticket in retired {
        ticket.wait();
    }
    std::thread::sleep(Duration::from_secs(1));
    let before = reclaimer_ticks();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let ticks = reclaimer_ticks() - before;
    // SAFETY: `sysconf` reads a configuration value; no memory is passed.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    println!(
        "{maps} maps, each cleared once, then {seconds} s idle: the reclaimer used {:.1} ms of CPU ({:.2}% of a core)",
        ticks as f64 / per_second * 1e3,
        ticks as f64 / per_second / seconds * 100.0
    );
}
