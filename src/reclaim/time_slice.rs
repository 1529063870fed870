//! The background reclaimer's time slice: the shortest the kernel grants.
//!
//! A teardown of a large generation takes tens of milliseconds of CPU (about 35 ms
//! for 1,000,000 `u64` entries). When every core is busy with readers, the scheduler
//! takes that time from a reader, a slice at a time. Linux's EEVDF scheduler (6.6 and
//! later) lets a thread that preempted another run until its slice is used up, and
//! checks at the next tick (4 ms at `HZ=250`). With the default slice (0.75 ms times
//! one plus the log2 of the core count), a reclaimer woken shortly before a tick ran
//! on past it to the next one, and displaced a reader for up to two ticks: 5–8 ms.
//!
//! Since Linux 6.12 a thread may ask for a slice of its own (`sched_setattr`'s
//! `sched_runtime` for `SCHED_OTHER` and `SCHED_BATCH`: 0.1 to 100 ms, no privilege
//! needed). The reclaimer asks for the shortest, so that it gives the core back at
//! the first tick after it starts. Its share of the CPU does not change: the
//! scheduler shares by weight (the nice value, left as it is), not by slice.
//! Measured in `docs/BENCHMARKS.md`, "History", "The reclaimer's shortest slice".
//!
//! Best effort: on another OS, on a kernel without custom slices (which ignores the
//! request), or on a thread that inherited a policy other than `SCHED_OTHER` or
//! `SCHED_BATCH` from the thread that started it (a real-time one, `SCHED_IDLE`),
//! nothing changes.

/// The slice the reclaimer asks for, in nanoseconds: the kernel's minimum
/// (`sysctl_sched_base_slice`'s lower clamp for custom slices, 0.1 ms).
pub(crate) const RECLAIMER_SLICE_NS: u64 = 100_000;

/// Asks the kernel for a slice of [`RECLAIMER_SLICE_NS`] for the calling thread,
/// keeping its policy, nice value and reset-on-fork flag. Returns whether the
/// kernel accepted the request (a kernel older than 6.12 accepts it and ignores
/// the slice; `slice_of` then reports another).
/// (Not under Miri, which has no `sched_setattr`, nor under loom, whose threads
/// are not the kernel's.)
pub(crate) fn ask_for_shortest_slice() -> bool {
    #[cfg(all(target_os = "linux", not(feature = "loom"), not(miri)))]
    {
        linux::set_slice(0, RECLAIMER_SLICE_NS).is_ok()
    }
    #[cfg(not(all(target_os = "linux", not(feature = "loom"), not(miri))))]
    {
        let _ = RECLAIMER_SLICE_NS;
        false
    }
}

#[cfg(all(target_os = "linux", not(feature = "loom"), not(miri)))]
mod linux {
    use std::io;

