//! `JobList`: the lock-free list on which work waits for a domain's next pass.
//!
//! The jobs are teardowns: a retired generation's table, pushed by whichever thread
//! drops the generation's last reference (usually the reclaimer's pass, which
//! releases the generations that clears hand off: `standby.rs`) and walked by a
//! pass, a slice at a time on a background reclaimer (the rest of a table goes back
//! in a node of its own). The node is allocated by that drop, not with the
//! generation: see `generation.rs`, `submit_teardown`.
//!
//! Taking is all-at-once (`take_all` swaps the head for null), so there is no pop of
//! single nodes and no ABA problem: a node is owned by the list from its push until
//! the one `take_all` that swaps it out. The push and the take are those of
//! `stack.rs`. Nodes are type-erased through a small header with one function
//! pointer, so one list serves jobs of every key, value and hasher type.

use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

use super::stack::{push_node, take_chain};
use crate::sync::{AtomicPtr, Ordering};

/// What a job does when the pass runs it.
pub(crate) trait Job {
    /// Runs the job on the pass's thread.
    fn run(self) -> JobReport;
}

/// What jobs did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct JobReport {
    /// Published generations torn down.
    pub(crate) torn_down: usize,
    /// Values destroyed that count towards returning memory to the OS (`trim.rs`).
    pub(crate) trim: usize,
}

/// The type-erased head of every job node: a link and how to run the node.
#[repr(C)]
pub(crate) struct JobHeader {
    /// Written by the pusher before the push publishes it, read by the one
    /// `run_all` that owns the chain.
    next: UnsafeCell<*mut JobHeader>,
    /// Runs the job and frees its node.
    run: unsafe fn(NonNull<JobHeader>) -> JobReport,
}

impl JobHeader {
    /// A header whose job `run` knows how to run.
    fn with_run(run: unsafe fn(NonNull<JobHeader>) -> JobReport) -> Self {
        JobHeader {
            next: UnsafeCell::new(ptr::null_mut()),
            run,
        }
    }
}

// SAFETY: the link is written by the node's owner before the push publishes it and
// read by the one `run_all` owning the chain after; `run` is plain code, and the
// payload's own traits decide the rest (`JobNode::new` requires `T: Send + 'static`).
unsafe impl Send for JobHeader {}
// SAFETY: a shared `&JobHeader` exposes nothing mutable (see above).
unsafe impl Sync for JobHeader {}

/// A node carrying a job `T`, laid out with the header first so that a pointer to
/// the node is a pointer to its header.
#[repr(C)]
pub(crate) struct JobNode<T> {
    header: JobHeader,
    pub(crate) payload: T,
}

impl<T: Job + Send + 'static> JobNode<T> {
    /// A node for `payload`.
    ///
    /// The bounds are checked here, once: a node can only be built through this
    /// function, so every node that exists may be run on another thread, later
    /// (which lets `JobList::push`, and a `Drop` impl that submits, be unbounded:
    /// `Drop for Generation` cannot carry the bounds the map's impls have).
    pub(crate) fn new(payload: T) -> Box<Self> {
        Box::new(JobNode {
            header: JobHeader::with_run(Self::run_erased),
            payload,
        })
    }

    /// # Safety
    /// `header` heads a `JobNode<T>` from `Box::into_raw` (with the whole node's
    /// provenance), owned by the caller, who gives it up here.
    unsafe fn run_erased(header: NonNull<JobHeader>) -> JobReport {
        // Soundness: `repr(C)` puts the header at offset 0 of the `JobNode<T>`, and the
        // pointer is the one `push` cast from `Box::into_raw` (the whole node's
        // provenance): casting back gives that `Box`'s pointer, rebuilt once, here
        // (the caller gives the node up).
        // SAFETY: the `Box::into_raw` pointer of this very node, rebuilt once (above).
        let node = unsafe { Box::from_raw(header.cast::<Self>().as_ptr()) };
        node.payload.run()
    }
}

/// A multi-producer list whose consumer takes every node at once.
pub(crate) struct JobList {
    head: AtomicPtr<JobHeader>,
}

// SAFETY: every node's payload is `Send + 'static` by the bound on `JobNode::new`, the
// only way to build a node; the list only moves owned nodes.
unsafe impl Send for JobList {}
// SAFETY: as above; `&JobList` only pushes and takes owned nodes.
unsafe impl Sync for JobList {}

impl JobList {
    pub(crate) fn new() -> Self {
        JobList {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Links `node` in. Lock-free and allocation-free: O(1) apart from retries
    /// under contention.
    ///
    /// Unbounded on purpose: the node was built by `JobNode::new`, which requires the
    /// payload to be a `Job + Send + 'static`.
    pub(crate) fn push<T>(&self, node: Box<JobNode<T>>) {
        /// # Safety
        /// `node` must point at a live header.
        unsafe fn link(node: *mut JobHeader) -> *mut *mut JobHeader {
            // SAFETY: the caller's contract: the place is in bounds of a live header.
            unsafe { (*node).next.get() }
        }
        let node = Box::into_raw(node).cast::<JobHeader>();
        // SAFETY: a live node we own (from `Box::into_raw`), handed to the list;
        // `repr(C)` puts the header first, so the cast pointer is a valid header with
        // the whole node's provenance, and `link` names that header's link field.
        unsafe { push_node(&self.head, node, link) }
    }

    /// Runs every job pushed so far, oldest first, on the calling thread (jobs
    /// pushed meanwhile wait for the next call). Returns how many jobs ran and the
    /// sum of their reports.
    pub(crate) fn run_all(&self) -> (usize, JobReport) {
        let mut node = take_chain(&self.head);
        let mut jobs = Vec::new();
        while let Some(header) = NonNull::new(node) {
            // SAFETY: `take_chain` made us the only owner of every node in the chain,
            // each a live header (see `push`); its push's Release published the link.
            node = unsafe { *header.as_ref().next.get() };
            jobs.push(header);
        }
        let count = jobs.len();
        let mut sum = JobReport::default();
        for header in jobs.into_iter().rev() {
            // Soundness: `run_erased`'s contract: the node's `run` was set by
            // `JobNode::<T>::new` for this very node's `T`, the pointer is the one
            // `push` made from `Box::into_raw`, and we own the node (above) and give
            // it up here, once.
            // SAFETY: `run_erased`'s contract for this node, given up once (above).
            let report = unsafe { (header.as_ref().run)(header) };
            sum.torn_down += report.torn_down;
            sum.trim += report.trim;
        }
        (count, sum)
    }

    /// Whether nothing is waiting (a racy reading).
    pub(crate) fn is_empty(&self) -> bool {
        // Relaxed: a hint for the background loop, which re-checks with `run_all`.
        self.head.load(Ordering::Relaxed).is_null()
    }
}

impl Drop for JobList {
    fn drop(&mut self) {
        while !self.is_empty() {
            self.run_all();
        }
    }
}
