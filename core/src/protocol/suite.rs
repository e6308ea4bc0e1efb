//! The suite link (docs/protocol.md, Suite link): published messages, and requests
//! and their replies.

use std::collections::BTreeMap;

use super::command::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{decode, DecodeError};
use crate::hash::Hash;
use crate::schema::Schema;
use crate::seq::Seq;

/// Frame 0 of a heartbeat.
pub const HEARTBEAT_TOPIC: &str = "_hb";
/// Frame 0 of a goodbye.
pub const BYE_TOPIC: &str = "_bye";

/// A delta on the PUB socket (frame 0 is the topic).
///
/// `P` is how the patch is held: a parsed [`Value`] by default; a publisher that keeps
/// patches as JSON text (`serde_json::value::RawValue`) encodes the same bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delta<P = Value> {
    /// Changes every time the suite process starts.
    pub epoch: String,
    /// Per (epoch, topic): 1 for the first delta, +1 for each next.
    pub seq: Seq,
    /// The topic hash after applying `patch`.
    pub hash: Hash,
    /// Unix time in milliseconds when published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// The RFC 7386 merge patch for the topic's value.
    pub patch: P,
}

/// A heartbeat (`_hb`): the latest seq of every topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The suite's epoch.
    pub epoch: String,
    /// Unix time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// Latest seq per topic.
    #[serde(default)]
    pub seqs: BTreeMap<String, Seq>,
}

/// A goodbye (`_bye`), once on orderly shutdown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bye {
    /// The epoch that is ending.
    pub epoch: String,
}

/// A message on the PUB socket, by frame 0.
#[derive(Clone, Debug, PartialEq)]
pub enum PubMessage {
    /// A topic's delta.
    Delta {
        /// The topic (frame 0).
        topic: String,
        /// The body.
        delta: Delta,
    },
    /// `_hb`.
    Heartbeat(Heartbeat),
    /// `_bye`.
    Bye(Bye),
}

impl PubMessage {
    /// Decodes the two frames of a PUB message.
    pub fn decode(topic: &[u8], body: &[u8]) -> Result<PubMessage, DecodeError> {
        let topic = std::str::from_utf8(topic).map_err(|_| DecodeError {
            what: "topic frame",
            reason: "not UTF-8".into(),
        })?;
        match topic {
            HEARTBEAT_TOPIC => decode("heartbeat", body).map(PubMessage::Heartbeat),
            BYE_TOPIC => decode("goodbye", body).map(PubMessage::Bye),
            t if t.starts_with('_') => Err(DecodeError {
                what: "topic frame",
                reason: format!("unknown reserved topic {t:?}"),
            }),
            t => {
                let delta: Delta = decode("delta", body)?;
                if delta.seq == Seq::ZERO {
                    return Err(DecodeError {
                        what: "delta",
                        reason: "seq starts at 1".into(),
                    });
                }
                Ok(PubMessage::Delta {
                    topic: t.to_owned(),
                    delta,
                })
            }
        }
    }

    /// The two frames of this message.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            PubMessage::Delta { topic, delta } => (topic.as_bytes().to_vec(), super::encode(delta)),
            PubMessage::Heartbeat(hb) => (HEARTBEAT_TOPIC.as_bytes().to_vec(), super::encode(hb)),
            PubMessage::Bye(bye) => (BYE_TOPIC.as_bytes().to_vec(), super::encode(bye)),
        }
    }
}

/// A request on the REP socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Who are you, and where is every topic.
    Hello,
    /// Topic values (absent: all topics).
    Snapshot {
        /// Topics wanted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topics: Option<Vec<String>>,
    },
    /// Topic seqs and hashes.
    Verify {
        /// Topics wanted (absent: all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topics: Option<Vec<String>>,
    },
    /// Deltas of one topic from seq `from` on.
    Replay {
        /// The topic.
        topic: String,
        /// The first seq wanted.
        from: Seq,
    },
    /// The node hash of every child of the object at `path` in `topic`.
    Hashes {
        /// The topic.
        topic: String,
        /// Keys below the topic.
        #[serde(default)]
        path: Vec<String>,
    },
    /// Values at paths below `topic`.
    Get {
        /// The topic.
        topic: String,
        /// Paths below the topic.
        paths: Vec<Vec<String>>,
    },
    /// Act on the workflow (docs/protocol.md, Commands); answered by a
    /// [`CommandReply`]. Checked by the relay already; a suite checks it again.
    Command {
        /// The command's name.
        command: String,
        /// Its arguments.
        #[serde(default)]
        args: Value,
        /// Who asked, for the suite's log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
}