    /// `struct sched_attr` of `<linux/sched/types.h>` in its first version
    /// (`SCHED_ATTR_SIZE_VER0`, 48 bytes, Linux 3.14): the fields a slice needs,
    /// without the utilization clamps of the second.
    #[repr(C)]
    #[derive(Debug, Default)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
    }

    const SCHED_ATTR_SIZE_VER0: u32 = 48;
    /// `SCHED_FLAG_RESET_ON_FORK`: the one flag of a fair thread kept across the
    /// change (the others belong to deadline and utilization clamping).
    const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

    /// The thread's scheduling attributes (`tid` 0: the calling thread).
    fn get(tid: libc::pid_t) -> io::Result<SchedAttr> {
        let mut attr = SchedAttr::default();
        // SAFETY: `attr` is a live, writable `SchedAttr` of `SCHED_ATTR_SIZE_VER0`
        // bytes (`#[repr(C)]`, the kernel's layout above), and that size is what
        // the call is told; the kernel writes at most that many bytes into it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                tid,
                &mut attr as *mut SchedAttr,
                SCHED_ATTR_SIZE_VER0,
                0,
            )
        };
        if rc == 0 {
            Ok(attr)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Sets the thread's slice to `slice_ns`, its policy, nice value and
    /// reset-on-fork flag as they are. Refuses (`Unsupported`) a thread whose policy
    /// is not `SCHED_OTHER` or `SCHED_BATCH`: a slice means nothing to the others,
    /// and a request rewritten for them could change what the program chose.
    pub(super) fn set_slice(tid: libc::pid_t, slice_ns: u64) -> io::Result<()> {
        let now = get(tid)?;
        let policy = now.sched_policy as libc::c_int;
        if policy != libc::SCHED_OTHER && policy != libc::SCHED_BATCH {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let attr = SchedAttr {
            size: SCHED_ATTR_SIZE_VER0,
            sched_policy: now.sched_policy,
            sched_flags: now.sched_flags & SCHED_FLAG_RESET_ON_FORK,
            sched_nice: now.sched_nice,
            sched_runtime: slice_ns,
            ..SchedAttr::default()
        };
        let attr: *const SchedAttr = &attr;
        // SAFETY: `attr` points to a live `SchedAttr` whose `size` field says how
        // many bytes the kernel reads (`SCHED_ATTR_SIZE_VER0`, the struct's size);
        // the kernel only reads it.
        let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, tid, attr, 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::AtomicMap;
        use crate::reclaim::time_slice::RECLAIMER_SLICE_NS;
        use std::time::{Duration, Instant};

        /// The kernel threads of this process named as the reclaimer names its
        /// thread (`comm` keeps 15 bytes of "atomic-map-reclaim").
        fn reclaimer_threads() -> Vec<libc::pid_t> {
            std::fs::read_dir("/proc/self/task")
                .expect("/proc/self/task")
                .filter_map(|task| {
                    let task = task.ok()?;
                    let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
                    let tid = task.file_name().to_str()?.parse().ok()?;
                    (comm.trim_end() == "atomic-map-recl").then_some(tid)
                })
                .collect()
        }

        #[test]
        fn the_background_reclaimer_runs_on_the_shortest_slice() {
            let map: AtomicMap<u64, u64> = AtomicMap::new();
            map.insert(1, 1);
            drop(map.clear_async());
            let supported = get(0).expect("sched_getattr").sched_runtime != 0;
            if !supported {
                eprintln!("this kernel reports no slices (before 6.12): nothing to check");
                return;
            }
            // The thread names itself and asks for its slice as it starts; other
            // tests' dedicated reclaimers may be starting or exiting meanwhile (a
            // thread gone reads as an error).
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let tids = reclaimer_threads();
                let slices: Vec<u64> = tids
                    .iter()
                    .filter_map(|&t| get(t).ok())
                    .map(|a| a.sched_runtime)
                    .collect();
                if !slices.is_empty() && slices.iter().all(|&s| s == RECLAIMER_SLICE_NS) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "reclaimer threads {tids:?} have slices {slices:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        #[test]
        fn the_slice_is_set_and_the_nice_value_kept() {
            std::thread::spawn(|| {
                // A nice value of 5 (lowering a priority needs no privilege).
                // SAFETY: `setpriority` takes plain integers; `0` is the calling
                // thread under `PRIO_PROCESS` (Linux applies it per thread).
                assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 5) }, 0);
                set_slice(0, 200_000).expect("sched_setattr");
                let attr = get(0).expect("sched_getattr");
                assert_eq!(attr.sched_nice, 5, "the nice value changed");
                assert_eq!(attr.sched_policy, libc::SCHED_OTHER as u32);
                if attr.sched_runtime != 0 {
                    // A kernel that reports slices (6.12+) reports this one.
                    assert_eq!(attr.sched_runtime, 200_000);
                }
            })
            .join()
            .unwrap();
        }

        #[test]
        fn other_policies_are_left_alone() {
            std::thread::spawn(|| {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: `param` is a live `sched_param`; 0 is the calling thread.
                let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
                assert_eq!(rc, 0);
                let before = get(0).expect("sched_getattr");
                let err = set_slice(0, 100_000).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::Unsupported);
                let after = get(0).expect("sched_getattr");
                assert_eq!(after.sched_policy, libc::SCHED_IDLE as u32);
                assert_eq!(after.sched_runtime, before.sched_runtime);
            })
            .join()
            .unwrap();
        }
    }
}
