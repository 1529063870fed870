//! Giving freed memory back to the operating system after a large teardown.
//!
//! glibc's allocator keeps the memory of freed small chunks in its arenas, and the
//! recycler's depot keeps freed value cells, each of which keeps its cell page
//! mapped (`recycle.rs`, `pages.rs`): after a generation of a million values is torn
//! down, the process's resident memory would stay near its peak although everything
//! was freed. Once passes have destroyed at least [`TRIM_THRESHOLD`] values since the
//! last trim, and at most every [`TRIM_INTERVAL`], the reclaimer gives the depot's
//! cells back to their pages and asks glibc to return free pages (`malloc_trim(0)`);
//! and when a trim came in the middle of a burst (a teardown runs in slices, over
//! several passes), once more on the first pass that destroys nothing, for what the
//! burst destroyed after it ([`TrimPolicy`]). This runs on the reclaiming thread,
//! never on a reader or the clearer; it holds each arena's lock while trimming that
//! arena, so a thread that allocates at that moment (a writer) may wait for it.
//! Other allocators return memory on their own schedule; there only the depot's
//! cells go back.

use std::time::{Duration, Instant};

/// Values destroyed since the last trim from which the reclaimer trims.
pub(crate) const TRIM_THRESHOLD: usize = 1 << 16;

/// The shortest time between two trims: a steady stream of removes (each pass
/// destroying tens of thousands of values) made every pass trim, and the trim
/// (`malloc_trim` with its `malloc_consolidate`) took 6% of a write benchmark's
/// samples; their cells go back to the writers anyway (`recycle.rs`).
pub(crate) const TRIM_INTERVAL: Duration = Duration::from_millis(100);

/// When a pass trims: the values of trimming maps destroyed since the last trim,
/// when that was, and whether it came in the middle of a burst. Fed the values of
/// trimming maps a pass destroyed, not its work: other maps' traffic (a map with
/// `trim_memory(false)`, or writes) must not keep a follow-up from coming.
#[derive(Debug, Default)]
pub(crate) struct TrimPolicy {
    untrimmed: usize,
    last_trim: Option<Instant>,
    /// The last trim ran on a pass that worked: the burst may have gone on after it
    /// (the rest of a teardown, in its slices), and what it destroyed then waits for
    /// a follow-up trim even when it is under the threshold: on the first pass that
    /// destroys none. Without one, the cells of that rest stayed in the depot, and a
    /// few thousand cells freed in hash order keep nearly every page of a
    /// million-entry teardown mapped (the demo: 43 MiB over the pre-fill level in 7
    /// runs of 19 with 2 readers).
    follow_up: bool,
}

impl TrimPolicy {
    /// Counts `destroyed` values of trimming maps destroyed outside a pass (by a
    /// releasing thread's help, `Domain::help`): the next pass's decision counts
    /// them, as if that pass had destroyed them.
    pub(crate) fn count(&mut self, destroyed: usize) {
        self.untrimmed += destroyed;
    }

    /// After a pass (at `now`) that destroyed `destroyed` values of trimming maps:
    /// whether to trim now. A threshold trim waits for the interval; the follow-up
    /// it owes does not (it comes once per threshold trim, so trims at most double),
    /// so that a manual reclaimer's `flush` ends with it too.
    pub(crate) fn after_pass(&mut self, destroyed: usize, now: Instant) -> bool {
        self.untrimmed += destroyed;
        let spaced = self
            .last_trim
            .is_none_or(|t| now.saturating_duration_since(t) >= TRIM_INTERVAL);
        if self.untrimmed >= TRIM_THRESHOLD && spaced {
            // Made while values were being destroyed: the burst may go on after it.
            self.follow_up = destroyed > 0;
        } else if self.follow_up && self.untrimmed > 0 && destroyed == 0 {
            // The burst has paused (this pass destroyed none): the follow-up, for
            // what it destroyed since. It stays owed while nothing has come (values
            // still in their grace period at the trim come later).
            self.follow_up = false;
        } else {
            return false;
        }
        self.untrimmed = 0;
        self.last_trim = Some(now);
        true
    }
}

/// Returns free memory to the OS where the allocator needs to be asked, after
/// giving back the recycled cells (which would pin their pages).
pub(crate) fn release_free_memory() {
    super::recycle::flush();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks the allocator's own free lists; it is
    // thread-safe and takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_burst_trimmed_in_its_middle_is_trimmed_again_once_it_pauses() {
        let t0 = Instant::now();
        let mut policy = TrimPolicy::default();
        // A teardown's first slices cross the threshold: trim.
        assert!(policy.after_pass(TRIM_THRESHOLD + 1, at(t0, 0)));
        // Its last slices, under the threshold: no trim while it runs...
        assert!(!policy.after_pass(10_000, at(t0, 1)));
        // ...but on the first pass that destroys nothing, at once (no interval).
        assert!(policy.after_pass(0, at(t0, 2)));
        // And only once.
        assert!(!policy.after_pass(0, at(t0, 3)));
        assert!(!policy.after_pass(5, at(t0, 400)));
        assert!(!policy.after_pass(0, at(t0, 401)));
    }

    #[test]
    fn a_trickle_under_the_threshold_is_not_trimmed() {
        let t0 = Instant::now();
        let mut policy = TrimPolicy::default();
        for pass in 0..100 {
            assert!(!policy.after_pass(5, at(t0, pass * 16)), "pass {pass}");
            assert!(
                !policy.after_pass(0, at(t0, pass * 16 + 8)),
                "quiet pass {pass}"
            );
        }
    }

    #[test]
    fn the_follow_up_waits_for_values_still_in_their_grace_period() {
        let t0 = Instant::now();
        let mut policy = TrimPolicy::default();
        assert!(policy.after_pass(TRIM_THRESHOLD, at(t0, 0)));
        // Quiet passes with nothing destroyed since: nothing to trim yet.
        assert!(!policy.after_pass(0, at(t0, 1)));
        assert!(!policy.after_pass(0, at(t0, 500)));
        // The stragglers come (their grace period over), then a quiet pass.
        assert!(!policy.after_pass(300, at(t0, 501)));
        assert!(policy.after_pass(0, at(t0, 502)));
    }

    #[test]
    fn threshold_trims_are_spaced_by_the_interval() {
        let t0 = Instant::now();
        let mut policy = TrimPolicy::default();
        assert!(policy.after_pass(TRIM_THRESHOLD, t0));
        // The threshold again, too soon, while values are being destroyed: it waits...
        assert!(!policy.after_pass(TRIM_THRESHOLD, t0 + TRIM_INTERVAL / 2));
        // ...and the first pass after the interval trims; made on a quiet pass, it
        // owes no follow-up.
        assert!(policy.after_pass(0, t0 + TRIM_INTERVAL));
        assert!(!policy.after_pass(7, t0 + TRIM_INTERVAL * 2));
        assert!(!policy.after_pass(0, t0 + TRIM_INTERVAL * 3));
    }
}
