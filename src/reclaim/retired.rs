//! `Retired`: the ticket a clear or replace returns for the generation it retired.
//!
//! The ticket can block ([`Retired::wait`]), be awaited (`impl Future`), or run a
//! function at the teardown ([`Retired::on_reclaimed`]). All three wait
//! on the generation's `Retirement`: a flag the teardown raises, and a registry of
//! the wakers of pending polls, which the teardown wakes right after raising the
//! flag. The registry has one slot per polling ticket (and one per function
//! registered), so re-polls replace a waker instead of adding one, and each
//! waiter costs O(1).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::domain::{Domain, UserCodeUnderLock, lock};
use super::home::HomeRef;
use super::report::contain_panic;
use crate::sync::{Arc, AtomicBool, Mutex, Ordering, epoch};

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
///
/// # Awaiting
///
/// A ticket is also a [`Future`] with output `()`, completing once the generation
/// has been torn down, on any executor (the crate depends on no async runtime). The
/// pass that tears the generation down wakes every ticket polled before.
///
/// * Background mode: a poll that is not ready wakes the reclaimer thread (as
///   [`wait`](Self::wait) does), so the future completes without anyone blocking.
/// * [`ReclaimMode::Manual`](crate::ReclaimMode::Manual): a poll runs one
///   reclamation pass on the polling thread, destructors included (none if another
///   thread is running one at that moment: a poll never waits for it). A ticket whose
///   generation has no holder left is therefore usually ready on its first poll;
///   not if the map's own reference to it still waits for its grace period, which
///   a thread pinned elsewhere (a `ReadGuard`, any map's operation in progress)
///   holds up. Otherwise the future is woken by the later pass that tears the
///   generation down: someone must call
///   [`reclaim`](crate::AtomicMap::reclaim) (or poll again) after the last holder
///   lets go, since nothing else runs passes in this mode.
/// * Polled from a value's destructor that a pass of the same reclaimer is running,
///   the poll runs nothing: it registers its waker and returns `Pending` (it neither
///   blocks nor panics). The pass tearing the generation down wakes it, which may be
///   the running pass itself if the destructor belongs to this very generation.
///
/// However often a ticket is polled, it keeps one waker (each poll replaces the
/// previous one); a clone is a separate future; dropping a pending ticket gives its
/// waker back. Polled again after completing, a ticket is `Ready` again.
///
/// ```
/// use std::future::Future;
/// use std::sync::Arc;
/// use std::task::{Context, Poll, Wake, Waker};
/// use std::thread::{self, Thread};
/// use atomic_map::AtomicMap;
///
/// /// A minimal executor: polls `fut` on this thread, parked between polls.
/// fn block_on<F: Future>(fut: F) -> F::Output {
///     struct Unpark(Thread);
///     impl Wake for Unpark {
///         fn wake(self: Arc<Self>) {
///             self.0.unpark();
///         }
///     }
///     let waker = Waker::from(Arc::new(Unpark(thread::current())));
///     let mut cx = Context::from_waker(&waker);
///     let mut fut = std::pin::pin!(fut);
///     loop {
///         if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
///             return out;
///         }
///         thread::park();
///     }
/// }
///
/// let map = AtomicMap::new();
/// map.insert("k", vec![1, 2, 3]);
/// block_on(async {
///     let held = map.get("k").unwrap(); // a `ValueRef`: fine across `.await`
///     map.clear_async().await; // the old generation has been torn down...
///     assert_eq!(*held, [1, 2, 3]); // ...but the held value lives on
/// });
/// ```
///
/// ## What may be held across an `.await`
///
/// A [`ValueRef`](crate::ValueRef) and a [`Snapshot`](crate::Snapshot) are `Send`
/// (for keys and values that are `Send + Sync`): a future may hold them across an
/// `.await` and still move between threads. A [`ReadGuard`](crate::ReadGuard) is not
/// `Send`, and it pins: while it lives, its generation is not reclaimed and no value
/// removed meanwhile is destroyed, so holding one across an `.await` delays
/// reclamation for as long as the future sleeps. Keep guards inside synchronous
/// stretches of code. And, as with [`wait`](Self::wait), a future holding a
/// snapshot of the very generation it awaits, or a guard of any map taken before
/// the clear, never completes.
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// let map = atomic_map::AtomicMap::<u8, u8>::new();
/// assert_send(async {
///     let retired = map.clear_async();
///     let held = map.pin(); // a `ReadGuard` (on the new generation)...
///     retired.await; // ...held across an `.await`: the future is not `Send`
///     assert_eq!(held.len(), 0);
/// });
/// ```
///
/// The twin that compiles holds a snapshot instead:
///
/// ```
/// fn assert_send<T: Send>(_: T) {}
/// let map = atomic_map::AtomicMap::<u8, u8>::new();
/// assert_send(async {
///     let retired = map.clear_async();
///     let held = map.snapshot(); // a `Snapshot` (on the new generation)...
///     retired.await; // ...held across an `.await`: the future is `Send`
///     assert_eq!(held.len(), 0);
/// });
/// ```
pub struct Retired {
    id: u64,
    retirement: Arc<Retirement>,
    /// This ticket's slot in the retirement's waker registry: taken by its first
    /// pending poll, given back when a poll completes or the ticket is dropped.
    /// Never cloned.
    slot: Option<usize>,
    /// The epoch of the retiring thread's pin, current or last, when it
    /// retired the generation: no later than the epoch in which the teardown's
    /// grace period begins (the pass that begins it sees the publish), so that a
    /// waiter pinned at it or before cannot see the teardown while it stays
    /// pinned ([`would_wait_for_itself`](Self::would_wait_for_itself)).
    stamp: epoch::EpochStamp,
}

