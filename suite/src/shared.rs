//! What the publisher's threads share: the store under one short lock, flags, and
//! the feed of what the publisher applied, in order, to the responder's copy.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};

use clonewire_core::{Document, Seq};

use crate::held::HeldCounters;
use crate::history::Record;

/// The state the publishing calls and the heartbeat share; one short lock per delta.
pub(crate) struct PubState {
    pub(crate) socket: zmq::Socket,
    pub(crate) epoch: String,
    pub(crate) document: Document,
    pub(crate) seqs: BTreeMap<String, Seq>,
    pub(crate) feed: SyncSender<Feed>,
    /// The feed overflowed (or the store was reset): stop feeding until the responder
    /// has copied the store.
    pub(crate) feed_lost: bool,
    pub(crate) stopped: bool,
}

/// What the publisher's threads share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<PubState>,
    /// Requests are answered `busy` while set.
    pub(crate) busy: AtomicBool,
    /// The responder must copy the store (the feed was lost).
    pub(crate) resync: AtomicBool,
    /// Threads stop when set.
    pub(crate) stop: AtomicBool,
    /// What the responder's structures and the feed hold.
    pub(crate) held: HeldCounters,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, PubState> {
        // A panic while holding the lock leaves the store as it was before that
        // delta's apply finished; carrying on is better than taking the suite down.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the publisher tells the responder's replica, in publishing order.
pub(crate) enum Feed {
    /// A delta was applied: its record, whose patch the copy applies and the history
    /// keeps.
    Delta { topic: String, record: Arc<Record> },
    /// A new epoch began with an empty store.
    Restart { epoch: String },
}

impl Feed {
    /// What it counts as against the feed's byte bound.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Feed::Delta { topic, record } => topic.len() + record.held_bytes(),
            Feed::Restart { epoch } => epoch.len(),
        }
    }
}
