//! Reclamation: everything between "nobody needs this any more" and its destructor.
//!
//! Follow a retired generation:
//! 1. `clear_async` swaps the generation out and parks the slot's reference on its
//!    map's standby (`standby.rs`), which its [`domain`]'s passes walk.
//! 2. A pass of the domain releases that reference after a grace period. Whoever
//!    drops the generation's last reference (usually that pass; a snapshot, or a
//!    guard made from one) pushes its table as a *teardown* job ([`jobs`]): O(1),
//!    one small allocation (the job's node).
//! 3. The next pass walks the table: each value whose last reference was the
//!    table's is destroyed at once, on the pass's thread (no guard can reach a
//!    retired table). The map's account ([`home`]) is updated, then the generation's
//!    [`Retired`] ticket is marked ([`retired`]).
//!
//! Follow a released value (a handle dropped after a `remove`, a C release):
//! 1. Its last release puts it in the domain's ring for the releasing thread's
//!    stripe ([`doom_ring`]), or on the stripe's doomed list ([`doomed`]).
//! 2. A pass starts its grace period (a crossbeam-epoch deferral that moves the batch
//!    to the ripe stack) and destroys it, on the pass's thread: that same pass when
//!    no thread pinned before is still pinned, else a later one. A value with no
//!    destructor (or of a map built with `destructors_on_releasing_threads`) may
//!    instead be destroyed by its releasing thread, every 256 releases, in a
//!    background domain: the releasing thread's help (`domain/help.rs`), which
//!    takes its own ring and recycles those cells on its own core, after the same
//!    grace period.
//!
//! Passes run on the domain's background thread (one per process by default, parked
//! between passes as [`pace`] decides, on the shortest time slice the kernel grants
//! while it tears down a large generation: [`time_slice`]), or where the program
//! calls them (manual
//! mode). Freed value cells go back to the
//! writers in batches ([`recycle`]), or to the pages they were carved from
//! ([`pages`], mapped and unmapped in runs: [`page_runs`]); after large passes, memory goes back to the OS ([`trim`]). The lock-free lists all share one push and take ([`stack`]);
//! the outcome types are in a leaf module ([`report`]).

pub(crate) mod by_address;
pub(crate) mod domain;
pub(crate) mod doom_ring;
pub(crate) mod doomed;
pub(crate) mod handle;
pub(crate) mod home;
pub(crate) mod jobs;
pub(crate) mod pace;
pub(crate) mod page_runs;
pub(crate) mod pages;
pub(crate) mod recycle;
pub(crate) mod report;
pub(crate) mod retired;
pub(crate) mod stack;
pub(crate) mod stripe;
pub(crate) mod time_slice;
pub(crate) mod trim;

pub use domain::ReclaimMode;
pub use handle::Reclaimer;
pub use retired::Retired;
