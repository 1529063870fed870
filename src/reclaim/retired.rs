//! `Retired`: the ticket a clear or replace returns for the generation it retired.

use std::fmt;
use std::time::Duration;

use super::domain::Domain;
use crate::sync::{Arc, AtomicBool, Ordering};

/// A ticket for a retired generation, returned by
/// [`AtomicMap::clear_async`](crate::AtomicMap::clear_async) and
/// [`AtomicMap::replace`](crate::AtomicMap::replace).
///
/// The generation is *reclaimed* once its last holder (pinned reader, snapshot,
/// in-flight writer) has let go and the reclaimer has walked its table, releasing
/// the generation's reference to every value. Values still held by a
/// [`ValueRef`](crate::ValueRef) or a C retain survive that; they are destroyed when
/// their own last holder lets go. Dropping the ticket changes nothing; cloning it
/// gives another ticket for the same generation.
///
/// ```
/// use std::time::Duration;
/// use atomic_map::AtomicMap;
///
/// let map = AtomicMap::new();
/// map.insert("k", 1);
/// let snapshot = map.snapshot();
/// let retired = map.clear_async();
/// // The snapshot still pins the old generation: it cannot be reclaimed yet.
/// assert!(!retired.wait_timeout(Duration::from_millis(5)));
/// drop(snapshot);
/// retired.wait();
/// assert!(retired.is_reclaimed());
/// ```
#[derive(Clone)]
pub struct Retired {
    id: u64,
    retirement: Arc<Retirement>,
}

/// The completion state of one generation's teardown, allocated with the
/// generation (so a clear allocates nothing for its ticket) and shared with the
/// tickets that wait for it.
pub(crate) struct Retirement {
    torn_down: AtomicBool,
    domain: Arc<Domain>,
}

impl Retirement {
    pub(crate) fn new(domain: &Arc<Domain>) -> Self {
        Retirement {
            torn_down: AtomicBool::new(false),
            domain: Arc::clone(domain),
        }
    }

    /// Called by the pass once the table has been walked and the map's counters
    /// updated.
    pub(crate) fn mark_torn_down(&self) {
        // Release: pairs with the Acquire loads in `is_torn_down`: a waiter that
        // sees the flag sees the teardown (values destroyed, counters updated).
        self.torn_down.store(true, Ordering::Release);
    }

    fn is_torn_down(&self) -> bool {
        // Acquire: pairs with the Release store in `mark_torn_down`.
        self.torn_down.load(Ordering::Acquire)
    }
}

impl Retired {
    pub(crate) fn new(id: u64, retirement: Arc<Retirement>) -> Self {
        Retired { id, retirement }
    }

    /// Id of the retired generation.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the retired generation has been torn down.
    pub fn is_reclaimed(&self) -> bool {
        self.retirement.is_torn_down()
    }

    /// Blocks until the retired generation has been torn down.
    ///
    /// In background mode this wakes the reclaimer thread; in manual mode the
    /// waiting thread runs the reclamation itself. It returns only once every holder
    /// of the generation has let go: waiting while this thread itself holds a
    /// [`Snapshot`](crate::Snapshot) or [`ReadGuard`](crate::ReadGuard) of it never
    /// returns. Use [`wait_timeout`](Self::wait_timeout) where that can happen.
    ///
    /// # Panics
    /// When called from a value's destructor that a pass of the same reclaimer is
    /// running (the teardown waited for could not finish while the destructor
    /// waits). The panic is contained like any destructor panic and counted in
    /// [`Stats::destructor_panics`](crate::Stats::destructor_panics).
    pub fn wait(&self) {
        let r = &self.retirement;
        Domain::wait_until(&r.domain, || r.is_torn_down(), None);
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`. Returns whether the
    /// generation has been torn down. `wait_timeout(Duration::ZERO)` makes one
    /// attempt (in manual mode, one reclamation pass) and returns at once. Called
    /// from a value's destructor that a pass of the same reclaimer is running, it
    /// returns the current state at once (waiting could not help).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let r = &self.retirement;
        Domain::wait_until(&r.domain, || r.is_torn_down(), Some(timeout))
    }
}

impl fmt::Debug for Retired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retired")
            .field("id", &self.id)
            .field("reclaimed", &self.is_reclaimed())
            .finish()
    }
}
