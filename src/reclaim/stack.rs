//! The lock-free push-and-take-everything list shared by the reclamation queues.
//!
//! Producers link nodes at the head with a compare-and-swap; the one consumer takes
//! the whole chain with a swap. There is no pop of single nodes, hence no ABA
//! problem: a node is owned by the list from its push until the swap that takes it.
//! [`Stack`] boxes each item; `JobList` links its preallocated nodes through
//! [`push_node`] and [`take_chain`] directly.

use std::ptr;

use crate::sync::{AtomicPtr, Ordering};

/// Links `node` at the head of the list.
///
/// # Safety
/// `node` must be valid and owned by the caller, who hands it to the list here, and
/// `link(node)` must point at the node's own link field.
pub(crate) unsafe fn push_node<N>(
    head: &AtomicPtr<N>,
    node: *mut N,
    link: unsafe fn(*mut N) -> *mut *mut N,
) {
    // Relaxed: the value read is only a guess for the CAS below.
    let mut current = head.load(Ordering::Relaxed);
    loop {
        // SAFETY: `node` is live and ours until the CAS below publishes it, and
        // `link(node)` points at its link field (the contract).
        unsafe { *link(node) = current };
        // Release on success: publishes the node (and everything its producer wrote
        // before the push) to the Acquire swap in `take_chain`. Relaxed on failure:
        // the fresh head is only the next guess.
        match head.compare_exchange_weak(current, node, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => current = now,
        }
    }
}

/// Takes every node pushed so far (newest first); the caller owns the chain.
pub(crate) fn take_chain<N>(head: &AtomicPtr<N>) -> *mut N {
    // Acquire: pairs with the Release of each push, so the taker sees every node
    // whole. (A swap reads the latest head: no push is skipped.)
    head.swap(ptr::null_mut(), Ordering::Acquire)
}

struct Node<T> {
    item: T,
    next: *mut Node<T>,
}

/// A list of boxed items: one small allocation per push.
pub(crate) struct Stack<T> {
    head: AtomicPtr<Node<T>>,
}

// SAFETY: items move between threads through the stack; `&Stack` only pushes and
// takes owned items.
unsafe impl<T: Send> Send for Stack<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Stack<T> {}

impl<T> Stack<T> {
    pub(crate) fn new() -> Self {
        Stack {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    pub(crate) fn push(&self, item: T) {
        /// # Safety
        /// `node` must point at a live node.
        unsafe fn link<T>(node: *mut Node<T>) -> *mut *mut Node<T> {
            // SAFETY: the caller's contract: the place is in bounds of a live node.
            unsafe { &raw mut (*node).next }
        }
        let node = Box::into_raw(Box::new(Node {
            item,
            next: ptr::null_mut(),
        }));
        // SAFETY: a fresh node, handed to the list; `link` names its link field.
        unsafe { push_node(&self.head, node, link::<T>) }
    }

    /// Whether nothing is waiting (a racy reading).
    pub(crate) fn is_empty(&self) -> bool {
        // Relaxed: a hint; whoever acts on it re-checks with `take_all`.
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Everything pushed so far, in no particular order.
    pub(crate) fn take_all(&self) -> Vec<T> {
        let mut node = take_chain(&self.head);
        let mut items = Vec::new();
        while !node.is_null() {
            // SAFETY: every node of this stack comes from `Box::into_raw` in `push`;
            // `take_chain` made us the owner of the whole chain, and each node is
            // rebuilt once, here.
            let boxed = unsafe { Box::from_raw(node) };
            node = boxed.next;
            items.push(boxed.item);
        }
        items
    }
}

impl<T> Drop for Stack<T> {
    fn drop(&mut self) {
        drop(self.take_all());
    }
}
