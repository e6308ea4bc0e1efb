//! What the follower asks, one request at a time: the request and what it must
//! remember to use the answer. Deadlines and backoff are
//! [`clonewire_zmq::retry`]'s, shared with the Cylc link.

use clonewire_core::protocol::suite::Request;
use clonewire_core::{Hash, Seq};

/// A request, with what the follower needs to remember to use its answer.
#[derive(Clone, Debug)]
pub(super) enum Pending {
    Hello,
    Snapshot {
        topics: Option<Vec<String>>,
    },
    Replay {
        topic: String,
        from: Seq,
    },
    Hashes {
        topic: String,
    },
    Get {
        topic: String,
        seq: Seq,
        hash: Hash,
        keys: Vec<String>,
    },
}

impl Pending {
    /// What goes on the wire.
    pub(super) fn request(&self) -> Request {
        match self {
            Pending::Hello => Request::Hello,
            Pending::Snapshot { topics } => Request::Snapshot {
                topics: topics.clone(),
            },
            Pending::Replay { topic, from } => Request::Replay {
                topic: topic.clone(),
                from: *from,
            },
            Pending::Hashes { topic } => Request::Hashes {
                topic: topic.clone(),
                path: Vec::new(),
            },
            Pending::Get { topic, keys, .. } => Request::Get {
                topic: topic.clone(),
                paths: keys.iter().map(|k| vec![k.clone()]).collect(),
            },
        }
    }
}

/// A request sent and not answered yet: what was asked, for using its answer. Its
/// deadline and backoff are the [`clonewire_zmq::retry::Requests`] slot's.
pub(super) struct InFlight {
    pub(super) pending: Pending,
    /// The request's op name, for logs.
    pub(super) op: &'static str,
}
