//! The client link (docs/protocol.md, Client link): JSON text frames on the `/ws`
//! WebSocket. This module owns the link's wire format: the message types here (serde,
//! for every message), the fast paths the relay and the browser use for `delta` and
//! `snapshot` frames ([`fast`]), workflow states and close codes.
//!
//! `core/tests/client_wire.rs` checks that the fast paths and the serde types agree.

mod close;
pub mod fast;
mod state;

pub use close::CloseCode;
pub use state::WorkflowState;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::command::Outcome;
use super::{decode, DecodeError};
use crate::hash::Hash;
use crate::schema::Schema;
use crate::seq::Seq;

/// Where a client's copy of one (workflow, topic) stands, for `resume`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The suite epoch of the copy.
    pub epoch: String,
    /// The seq of the last message applied.
    pub seq: Seq,
    /// The projection hash of the copy.
    pub hash: Hash,
}

/// The frame compression of the client link: raw DEFLATE (RFC 1951, no header), as
/// browsers' `DecompressionStream("deflate-raw")` reads it.
pub const DEFLATE_RAW: &str = "deflate-raw";

/// Resume points by workflow, then topic.
pub type Resume = BTreeMap<String, BTreeMap<String, ResumePoint>>;

/// A message from a client to the relay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Sets (or replaces) the connection's one subscription.
    Subscribe {
        /// The subscription text.
        query: String,
        /// Copies the client already holds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<Resume>,
        /// A compression the client can inflate ([`DEFLATE_RAW`] is the one the relay
        /// knows): large frames then come as binary frames in it. Absent: text only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compression: Option<String>,
    },
    /// Asks for a fresh snapshot of one (workflow, topic).
    Resync {
        /// The workflow id.
        workflow: String,
        /// The topic.
        topic: String,
    },
    /// Asks the relay to act on a workflow (docs/protocol.md, Commands); answered by
    /// one [`RelayMessage::CommandResult`] with the same `id`. The name and arguments
    /// are checked by [`Command::check`](super::command::Command::check), so an
    /// unknown name still decodes and is answered `bad_command`.
    Command {
        /// The client's own id for it.
        id: String,
        /// The workflow id.
        workflow: String,
        /// The command's name.
        command: String,
        /// Its arguments (absent or null: none).
        #[serde(default)]
        args: Value,
    },
}

impl ClientMessage {
    /// Decodes a text frame from a client.
    pub fn decode(text: &str) -> Result<ClientMessage, DecodeError> {
        decode("client message", text.as_bytes())
    }
}

/// Error codes the relay sends to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientErrorCode {
    /// The subscription could not be parsed or is not allowed.
    BadQuery,
    /// The message could not be decoded.
    BadMessage,
    /// Too many `subscribe`/`resync` messages for the connection's rate; the
    /// message was ignored and the connection stays.
    RateLimited,
}

impl ClientErrorCode {
    /// The wire name (what serde writes).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientErrorCode::BadQuery => "bad_query",
            ClientErrorCode::BadMessage => "bad_message",
            ClientErrorCode::RateLimited => "rate_limited",
        }
    }

    /// The code with this wire name, if any.
    pub fn from_name(name: &str) -> Option<ClientErrorCode> {
        [
            ClientErrorCode::BadQuery,
            ClientErrorCode::BadMessage,
            ClientErrorCode::RateLimited,
        ]
        .into_iter()
        .find(|c| c.as_str() == name)
    }
}

/// A message from the relay to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RelayMessage {
    /// Sent on connect.
    Hello {
        /// [`PROTOCOL`](super::PROTOCOL).
        protocol: String,
        /// "name/version" of the relay.
        relay: String,
    },
    /// The subscription was accepted; `query` is its normalized text.
    Subscribed {
        /// The normalized subscription.
        query: String,
    },
    /// Something the client sent was refused; the connection stays open.
    Error {
        /// What kind of problem.
        code: ClientErrorCode,
        /// For a person.
        message: String,
    },
    /// A workflow's state (and schema).
    Workflow {
        /// The workflow id.
        workflow: String,
        /// Its state.
        state: WorkflowState,
        /// The suite's schema.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Schema>,
    },
    /// Replaces the client's copy of (workflow, topic).
    Snapshot {
        /// The workflow id.
        workflow: String,
        /// The topic.
        topic: String,
        /// The suite's epoch.
        epoch: String,
        /// The suite seq the copy stands at.
        seq: Seq,
        /// The projection hash of `value`.
        hash: Hash,
        /// The projected value.
        value: Value,
    },
    /// A merge patch for the client's copy, cut down to its subscription.
    Delta {
        /// The workflow id.
        workflow: String,
        /// The topic.
        topic: String,
        /// The suite's epoch.
        epoch: String,
        /// The suite seq after this delta.
        seq: Seq,
        /// The seq of the previous message for (workflow, topic), or null.
        prev: Option<Seq>,
        /// The projection hash after applying.
        hash: Hash,
        /// The suite's publish time (ms), if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<f64>,
        /// The merge patch.
        patch: Value,
    },
    /// How the client's `command` with this `id` ended.
    #[serde(rename = "command_result")]
    CommandResult {
        /// The client's id for the command.
        id: String,
        /// The workflow id.
        workflow: String,
        /// The command's name.
        command: String,
        /// How it ended.
        outcome: Outcome,
        /// For a person: the scheduler's own words for `queued` and `refused`.
        message: String,
        /// With `busy`: when to try again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_ms: Option<u64>,
    },
}

impl RelayMessage {
    /// Decodes a text frame from the relay.
    pub fn decode(text: &str) -> Result<RelayMessage, DecodeError> {
        decode("relay message", text.as_bytes())
    }

    /// Encodes as the JSON text of one frame.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The message's `type` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            RelayMessage::Hello { .. } => "hello",
            RelayMessage::Subscribed { .. } => "subscribed",
            RelayMessage::Error { .. } => "error",
            RelayMessage::Workflow { .. } => "workflow",
            RelayMessage::Snapshot { .. } => "snapshot",
            RelayMessage::Delta { .. } => "delta",
            RelayMessage::CommandResult { .. } => "command_result",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_serde_writes() {
        for code in [
            ClientErrorCode::BadQuery,
            ClientErrorCode::BadMessage,
            ClientErrorCode::RateLimited,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let hello = RelayMessage::Hello {
            protocol: "p".into(),
            relay: "r".into(),
        };
        let value: Value = serde_json::from_str(&hello.to_text()).unwrap();
        assert_eq!(value["type"], hello.kind());
    }
}
