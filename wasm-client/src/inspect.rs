//! What `client.inspect()` reports: views and their queries, the merged query, every
//! (workflow, topic) copy with its chain position and hash, workflows, and counters.

use std::collections::BTreeMap;

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::{Schema, Seq};
use serde::Serialize;

use crate::events::Status;

/// Running totals since the client was created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Frames received from the relay.
    pub messages: u64,
    /// Bytes of those frames (UTF-8).
    pub bytes: u64,
    /// Snapshots applied.
    pub snapshots: u64,
    /// Deltas applied.
    pub deltas: u64,
    /// Deltas applied, per topic name.
    pub deltas_by_topic: BTreeMap<String, u64>,
    /// `resync` requests sent.
    pub resyncs: u64,
    /// Connections opened after the first.
    pub reconnects: u64,
    /// Messages that failed the `prev` chain or epoch check.
    pub chain_breaks: u64,
    /// Messages whose hash did not check after applying.
    pub hash_mismatches: u64,
    /// Deltas dropped while their copy awaited a snapshot.
    pub ignored: u64,
    /// Frames that did not decode.
    pub bad_messages: u64,
    /// `subscribe` messages sent.
    pub subscribes: u64,
    /// View callbacks made.
    pub notifications: u64,
}

/// One view in the inspector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViewInfo {
    /// The view's id.
    pub id: u32,
    /// The name the page gave it.
    pub name: String,
    /// Its normalized query.
    pub query: String,
}

/// One (workflow, topic) copy in the inspector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    /// The workflow id.
    pub workflow: String,
    /// The topic.
    pub topic: String,
    /// The suite epoch of the last message applied.
    pub epoch: String,
    /// The seq of the last message applied.
    pub seq: Option<Seq>,
    /// The copy's projection hash, 16 hex digits.
    pub hash: String,
    /// False while the copy awaits a snapshot after a failed check.
    pub verified: bool,
}

/// One workflow in the inspector.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkflowInfo {
    /// The workflow id.
    pub workflow: String,
    /// Its last reported state.
    pub state: WorkflowState,
    /// Its schema, if reported.
    pub schema: Option<Schema>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The connection's state.
    pub status: Status,
    /// The relay's "name/version" from `hello`.
    pub relay: Option<String>,
    /// Open views.
    pub views: Vec<ViewInfo>,
    /// The merged query of all views (normalized).
    pub query: String,
    /// The query the relay last confirmed with `subscribed`.
    pub subscribed: Option<String>,
    /// Every copy.
    pub topics: Vec<TopicInfo>,
    /// Every workflow heard of.
    pub workflows: Vec<WorkflowInfo>,
    /// Totals.
    pub counters: Counters,
}
