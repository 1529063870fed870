//! `Reclaimer`: the public handle on a reclamation domain.

use std::fmt;
use std::time::Duration;

use super::domain::{Domain, ReclaimMode};
use crate::sync::Arc;

/// A reclaimer: the thread (or the program, in manual mode) that tears retired
/// generations down and destroys released values, for every map that uses it.
///
/// By default every map uses the **process-wide** reclaimer: one background thread
/// for the whole process, started with the first map and parked when idle. A map
/// whose values have slow destructors (C destructors that take locks or do I/O) can
/// be given a reclaimer of its own, shared with whichever maps the caller chooses,
/// so that its destructors never delay those of other maps, and theirs never delay
/// it. Destructors run on the reclaimer's thread (or, in manual mode, on the thread
/// that calls [`reclaim`](Self::reclaim), waits on a [`Retired`](crate::Retired)
/// ticket or drops the last map), unless a map asks for its released values'
/// destructors on the releasing threads
/// ([`Builder::destructors_on_releasing_threads`](crate::Builder::destructors_on_releasing_threads)).
///
/// Cloning a handle gives another handle on the same reclaimer. A dedicated
/// background reclaimer's thread exits once no handle and no map of it is left and
/// its last value is destroyed.
///
/// ```
/// use atomic_map::{AtomicMap, Builder, Reclaimer};
///
/// // Two maps whose destructors are slow share one reclaimer of their own.
/// let slow = Reclaimer::new();
/// let sessions: AtomicMap<u64, String> = Builder::new().reclaimer(&slow).build();
/// let uploads: AtomicMap<u64, Vec<u8>> = Builder::new().reclaimer(&slow).build();
/// sessions.insert(1, "alice".into());
/// uploads.insert(1, vec![0; 16]);
/// sessions.clear_async().wait(); // torn down on `slow`'s thread
/// assert!(sessions.reclaimer().same_as(&uploads.reclaimer()));
///
/// // Every other map shares the process-wide one.
/// let config: AtomicMap<String, u32> = AtomicMap::new();
/// assert!(config.reclaimer().same_as(&Reclaimer::process_wide()));
/// ```
pub struct Reclaimer {
    domain: Arc<Domain>,
}

impl Reclaimer {
    /// A new reclaimer with a background thread of its own (named
    /// `atomic-map-reclaim`), for the maps given it through
    /// [`Builder::reclaimer`](crate::Builder::reclaimer).
    ///
    /// # Panics
    /// If the thread cannot be spawned.
    ///
    /// ```
    /// use atomic_map::{AtomicMap, Builder, Reclaimer};
    ///
    /// // Maps whose values are slow to destroy get a thread of their own, so they
    /// // never delay the reclamation of the process's other maps.
    /// let slow = Reclaimer::new();
    /// let a: AtomicMap<u32, Vec<u8>> = Builder::new().reclaimer(&slow).build();
    /// let b: AtomicMap<u32, Vec<u8>> = Builder::new().reclaimer(&slow).build();
    /// assert!(a.reclaimer().same_as(&b.reclaimer()));
    /// a.insert(1, vec![0; 1024]);
    /// a.clear_async().wait();
    /// drop((a, b));
    /// slow.shutdown(); // joins the thread once its maps are gone
    /// ```
    pub fn new() -> Self {
        Reclaimer::from_domain(Domain::background())
    }

    /// A new reclaimer with no thread: its passes run when the program calls
    /// [`reclaim`](Self::reclaim) (or `reclaim` on one of its maps) or waits on (or polls) a
    /// [`Retired`](crate::Retired) ticket.
    ///
    /// ```
    /// use atomic_map::{AtomicMap, Builder, Reclaimer};
    ///
    /// let manual = Reclaimer::manual();
    /// let map: AtomicMap<u8, u8> = Builder::new().reclaimer(&manual).build();
    /// map.insert(1, 1);
    /// let retired = map.clear_async();
    /// assert!(!retired.is_reclaimed());
    /// manual.reclaim();
    /// assert!(retired.is_reclaimed());
    /// ```
    pub fn manual() -> Self {
        Reclaimer::from_domain(Domain::manual())
    }

    /// The process-wide reclaimer, which maps use unless told otherwise. Its
    /// thread is started on first use and never exits.
    ///
    /// ```
    /// let a = atomic_map::Reclaimer::process_wide();
    /// assert!(a.same_as(&atomic_map::Reclaimer::process_wide()));
    /// ```
    pub fn process_wide() -> Self {
        Reclaimer::from_domain(Domain::process_wide())
    }

    fn from_domain(domain: Arc<Domain>) -> Self {
        Domain::add_user(&domain);
        Reclaimer { domain }
    }

    pub(crate) fn domain(&self) -> &Arc<Domain> {
        &self.domain
    }

    /// Whether this reclaimer has a background thread or is run by the program.
    ///
    /// ```
    /// use atomic_map::{ReclaimMode, Reclaimer};
    /// assert_eq!(Reclaimer::manual().mode(), ReclaimMode::Manual);
    /// ```
    pub fn mode(&self) -> ReclaimMode {
        self.domain.mode()
    }