/// The completion state of one generation's teardown, allocated with the
/// generation (so a clear allocates nothing for its ticket) and shared with the
/// tickets that wait for it.
pub(crate) struct Retirement {
    torn_down: AtomicBool,
    /// The wakers of tickets polled while the generation was not torn down yet.
    wakers: Mutex<Wakers>,
    domain: Arc<Domain>,
    /// The address of the retiring map's home (`HomeRef::addr`): that map's
    /// identity while the generation is not torn down, since the generation owns
    /// the home until then.
    home: usize,
}

/// A slab of wakers: slot `i` belongs to the one ticket whose `slot` is `Some(i)`,
/// or to a function registered by `Retired::on_reclaimed` (owned by no ticket,
/// never freed: the teardown takes it), or is on the free list. Its length is the
/// largest number of tickets of this generation that were pending at once, plus
/// the functions registered.
#[derive(Default)]
struct Wakers {
    /// `None` in an owned slot: woken (taken by the teardown), or not yet set.
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Wakers {
    /// A slot for a ticket's first pending poll: a free one, or a new one.
    fn claim(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        })
    }

    /// Puts `waker` in slot `i` unless the waker there would wake the same task.
    /// Returns the waker it replaces, for the caller to drop outside the lock.
    fn set(&mut self, i: usize, waker: &Waker) -> Option<Waker> {
        match &mut self.slots[i] {
            Some(current) if current.will_wake(waker) => None,
            entry => entry.replace(waker.clone()),
        }
    }

    /// Frees slot `i`; returns the waker it held, for the caller to drop outside
    /// the lock.
    fn release(&mut self, i: usize) -> Option<Waker> {
        let waker = self.slots[i].take();
        self.free.push(i);
        waker
    }
}

impl Retirement {
    /// The retirement of a generation of the map whose home is `home`.
    pub(crate) fn new(domain: &Arc<Domain>, home: HomeRef) -> Self {
        Retirement {
            torn_down: AtomicBool::new(false),
            wakers: Mutex::new(Wakers::default()),
            domain: Arc::clone(domain),
            home: home.addr(),
        }
    }

