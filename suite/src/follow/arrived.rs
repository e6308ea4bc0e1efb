//! An answer taken from the [`Machine`](super::Machine) to be decoded, and for a
//! snapshot built and hash-checked, outside it: on a thread of the driver's when the
//! answer is big, so the stream of the other topics keeps being applied meanwhile.
//!
//! Decoding needs nothing of the machine's state, only what was asked; using the
//! result ([`Machine::handle_decoded`](super::Machine::handle_decoded)) is what
//! changes the replicas, in the order the driver hands results in.

use std::collections::BTreeMap;

use clonewire_core::protocol::suite::{
    decode_reply, ErrorReply, GetReply, HashesReply, HelloReply, ReplayReply, SnapshotReply,
};
use clonewire_core::protocol::DecodeError;
use clonewire_core::{Changes, Hash, Seq, Topic};

use super::request::{InFlight, Pending};

/// The answer to the follower's request out, received and not decoded yet. While it
/// is held, the request no longer times out and no other request is sent; hand its
/// decoding back with [`Machine::handle_decoded`](super::Machine::handle_decoded).
pub struct ArrivedReply {
    pub(super) inflight: InFlight,
}

impl ArrivedReply {
    /// The op it answers (`hello`, `snapshot`, ...).
    pub fn op(&self) -> &'static str {
        self.inflight.op
    }

    /// Decodes the answer's bytes; a snapshot's topics are also built and their
    /// hashes computed. Pure and possibly slow (seconds for a 100K-task snapshot):
    /// run it where waiting does not hold up the stream.
    pub fn decode(self, bytes: &[u8]) -> DecodedReply {
        let result = decode(&self.inflight.pending, bytes).map(|answer| {
            answer.map(|reply| match reply {
                Reply::Snapshot(snapshot) => Reply::Built(build(snapshot)),
                other => other,
            })
        });
        DecodedReply {
            inflight: self.inflight,
            result,
        }
    }
}

/// An [`ArrivedReply`] decoded: ready for
/// [`Machine::handle_decoded`](super::Machine::handle_decoded).
pub struct DecodedReply {
    pub(super) inflight: InFlight,
    pub(super) result: Result<Result<Reply, ErrorReply>, DecodeError>,
}

/// A successful answer.
pub(super) enum Reply {
    Hello(HelloReply),
    /// As decoded; [`ArrivedReply::decode`] builds it into [`Reply::Built`].
    Snapshot(SnapshotReply),
    Built(BuiltSnapshot),
    Replay(ReplayReply),
    Hashes(HashesReply),
    Get(GetReply),
}

impl Reply {
    /// The epoch it answers for.
    pub(super) fn epoch(&self) -> &str {
        match self {
            Reply::Hello(r) => &r.epoch,
            Reply::Snapshot(r) => &r.epoch,
            Reply::Built(r) => &r.epoch,
            Reply::Replay(r) => &r.epoch,
            Reply::Hashes(r) => &r.epoch,
            Reply::Get(r) => &r.epoch,
        }
    }
}

/// Decodes the answer to `pending`: a reply, an error reply, or garbage.
fn decode(pending: &Pending, bytes: &[u8]) -> Result<Result<Reply, ErrorReply>, DecodeError> {
    match pending {
        Pending::Hello => decode_reply::<HelloReply>("hello reply", bytes).map(|r| r.map(Reply::Hello)),
        Pending::Snapshot { .. } => {
            decode_reply::<SnapshotReply>("snapshot reply", bytes).map(|r| r.map(Reply::Snapshot))
        }
        Pending::Replay { .. } => {
            decode_reply::<ReplayReply>("replay reply", bytes).map(|r| r.map(Reply::Replay))
        }
        Pending::Hashes { .. } => {
            decode_reply::<HashesReply>("hashes reply", bytes).map(|r| r.map(Reply::Hashes))
        }
        Pending::Get { .. } => decode_reply::<GetReply>("get reply", bytes).map(|r| r.map(Reply::Get)),
    }
}

/// A snapshot reply with every topic built from its value.
pub(super) struct BuiltSnapshot {
    pub(super) epoch: String,
    pub(super) topics: BTreeMap<String, BuiltTopic>,
}

/// One topic of a snapshot: its seq and the suite's hash, and the replica built from
/// its value (or why it could not be).
pub(super) struct BuiltTopic {
    pub(super) seq: Seq,
    pub(super) hash: Hash,
    pub(super) topic: Result<Fresh, String>,
}

/// A topic built from a snapshot's value, and its leaves as changes from empty.
pub(super) struct Fresh {
    pub(super) topic: Topic,
    pub(super) added: Changes,
}

pub(super) fn build(snapshot: SnapshotReply) -> BuiltSnapshot {
    let topics = snapshot
        .topics
        .into_iter()
        .map(|(name, snap)| {
            let mut topic = Topic::new(name.clone());
            // The value moves into the replica rather than being copied (a value that
            // is not an object is refused, as by `Topic::from_value`).
            let built = match topic.apply_owned(snap.value) {
                Ok(_) => {
                    // What it changes in an empty replica (a topic fetched to be
                    // followed), computed here too.
                    let mut fresh = Topic::new(name.clone());
                    let added = fresh.replace_with(topic);
                    Ok(Fresh { topic: fresh, added })
                }
                Err(e) => Err(e.to_string()),
            };
            let built = BuiltTopic {
                seq: snap.seq,
                hash: snap.hash,
                topic: built,
            };
            (name, built)
        })
        .collect();
    BuiltSnapshot {
        epoch: snapshot.epoch,
        topics,
    }
}
