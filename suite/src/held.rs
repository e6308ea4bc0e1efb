//! What a publisher holds, in bytes where memory is meant: the figures a long-running
//! suite reports so that every bound can be checked against what it really keeps.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A publisher's long-lived structures at one moment ([`Publisher::held`](crate::Publisher::held)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Held {
    /// Leaves in the store (the responder keeps a second copy of the same leaves).
    pub store_leaves: usize,
    /// Bytes the replay history holds, as its byte limit counts them.
    pub history_bytes: usize,
    /// Deltas the replay history holds.
    pub history_deltas: usize,
    /// Bytes of deltas published but not yet taken in by the responder thread.
    pub feed_bytes: usize,
}

/// The figures kept up to date by the threads that own each structure.
#[derive(Debug, Default)]
pub(crate) struct HeldCounters {
    pub(crate) history_bytes: AtomicUsize,
    pub(crate) history_deltas: AtomicUsize,
    pub(crate) feed_bytes: AtomicUsize,
}

impl HeldCounters {
    pub(crate) fn read(&self, store_leaves: usize) -> Held {
        Held {
            store_leaves,
            history_bytes: self.history_bytes.load(Ordering::Relaxed),
            history_deltas: self.history_deltas.load(Ordering::Relaxed),
            feed_bytes: self.feed_bytes.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "store {} leaves, history {} deltas in {} bytes, feed {} bytes",
            self.store_leaves, self.history_deltas, self.history_bytes, self.feed_bytes
        )
    }
}