    /// Called by the pass once the table has been walked and the map's counters
    /// updated. Raises the flag, then wakes every ticket registered so far.
    pub(crate) fn mark_torn_down(&self) {
        // Release: pairs with the Acquire loads in `is_torn_down`: a waiter that
        // sees the flag sees the teardown (values destroyed, counters updated).
        self.torn_down.store(true, Ordering::Release);
        // After the store, under the lock: see `register` for why no wake-up is
        // lost. Woken outside the lock: a waker is foreign code, which may poll.
        let woken: Vec<Waker> = lock(&self.wakers)
            .slots
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for waker in woken {
            // A panicking waker (the executor's bug) must not unwind through the
            // pass: the other wakers and the rest of the pass still run. The panic
            // hook has reported it.
            contain_panic(|| waker.wake());
        }
    }

    fn is_torn_down(&self) -> bool {
        // Acquire: pairs with the Release store in `mark_torn_down`.
        self.torn_down.load(Ordering::Acquire)
    }

    /// Whether the generation is torn down; if not, leaves `waker` in the ticket's
    /// slot (claiming one into `slot` on its first pending poll). A completed poll
    /// gives the slot back.
    ///
    /// No wake-up is lost: `mark_torn_down` stores the flag *before* it takes the
    /// lock to collect the wakers, and this checks the flag *under* that lock. If
    /// this critical section comes first, the waker is in place when
    /// `mark_torn_down` collects, and it is woken. If it comes second, it begins
    /// after `mark_torn_down` released the lock, hence after the flag's store, so the
    /// load below sees `true` and the poll completes. There is no third order.
    fn register(&self, slot: &mut Option<usize>, waker: &Waker) -> bool {
        let mut wakers = lock(&self.wakers);
        let (done, dropped) = if self.is_torn_down() {
            (true, slot.take().and_then(|i| wakers.release(i)))
        } else {
            let i = *slot.get_or_insert_with(|| wakers.claim());
            (false, wakers.set(i, waker))
        };
        drop(wakers);
        // Outside the lock: a waker's drop is foreign code too.
        drop(dropped);
        done
    }
}

impl Retired {
    /// A ticket for generation `id`, retired by the calling thread: `stamp` is
    /// that thread's [`epoch::epoch_stamp`], taken in the publish.
    pub(crate) fn new(id: u64, retirement: Arc<Retirement>, stamp: epoch::EpochStamp) -> Self {
        Retired {
            id,
            retirement,
            slot: None,
            stamp,
        }
    }

    /// Id of the retired generation.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::<u8, u8>::new();
    /// let first = map.clear_async();
    /// let second = map.clear_async();
    /// assert_eq!((first.id(), second.id()), (0, 1));
    /// assert_eq!(map.generation(), 2);
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the retired generation has been torn down (never blocks).
    ///
    /// ```
    /// use atomic_map::{AtomicMap, Builder, ReclaimMode};
    /// let map: AtomicMap<u8, u8> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    /// let retired = map.clear_async();
    /// assert!(!retired.is_reclaimed()); // manual mode: no pass has run yet
    /// map.reclaim();
    /// assert!(retired.is_reclaimed());
    /// ```
    pub fn is_reclaimed(&self) -> bool {
        self.retirement.is_torn_down()
    }

