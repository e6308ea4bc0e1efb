//! What comes out of a [`ClientLink`](super::ClientLink) besides frames and deadlines:
//! its events, its status and its counters.

use std::time::Duration;

use serde::Serialize;

use crate::checked_copy::Reject;
use crate::protocol::client::{ClientErrorCode, WorkflowState};
use crate::protocol::command::Outcome;
use crate::{Changes, Schema, Seq};

/// The connection as the link sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkStatus {
    /// A socket is being opened (and before the first).
    Connecting,
    /// The socket is open.
    Open,
    /// Lost; the next attempt is due at the link's deadline.
    Reconnecting,
    /// Closed by the owner; no attempt until it connects again.
    Closed,
}

/// Whether a message was a `snapshot` or a `delta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// A `snapshot`: replaces the copy.
    Snapshot,
    /// A `delta`: chains to the copy.
    Delta,
}

/// What the link did about a message it refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterReject {
    /// Asked for a fresh snapshot (`resync`), when connected.
    Resync,
    /// Stopped asking: this many snapshots in a row failed their hash. The copy keeps
    /// its last verified data until the next connection.
    GaveUp {
        /// Snapshots in a row that failed.
        failures: u32,
    },
}

/// A message applied to its copy and verified.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The workflow id.
    pub workflow: String,
    /// The topic.
    pub topic: String,
    /// A snapshot or a delta.
    pub kind: DataKind,
    /// The copy's seq before (`None`: no message had been applied to it).
    pub before: Option<Seq>,
    /// The message's seq, the copy's now.
    pub seq: Seq,
    /// The suite's publish time (Unix ms), for deltas that say.
    pub time: Option<f64>,
    /// The leaves that changed (possibly none).
    pub changes: Changes,
}

/// Something the driver acts on, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkEvent {
    /// The status changed.
    Status {
        /// The new status.
        status: LinkStatus,
        /// For [`LinkStatus::Reconnecting`]: how long until the next attempt.
        retry_in: Option<Duration>,
    },
    /// The reconnect deadline passed: open a socket now.
    Connect,
    /// The relay said hello.
    Hello {
        /// Its "name/version".
        relay: String,
    },
    /// The relay refused something the client sent (the connection stays).
    RelayError {
        /// What kind of problem.
        code: ClientErrorCode,
        /// For a person.
        message: String,
    },
    /// A workflow's state (and schema), as the relay reported it.
    Workflow {
        /// The workflow id.
        workflow: String,
        /// Its state.
        state: WorkflowState,
        /// Its schema, when the relay knows it.
        schema: Option<Schema>,
    },
    /// A snapshot in an epoch other than the workflow's latest: the suite restarted.
    /// Comes before what the snapshot did.
    NewEpoch {
        /// The workflow id.
        workflow: String,
        /// The new epoch.
        epoch: String,
    },
    /// A snapshot or delta applied and verified.
    Applied(Applied),
    /// A snapshot or delta refused; its copy is as before and awaits a snapshot.
    Rejected {
        /// The workflow id.
        workflow: String,
        /// The topic.
        topic: String,
        /// A snapshot or a delta.
        kind: DataKind,
        /// Why.
        reject: Reject,
        /// What the link did about it.
        next: AfterReject,
    },
    /// A frame that is not a relay message (a copy it names awaits a snapshot).
    Undecodable {
        /// Why, for the logs.
        error: String,
    },
    /// A request sent with a client id will not be answered: its deadline passed, or
    /// the connection went.
    CommandUnanswered {
        /// The client's id.
        id: String,
    },
    /// The relay's answer to a command this link sent.
    CommandResult {
        /// The client's id.
        id: String,
        /// The workflow.
        workflow: String,
        /// The command's name.
        command: String,
        /// How it ended.
        outcome: Outcome,
        /// The relay's or scheduler's words.
        message: String,
        /// With `busy`: when to try again.
        retry_ms: Option<u64>,
    },
}

/// Running totals since the link was made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received.
    pub messages: u64,
    /// Bytes of those frames (UTF-8).
    pub bytes: u64,
    /// Snapshots applied.
    pub snapshots: u64,
    /// Deltas applied.
    pub deltas: u64,
    /// Deltas dropped while their copy awaited a snapshot.
    pub ignored: u64,
    /// Messages whose hash did not check after applying.
    pub hash_mismatches: u64,
    /// Messages that failed the `prev` chain or epoch check.
    pub chain_breaks: u64,
    /// Frames that did not decode, and messages whose value or patch is not an object.
    pub bad_messages: u64,
    /// `subscribe` messages sent.
    pub subscribes: u64,
    /// `resync` messages sent.
    pub resyncs: u64,
    /// Connections opened.
    pub connections: u64,
    /// Frames to send dropped because the driver did not take the ones before.
    pub dropped_frames: u64,
}