impl Request {
    /// The op name, for logs and metrics.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello => "hello",
            Request::Snapshot { .. } => "snapshot",
            Request::Verify { .. } => "verify",
            Request::Replay { .. } => "replay",
            Request::Hashes { .. } => "hashes",
            Request::Get { .. } => "get",
            Request::Command { .. } => "command",
        }
    }
}

/// A topic's position: its seq and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    /// Latest seq.
    pub seq: Seq,
    /// Topic hash at that seq.
    pub hash: Hash,
}

/// Reply to `hello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HelloReply {
    /// Always [`PROTOCOL`](super::PROTOCOL).
    pub protocol: String,
    /// The suite's name.
    pub name: String,
    /// The current epoch.
    pub epoch: String,
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// Which objects are collections.
    #[serde(default)]
    pub schema: Schema,
    /// Every topic's position.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicState>,
}

/// One topic in a snapshot reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicSnapshot {
    /// The seq the value was taken at.
    pub seq: Seq,
    /// The topic hash of `value`.
    pub hash: Hash,
    /// The topic's value.
    pub value: Value,
}

/// Reply to `snapshot`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReply {
    /// The current epoch.
    pub epoch: String,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicSnapshot>,
}

/// Reply to `verify`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyReply {
    /// The current epoch.
    pub epoch: String,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicState>,
}

/// One delta in a replay reply (`P` as in [`Delta`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayedDelta<P = Value> {
    /// Its seq.
    pub seq: Seq,
    /// Topic hash after it.
    pub hash: Hash,
    /// When it was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// The merge patch.
    pub patch: P,
}

/// Reply to `replay` (`P` as in [`Delta`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayReply<P = Value> {
    /// The current epoch.
    pub epoch: String,
    /// Deltas in seq order from the requested seq on.
    pub deltas: Vec<ReplayedDelta<P>>,
}

/// Reply to `hashes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HashesReply {
    /// The current epoch.
    pub epoch: String,
    /// The topic's seq.
    pub seq: Seq,
    /// The node hash at `path`.
    pub hash: Hash,
    /// The node hash of every child.
    pub children: BTreeMap<String, Hash>,
}

/// Reply to `get`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GetReply {
    /// The current epoch.
    pub epoch: String,
    /// The topic's seq.
    pub seq: Seq,
    /// One value (or null) per requested path.
    pub values: Vec<Value>,
}

/// Error codes a suite may answer any request with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Cannot answer now; `retry_ms` may say when to try.
    Busy,
    /// An optional op this suite does not implement.
    Unsupported,
    /// History no longer reaches back that far.
    Gone,
    /// The request was malformed.
    BadRequest,
}

/// How a suite answered a `command` it took: `queued` or `refused`. (`busy`,
/// `unsupported` and `bad_request` come as an [`ErrorReply`], as to any request.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandReply {
    /// [`Outcome::Queued`] or [`Outcome::Refused`].
    pub outcome: Outcome,
    /// For a person: what was queued, or why not.
    #[serde(default)]
    pub message: String,
}

/// An error reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong.
    pub error: ErrorCode,
    /// For a person.
    #[serde(default)]
    pub message: String,
    /// When to try again (with `busy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ms: Option<u64>,
}

impl ErrorReply {
    /// An error reply with a message.
    pub fn new(error: ErrorCode, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            error,
            message: message.into(),
            retry_ms: None,
        }
    }
}

/// Decodes a reply of type `T`, or the error reply a suite may send instead.
pub fn decode_reply<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<Result<T, ErrorReply>, DecodeError> {
    let value: Value = decode(what, bytes)?;
    if value.get("error").is_some() {
        return serde_json::from_value(value).map(Err).map_err(|e| DecodeError {
            what: "error reply",
            reason: e.to_string(),
        });
    }
    serde_json::from_value(value).map(Ok).map_err(|e| DecodeError {
        what,
        reason: e.to_string(),
    })
}