    /// Whether a wait for this ticket on the calling thread is refused, because it
    /// could never succeed (or, in the last case below, might not): the
    /// generation is not torn down yet, and
    /// - this thread is running a value's destructor for a pass of the ticket's
    ///   own reclaimer, which must return before the teardown can happen;
    /// - or this thread is pinned (it holds a [`ReadGuard`](crate::ReadGuard) of any
    ///   map, iterates one, or runs in a C callback under a read section, such as
    ///   `amap_get_with`'s) at an epoch no later
    ///   than the one the clearing thread last pinned at before the clear or
    ///   replace that made the ticket, and the epoch has not moved two past it:
    ///   the teardown waits for a grace period that this pin holds up. A pin held
    ///   since before a clear made on the same thread always is; one taken after
    ///   the clear is if the epoch has not moved on since;
    /// - or this thread runs a closure of the ticket's own map under one of its
    ///   shard locks ([`retain`](crate::AtomicMap::retain)'s predicate, or the
    ///   closure of [`compute`](crate::AtomicMap::compute),
    ///   [`upsert`](crate::AtomicMap::upsert),
    ///   [`get_or_insert_with`](crate::AtomicMap::get_or_insert_with) or
    ///   [`remove_if`](crate::AtomicMap::remove_if), or a C callback of
    ///   `amap_retain` or `amap_compute`): the release of a map's retired
    ///   generations takes each of its shard locks first, so the wait never ends
    ///   if that has not happened yet. If it has (the generation then waits only
    ///   for its grace period and its snapshots), the wait could end, but it is
    ///   refused all the same: the answer does not depend on the reclaimer's
    ///   progress, and such a wait in manual mode would run the map's destructors
    ///   under its lock. Found in the outermost four such closures nested on this
    ///   thread (one writing to another map in its closure, and so on), not
    ///   deeper. The map's `Hash` and `Eq` impls of its keys, which also run under
    ///   its shard locks (in an insert's probe, a rehash), are not covered: a
    ///   wait there is not refused, and may never end.
    ///
    /// [`wait`](Self::wait) panics then, and [`wait_timeout`](Self::wait_timeout)
    /// returns `false` at once; a C caller gets a status of its own
    /// (`AMAP_WOULD_DEADLOCK`). `false` promises nothing when this thread holds a
    /// [`Snapshot`](crate::Snapshot) of the retired generation (which the
    /// teardown waits for too), or a pin that the check does not find holding it
    /// up (for a clear made on another thread, whose last pin may be older than
    /// this one). In one case `true` is wrong: two races at once, this thread's
    /// pin preempted between its read of the epoch and its store, and an advance
    /// of the epoch that scanned the threads in between and completes after the
    /// check (the fork's `pinned_no_later_than`).
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::<u8, u8>::new();
    /// let retired = map.clear_async();
    /// assert!(!retired.would_wait_for_itself()); // neither in a destructor nor pinned
    /// let guard = map.pin();
    /// let cleared_while_pinned = map.clear_async();
    /// assert!(cleared_while_pinned.would_wait_for_itself());
    /// drop(guard);
    /// assert!(!cleared_while_pinned.would_wait_for_itself());
    /// ```
    pub fn would_wait_for_itself(&self) -> bool {
        // The teardown's state read last: seen not torn down, it was not torn down
        // when `waits_for_own_lock` compared homes (see there).
        (Domain::in_own_pass(&self.retirement.domain)
            || self.waits_for_own_pin()
            || self.waits_for_own_lock())
            && !self.is_reclaimed()
    }

    /// Whether this thread runs a closure of the retiring map under one of its
    /// shard locks, which the release of the generation takes first
    /// (`would_wait_for_itself`: true even once that release has passed them).
    /// The map is found exactly when the teardown is seen not done afterwards:
    /// until then the generation owns its map's home, so no other map's home has
    /// its address.
    fn waits_for_own_lock(&self) -> bool {
        UserCodeUnderLock::holds(self.retirement.home)
    }

    /// Whether this thread's pin holds up the teardown's grace period, so that it
    /// cannot end while this thread waits (`would_wait_for_itself`).
    fn waits_for_own_pin(&self) -> bool {
        epoch::pinned_no_later_than(self.stamp)
    }

