//! The messages views write: deltas made for one client and snapshots, and the
//! projection a view compiles for a topic.

use std::sync::Arc;

use clonewire_core::protocol::client::fast::{delta_head, delta_text};
use clonewire_core::protocol::client::RelayMessage;
use clonewire_core::{Changes, Hash, Projection, Schema, Seq};
use serde_json::{Map, Value};

use super::ReplicaSource;
use crate::clients::outbox::SharedDelta;
use crate::workflow::registry::Group;

/// A delta made for one client (a rebind or a resume), from `prev` to `seq`; it has
/// no suite time, as it stands for several suite deltas or none.
pub(super) fn bridging_delta(
    workflow: &Arc<str>,
    epoch: &str,
    topic: &str,
    prev: Seq,
    seq: Seq,
    hash: Hash,
    changes: Changes,
) -> SharedDelta {
    let (prev, time) = (Some(prev), None);
    let patch = changes.patch_text();
    let text = delta_text(&delta_head(workflow, topic, epoch), seq, prev, hash, time, &patch);
    SharedDelta {
        key: (workflow.clone(), Arc::from(topic)),
        epoch: Arc::from(epoch),
        seq,
        prev,
        hash,
        time,
        changes: Arc::new(changes),
        text: text.into(),
    }
}

pub(super) fn snapshot_text(
    workflow: &str,
    epoch: &str,
    topic: &str,
    seq: Seq,
    hash: Hash,
    value: Value,
) -> Arc<str> {
    RelayMessage::Snapshot {
        workflow: workflow.to_owned(),
        topic: topic.to_owned(),
        epoch: epoch.to_owned(),
        seq,
        hash,
        value,
    }
    .to_text()
    .into()
}

pub(super) fn empty() -> Value {
    Value::Object(Map::new())
}

/// What views are compiled against while the schema is not known: no collections.
static NO_SCHEMA: Schema = Schema {
    collections: Vec::new(),
};

pub(super) fn compile(
    group: &Group,
    workflow: &str,
    topic: &str,
    store: &impl ReplicaSource,
) -> Option<Projection> {
    Projection::compile(
        group.sub.for_topic(workflow, topic)?,
        topic,
        store.schema().unwrap_or(&NO_SCHEMA),
    )
}
