//! `RetireList`: the lock-free list on which retired tables wait for the reclaimer.
//!
//! The list is intrusive: each retired table travels in a [`RetireNode`] that its
//! generation allocated when it was built (for the spare, on the reclaimer), so that
//! handing a table over allocates nothing: the thread that drops a generation's last
//! reference writes the table into the node and links it with one compare-and-swap
//! (no lock, no allocation, hence no syscall). Taking is all-at-once (`take_all`
//! swaps the head for null), so there is no pop of single nodes and no ABA problem:
//! a node is owned by the list from its push until the one `take_all` that swaps it
//! out. The push and the take are the ones of `lock_free_stack.rs`.
//!
//! Nodes are type-erased through a small header with two function pointers, so one
//! list serves tables of every key, value and hasher type.

use std::ptr::{self, NonNull};

use crate::lock_free_stack::{push_node, take_chain};
use crate::reclaim::TeardownReport;
use crate::sync::{AtomicPtr, Ordering};

/// The type-erased head of every node: a link and what to do with the node.
#[repr(C)]
pub(crate) struct RetireHeader {
    next: *mut RetireHeader,
    /// Entries the node's table holds.
    len: unsafe fn(NonNull<RetireHeader>) -> usize,
    /// Tears the table down and frees the node.
    teardown: unsafe fn(NonNull<RetireHeader>) -> TeardownReport,
}

// SAFETY: the link is written only by the node's owner before the push publishes
// it, and read only by the one `take_all` that owns the chain afterwards; the
// function pointers are plain code. Whether the node as a whole may cross threads
// is decided by its payload's own auto traits (`RetireNode<T>` is `Send` iff `T` is).
unsafe impl Send for RetireHeader {}
// SAFETY: a shared `&RetireHeader` exposes nothing mutable (see above).
unsafe impl Sync for RetireHeader {}

/// A node carrying a `T`, laid out with the header first so that a pointer to the
/// node is a pointer to its header.
#[repr(C)]
pub(crate) struct RetireNode<T> {
    header: RetireHeader,
    pub(crate) payload: T,
}

/// What a node's payload must do.
pub(crate) trait Retirable {
    fn len(&self) -> usize;
    fn teardown(self) -> TeardownReport;
}

impl<T: Retirable> RetireNode<T> {
    /// A node for `payload`, allocated now so that retiring later allocates nothing.
    pub(crate) fn new(payload: T) -> Box<Self> {
        Box::new(RetireNode {
            header: RetireHeader {
                next: ptr::null_mut(),
                len: Self::len_erased,
                teardown: Self::teardown_erased,
            },
            payload,
        })
    }

    /// # Safety
    /// `header` heads a live `RetireNode<T>` owned by the caller.
    unsafe fn len_erased(header: NonNull<RetireHeader>) -> usize {
        // SAFETY: `repr(C)` puts the header at offset 0 of a `RetireNode<T>`.
        unsafe { header.cast::<Self>().as_ref().payload.len() }
    }

    /// # Safety
    /// `header` heads a `RetireNode<T>` from `Box::into_raw`, owned by the caller,
    /// who gives it up here.
    unsafe fn teardown_erased(header: NonNull<RetireHeader>) -> TeardownReport {
        // SAFETY: as above; the node came from a `Box` and is freed once, here.
        let node = unsafe { Box::from_raw(header.cast::<Self>().as_ptr()) };
        node.payload.teardown()
    }
}

/// A retired table taken off the list, owned by the reclaimer.
pub(crate) struct RetiredJob(NonNull<RetireHeader>);

// SAFETY: a job owns its node, whose payload is `Send` (see `RetireList::push`).
unsafe impl Send for RetiredJob {}

impl RetiredJob {
    pub(crate) fn len(&self) -> usize {
        // SAFETY: the job owns its live node.
        unsafe { (self.0.as_ref().len)(self.0) }
    }

    pub(crate) fn teardown(self) -> TeardownReport {
        let header = self.0;
        std::mem::forget(self);
        // SAFETY: the job owned the node and gives it up here.
        unsafe { (header.as_ref().teardown)(header) }
    }
}

impl Drop for RetiredJob {
    fn drop(&mut self) {
        // SAFETY: the job owns its node; a job is normally consumed by `teardown`,
        // and one dropped otherwise (unwinding) is torn down rather than leaked.
        unsafe { (self.0.as_ref().teardown)(self.0) };
    }
}

/// A multi-producer list whose consumer takes every node at once.
pub(crate) struct RetireList {
    head: AtomicPtr<RetireHeader>,
}

impl RetireList {
    pub(crate) fn new() -> Self {
        RetireList {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Links `node` in. Lock-free and allocation-free: O(1) apart from retries
    /// under contention.
    pub(crate) fn push<T: Retirable + Send>(&self, node: Box<RetireNode<T>>) {
        /// # Safety
        /// `node` must be a valid header.
        unsafe fn link(node: *mut RetireHeader) -> *mut *mut RetireHeader {
            // SAFETY: the caller's contract.
            unsafe { &raw mut (*node).next }
        }
        let node = Box::into_raw(node).cast::<RetireHeader>();
        // SAFETY: a node we own, handed to the list; `repr(C)` puts the header first.
        unsafe { push_node(&self.head, node, link) }
    }

    /// Takes every node pushed so far, oldest first.
    pub(crate) fn take_all(&self) -> Vec<RetiredJob> {
        let mut node = take_chain(&self.head);
        let mut jobs = Vec::new();
        while let Some(header) = NonNull::new(node) {
            // SAFETY: `take_chain` made us the only owner of every node in the chain.
            node = unsafe { header.as_ref().next };
            jobs.push(RetiredJob(header));
        }
        jobs.reverse();
        jobs
    }

    /// Whether nothing is waiting (a racy reading).
    pub(crate) fn is_empty(&self) -> bool {
        // Relaxed: a hint for the background loop, which re-checks with `take_all`.
        self.head.load(Ordering::Relaxed).is_null()
    }
}

impl Drop for RetireList {
    fn drop(&mut self) {
        for job in self.take_all() {
            job.teardown();
        }
    }
}