    /// Blocks until the retired generation has been torn down.
    ///
    /// In background mode this wakes the reclaimer thread; in manual mode the
    /// waiting thread runs the reclamation itself. It returns only once every holder
    /// of the generation has let go, and a grace period has passed that every
    /// epoch pin of every thread holds up: waiting while this thread itself holds a
    /// [`Snapshot`](crate::Snapshot) of the generation, or a
    /// [`ReadGuard`](crate::ReadGuard) of any map, never returns. A guard taken
    /// before a clear on the same thread is detected (below); a snapshot is not,
    /// nor every guard held across another thread's clear. Use [`wait_timeout`](Self::wait_timeout) where that can happen. In
    /// async code, `.await` the ticket instead (see [Awaiting](#awaiting)).
    ///
    /// # Panics
    /// When waiting could never end ([`would_wait_for_itself`](Self::would_wait_for_itself)):
    /// - called from a value's destructor that a pass of the same reclaimer is
    ///   running (the teardown waited for could not finish while the destructor
    ///   waits). The panic is contained like any destructor panic and counted in
    ///   [`Stats::destructor_panics`](crate::Stats::destructor_panics);
    /// - called on a thread whose pin (a `ReadGuard` held, or an iteration of
    ///   one running) holds up the teardown's grace period, such
    ///   as one pinned since before a clear made on the same thread;
    /// - called in a closure that the ticket's own map runs under one of its
    ///   shard locks (`retain`'s predicate, `compute`'s closure...), which the
    ///   release of the map's retired generations takes first (refused even once
    ///   it has: see [`would_wait_for_itself`](Self::would_wait_for_itself)).
    ///
    /// ```
    /// use std::time::Duration;
    /// let map = atomic_map::AtomicMap::new();
    /// let held = map.snapshot(); // keeps the generation about to be retired
    /// let retired = map.clear_async();
    /// map.insert(1, 1);
    /// map.retain(|_, _| {
    ///     // `retired.wait()` would panic here: the release takes this closure's lock.
    ///     assert!(retired.would_wait_for_itself());
    ///     assert!(!retired.wait_timeout(Duration::from_secs(60))); // at once
    ///     true
    /// });
    /// drop(held);
    /// retired.wait(); // out of the closure
    /// ```
    ///
    /// ```should_panic
    /// let map = atomic_map::AtomicMap::<u8, u8>::new();
    /// let _guard = map.pin();
    /// map.clear_async().wait(); // panics: `_guard` holds up the grace period
    /// ```
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, vec![0u8; 1 << 20]);
    /// map.clear_async().wait(); // the old generation's memory is freed by now
    /// assert_eq!(map.stats().reclaimed_generations, 1);
    /// ```
    pub fn wait(&self) {
        let r = &self.retirement;
        let own_pin = self.waits_for_own_pin();
        let own_lock = self.waits_for_own_lock();
        assert!(
            !own_pin || r.is_torn_down(),
            "atomic-map: Retired::wait called on a thread whose epoch pin (a ReadGuard \
             held, or an iteration of one running) holds up the teardown's grace \
             period would wait for itself; drop the guard first, or use wait_timeout or \
             is_reclaimed"
        );
        assert!(
            !own_lock || r.is_torn_down(),
            "atomic-map: Retired::wait called in a closure that the ticket's own map \
             runs under its shard lock (retain, compute, upsert, get_or_insert_with, \
             remove_if) would wait for itself: the teardown takes that lock first; \
             wait after the call returns"
        );
        Domain::wait_until(&r.domain, || r.is_torn_down(), None);
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`. Returns whether the
    /// generation has been torn down. `wait_timeout(Duration::ZERO)` makes one
    /// attempt (in manual mode, one reclamation pass) and returns at once. Where
    /// waiting could never end ([`would_wait_for_itself`](Self::would_wait_for_itself):
    /// in a value's destructor that a pass of the same reclaimer is running, on
    /// a thread whose pin holds the teardown up, or in a closure that the ticket's
    /// map runs under its shard lock), it returns the current state at once,
    /// without a pass.
    ///
    /// ```
    /// use std::time::Duration;
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, "one");
    /// let guard = map.pin(); // holds the generation about to be retired
    /// let retired = map.clear_async();
    /// assert!(!retired.wait_timeout(Duration::from_millis(10)));
    /// drop(guard);
    /// assert!(retired.wait_timeout(Duration::from_secs(10)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let r = &self.retirement;
        if self.waits_for_own_pin() || self.waits_for_own_lock() {
            return r.is_torn_down();
        }
        Domain::wait_until(&r.domain, || r.is_torn_down(), Some(timeout))
    }

    /// Runs `f` once the retired generation has been torn down, without a
    /// thread waiting for it: at once, on this thread, if it already is (so do
    /// not register while holding a lock that `f` takes); otherwise on the
    /// thread that tears it down, right after. That is where the map's value
    /// destructors run: the reclaimer's thread in background mode (the
    /// process-wide one by default; it also finishes a manual map dropped with
    /// generations still held), or a thread running one of its passes
    /// ([`reclaim`](crate::AtomicMap::reclaim), of a background map too, and in
    /// manual mode a wait, a poll, a flush, the drop of the map or of its
    /// reclaimer's last user). For callers that neither block nor run an
    /// executor: an event loop, a C or Go program (`amap_ticket_on_reclaimed`,
    /// `Ticket.Done`).
    ///
    /// The registration belongs to the generation, not to this ticket: dropping
    /// the ticket afterwards does not cancel it, and each call registers one more
    /// `f`. Nothing triggers a pass: in manual mode, `f` waits for the program's
    /// next one. If the generation is never torn down (a [`Snapshot`](crate::Snapshot)
    /// of it held until the process exits), `f` never runs, and is kept.
    ///
    /// Run by the teardown, `f` is held to a destructor's rules: it delays the
    /// reclaimer's other work while it runs, so it should be short, and a wait
    /// there for this reclaimer is refused, as from a destructor
    /// ([`wait`](Self::wait) panics, which the pass contains;
    /// [`Reclaimer::flush`](crate::Reclaimer::flush) and `wait_timeout` return
    /// `false` at once). A panic of `f` there is contained: the panic hook
    /// reports it and the pass goes on. Run at once, a panic of `f` unwinds from
    /// this call.
    ///
    /// Blocking on what `f` signals (a channel, a condition variable) gets none
    /// of `wait`'s refusals: done where `wait` would be refused (in a destructor
    /// of the same reclaimer, in a closure under the map's shard lock, under a
    /// pin held since before the clear), it never ends.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, "one");
    /// let (done, reclaimed) = mpsc::channel();
    /// map.clear_async().on_reclaimed(move || done.send(()).unwrap());
    /// // ...the ticket is gone; the reclaimer tells us when the generation is:
    /// reclaimed.recv_timeout(Duration::from_secs(10)).unwrap();
    /// ```
    pub fn on_reclaimed<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.retirement.on_torn_down(Box::new(f));
    }
}

