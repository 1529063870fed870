//! `RetireList`: the lock-free list on which retired generations wait for the reclaimer.
//!
//! Pushing is one allocation and a compare-and-swap loop: no lock, no syscall, so the
//! thread that drops a generation's last reference pays O(1). Taking is all-at-once
//! (`take_all` swaps the head for null), so there is no pop of single nodes and no ABA
//! problem: a node is owned by the list from its push until the one `take_all` that
//! swaps it out.

use std::ptr;

use crate::sync::{AtomicPtr, Ordering};

struct Node<T> {
    item: T,
    next: *mut Node<T>,
}

/// A multi-producer list whose consumer takes every item at once.
pub(crate) struct RetireList<T> {
    head: AtomicPtr<Node<T>>,
}

// SAFETY: items move between threads through the list (pushed on one, taken on
// another), which is what `T: Send` allows; the list hands out no shared `&T`.
unsafe impl<T: Send> Send for RetireList<T> {}
// SAFETY: as above: `&RetireList` only pushes and takes owned items.
unsafe impl<T: Send> Sync for RetireList<T> {}

impl<T> RetireList<T> {
    pub(crate) fn new() -> Self {
        RetireList {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Adds `item`. Lock-free: O(1) apart from retries under contention.
    pub(crate) fn push(&self, item: T) {
        let node = Box::into_raw(Box::new(Node {
            item,
            next: ptr::null_mut(),
        }));
        // Relaxed: the value read is only a guess for the CAS below.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours until the CAS below publishes it.
            unsafe { (*node).next = head };
            // SeqCst on success: Release publishes the node to the Acquire swap in
            // `take_all`, and the total order pairs this push with the `closed` flag
            // of the reclaimer (see `Reclaimer::submit`). Relaxed on failure: the
            // fresh head is only the next guess.
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Takes every item pushed so far, oldest first.
    pub(crate) fn take_all(&self) -> Vec<T> {
        // SeqCst: Acquire pairs with the Release of each push; the total order pairs
        // with the `closed` flag (see `Reclaimer::close`).
        let mut node = self.head.swap(ptr::null_mut(), Ordering::SeqCst);
        let mut items = Vec::new();
        while !node.is_null() {
            // SAFETY: the swap made us the only owner of every node in the chain.
            let boxed = unsafe { Box::from_raw(node) };
            node = boxed.next;
            items.push(boxed.item);
        }
        items.reverse();
        items
    }

    /// Whether nothing is waiting (a racy reading).
    pub(crate) fn is_empty(&self) -> bool {
        // Relaxed: a hint for the background loop, which re-checks with `take_all`.
        self.head.load(Ordering::Relaxed).is_null()
    }
}

impl<T> Drop for RetireList<T> {
    fn drop(&mut self) {
        drop(self.take_all());
    }
}