    /// Runs one pass on the calling thread: tears down every retired generation
    /// whose last holder has let go, starts the grace period of released values and
    /// destroys those past theirs, for every map of this reclaimer. Returns the
    /// number of generations torn down.
    ///
    /// In manual mode, passes run only through this (or the calls named on
    /// [`manual`](Self::manual)). With a background thread, this returns 0 at once
    /// while the thread is in a pass of its own. From a destructor run by a pass of
    /// this same reclaimer, it returns 0.
    ///
    /// A cleared generation waits for a grace period (pinned readers may still be
    /// in it): when no other thread is pinned meanwhile (a reader, another
    /// reclaimer's pass, such as the process-wide one's), one call tears it down;
    /// otherwise a later call does. In manual mode, call this periodically rather
    /// than once (as [`AtomicMap::reclaim`](crate::AtomicMap::reclaim) says).
    ///
    /// ```
    /// let manual = atomic_map::Reclaimer::manual();
    /// assert_eq!(manual.reclaim(), 0); // nothing to do yet
    /// ```
    pub fn reclaim(&self) -> usize {
        let wait = self.mode() == ReclaimMode::Manual;
        Domain::pass(&self.domain, wait).map_or(0, |r| r.torn_down)
    }

    /// Destroys everything released so far and not yet destroyed, then returns:
    /// runs the passes on this thread (manual mode) or waits for the background
    /// thread's (background mode). That is every retired generation no snapshot,
    /// guard or writer holds any more, and every value whose last holder let go,
    /// past its grace period, of every map of this reclaimer, including maps
    /// already dropped (and, for the process-wide reclaimer, the manual reclaimers
    /// it took over). Returns whether that was done within `timeout`.
    ///
    /// For programs about to exit (destructors with effects outside the process:
    /// files, sockets) and leak checkers. Without it, the background thread does the
    /// same within a few of its passes (it parks at most 16 ms between them), but a
    /// process that exits first never runs them. A thread that stays pinned (a
    /// [`ReadGuard`](crate::ReadGuard), a C read section) holds grace periods up:
    /// then this returns `false` after `timeout`. From a destructor run by a pass
    /// of this reclaimer it returns `false` at once (the pass cannot finish while
    /// the destructor waits).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    ///
    /// struct Flushed(Arc<AtomicUsize>);
    /// impl Drop for Flushed {
    ///     fn drop(&mut self) {
    ///         self.0.fetch_add(1, Ordering::SeqCst); // e.g. close a file
    ///     }
    /// }
    ///
    /// let closed = Arc::new(AtomicUsize::new(0));
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, Flushed(closed.clone()));
    /// let held = map.get(&1).unwrap();
    /// drop(map); // the value outlives its map...
    /// drop(held); // ...until its last holder lets go
    /// assert!(atomic_map::Reclaimer::process_wide().flush(Duration::from_secs(10)));
    /// assert_eq!(closed.load(Ordering::SeqCst), 1);
    /// ```
    pub fn flush(&self, timeout: Duration) -> bool {
        Domain::flush(&self.domain, timeout)
    }

    /// Whether the calling thread is running a pass of this reclaimer (a value's
    /// destructor): waiting for this reclaimer's work from here could not finish
    /// ([`flush`](Self::flush) and `Retired::wait_timeout` return at once there).
    ///
    /// ```
    /// assert!(!atomic_map::Reclaimer::process_wide().in_pass());
    /// ```
    pub fn in_pass(&self) -> bool {
        Domain::in_own_pass(&self.domain)
    }

    /// Drops this handle and, if it was the last user of a dedicated background
    /// reclaimer (no other handle, no map left), waits for its thread to finish:
    /// the thread exits once the last value of its maps is destroyed, so this
    /// blocks while any `ValueRef`, snapshot or C retain of them is held. For orderly
    /// shutdowns and leak checkers. Otherwise (other users left, the process-wide
    /// or a manual reclaimer, or called on the reclaimer's own thread) the same as
    /// `drop`.
    ///
    /// ```
    /// use atomic_map::{AtomicMap, Builder, Reclaimer};
    /// let own = Reclaimer::new();
    /// let map: AtomicMap<u8, String> = Builder::new().reclaimer(&own).build();
    /// map.insert(1, "x".into());
    /// drop(map);
    /// own.shutdown(); // the map's value is destroyed and the thread is gone
    /// ```
    pub fn shutdown(self) {
        let domain = Arc::clone(&self.domain);
        drop(self);
        Domain::join_if_unused(&domain);
    }

    /// Whether two handles name the same reclaimer.
    ///
    /// ```
    /// let r = atomic_map::Reclaimer::new();
    /// assert!(r.same_as(&r.clone()));
    /// assert!(!r.same_as(&atomic_map::Reclaimer::new()));
    /// ```
    pub fn same_as(&self, other: &Reclaimer) -> bool {
        Arc::ptr_eq(&self.domain, &other.domain)
    }
}

impl Clone for Reclaimer {
    fn clone(&self) -> Self {
        Reclaimer::from_domain(Arc::clone(&self.domain))
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        Domain::remove_user(&self.domain);
    }
}

impl Default for Reclaimer {
    /// The process-wide reclaimer.
    fn default() -> Self {
        Reclaimer::process_wide()
    }
}

impl fmt::Debug for Reclaimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reclaimer")
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}