/// The waker that [`Retired::on_reclaimed`] registers: its wake runs the
/// function, once. It wraps `std`'s `Arc` in the loom build too (a `Waker` is
/// made only from that); the function's slot is the shim's `Mutex`, taken only
/// by the one wake (the registry hands each waker out once).
struct OnTornDown(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl std::task::Wake for OnTornDown {
    fn wake(self: std::sync::Arc<Self>) {
        let f = lock(&self.0).take();
        if let Some(f) = f {
            f();
        }
    }
}

impl Retirement {
    /// [`Retired::on_reclaimed`]: `f` runs at once if the generation is torn
    /// down; otherwise it goes into a slot of its own, which no ticket owns, for
    /// `mark_torn_down` to wake. No wake-up is lost, as in `register`: the flag is
    /// checked under the lock that `mark_torn_down` takes after storing it.
    fn on_torn_down(&self, f: Box<dyn FnOnce() + Send>) {
        let mut wakers = lock(&self.wakers);
        if self.is_torn_down() {
            drop(wakers);
            f();
            return;
        }
        let i = wakers.claim();
        let waker = Waker::from(std::sync::Arc::new(OnTornDown(Mutex::new(Some(f)))));
        wakers.slots[i] = Some(waker);
    }
}

/// Completes once the generation has been torn down; see [Awaiting](#awaiting).
impl Future for Retired {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let r = &this.retirement;
        if r.is_torn_down() {
            if this.slot.is_none() {
                return Poll::Ready(());
            }
        } else {
            // Background: wake the thread; manual: run a pass here; inside a pass
            // of this domain (a destructor): nothing.
            Domain::nudge(&r.domain);
        }
        if r.register(&mut this.slot, cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Another ticket for the same generation, with no waker registered: a separate
/// future.
impl Clone for Retired {
    fn clone(&self) -> Self {
        Retired::new(self.id, Arc::clone(&self.retirement), self.stamp)
    }
}

/// Gives the ticket's waker slot back, if a pending poll took one.
impl Drop for Retired {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            let waker = lock(&self.retirement.wakers).release(i);
            // Outside the lock (the guard was a temporary of the statement above).
            drop(waker);
        }
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

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    // Outside loom, the shim's `Arc` is std's, which `Wake` needs.
    use super::*;
    use crate::{AtomicMap, Builder, ReclaimMode};

    /// Counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn manual_map() -> AtomicMap<u8, u8> {
        Builder::new().reclaim_mode(ReclaimMode::Manual).build()
    }

    /// Runs passes until `done` holds (at most 10,000). One pass is enough when no
    /// other thread is pinned; tests running beside this one (and ThreadSanitizer's
    /// slowness) can hold a retired generation's grace period open across a pass.
    fn reclaim_until(map: &AtomicMap<u8, u8>, done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            map.reclaim();
            if done() {
                return;
            }
            std::thread::yield_now();
        }
    }

    fn poll(ticket: &mut Retired, waker: &Waker) -> Poll<()> {
        Pin::new(ticket).poll(&mut Context::from_waker(waker))
    }

    /// (slots, free slots) of a ticket's registry.
    fn registry(ticket: &Retired) -> (usize, usize) {
        let w = lock(&ticket.retirement.wakers);
        (w.slots.len(), w.free.len())
    }

    /// Re-polling a pending ticket, with the same waker or a new one each time,
    /// keeps one slot, holding the latest waker only; many tickets, one slot each.
    #[test]
    fn repeated_polls_keep_one_slot_per_ticket() {
        let map = manual_map();
        map.insert(1, 1);
        let snapshot = map.snapshot();
        let mut ticket = map.clear_async();
        let same = Waker::from(Arc::new(Counter::default()));
        let mut last = Arc::new(Counter::default());
        for i in 0..1_000 {
            if i % 2 == 0 {
                assert!(poll(&mut ticket, &same).is_pending());
            } else {
                last = Arc::new(Counter::default());
                assert!(poll(&mut ticket, &Waker::from(Arc::clone(&last))).is_pending());
            }
        }
        assert_eq!(registry(&ticket), (1, 0));
        // The replaced wakers were dropped: only the latest is kept (by the slot).
        assert_eq!(Arc::strong_count(&last), 2);

        let mut tickets: Vec<Retired> = (0..50).map(|_| ticket.clone()).collect();
        for _ in 0..20 {
            for t in &mut tickets {
                assert!(poll(t, &same).is_pending());
            }
        }
        assert_eq!(registry(&ticket), (51, 0));

        drop(snapshot);
        reclaim_until(&map, || ticket.is_reclaimed());
        assert!(ticket.is_reclaimed());
        assert_eq!(
            last.0.load(Ordering::SeqCst),
            1,
            "the latest waker was woken"
        );
        // Completed polls give their slots back.
        for t in &mut tickets {
            assert!(poll(t, &same).is_ready());
        }
        assert!(poll(&mut ticket, &same).is_ready());
        assert_eq!(registry(&ticket), (51, 51));
    }

    /// A clone gets no slot; a dropped pending ticket frees its slot and its waker,
    /// and the next ticket to poll reuses the slot.
    #[test]
    fn dropped_pending_ticket_frees_its_slot() {
        let map = manual_map();
        let snapshot = map.snapshot();
        let mut ticket = map.clear_async();
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(Arc::clone(&counter));
        assert!(poll(&mut ticket, &waker).is_pending());
        assert_eq!(registry(&ticket), (1, 0));
        assert_eq!(Arc::strong_count(&counter), 3);

        let clone = ticket.clone();
        assert_eq!(clone.slot, None);
        assert_eq!(registry(&clone), (1, 0));

        drop(ticket);
        assert_eq!(registry(&clone), (1, 1), "the slot is free again");
        assert_eq!(Arc::strong_count(&counter), 2, "its waker dropped");

        let mut clone = clone;
        for _ in 0..10 {
            let mut other = clone.clone();
            assert!(poll(&mut other, &waker).is_pending());
            assert_eq!(registry(&clone), (1, 0), "the free slot is reused");
        }
        assert!(poll(&mut clone, &waker).is_pending());
        drop(snapshot);
        reclaim_until(&map, || counter.0.load(Ordering::SeqCst) > 0);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        drop(clone);
        assert_eq!(Arc::strong_count(&counter), 2);
    }
}
