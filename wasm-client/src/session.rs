//! The client's protocol logic, free of any browser type so it runs in native tests:
//! the connection's lifecycle, decoding relay frames, applying them to the [`Store`],
//! telling views, keeping the relay's subscription equal to the merged views, resync
//! and resume. The wasm layer feeds it socket events and carries out what it returns:
//! frames to send (drained with [`Session::take_outgoing`]), view notifications and
//! events for the page.

use std::collections::{BTreeMap, VecDeque};

use clonewire_core::protocol::client::fast::{self, Frame};
use clonewire_core::protocol::client::{ClientMessage, RelayMessage, WorkflowState};
use clonewire_core::{QueryError, Schema, SubscriptionLimits};
use serde_json::Value;

use crate::backoff::Backoff;
pub use crate::effects::{Change, Effects, Notification, Touched};
use crate::events::{PageEvent, Status};
use crate::inspect::{Counters, Inspection, TopicInfo, ViewInfo, WorkflowInfo};
use crate::store::{ApplyOutcome, Chain, Reject, Store};
use crate::views::{Schemas, ViewId, Views};

/// Frames waiting to be sent; the wasm layer drains them after every call, so this
/// only bounds a misbehaving caller.
const MAX_OUTGOING: usize = 1024;

/// Snapshots in a row that fail their hash before the client stops asking again for
/// that (workflow, topic) until the next connection.
const MAX_BAD_SNAPSHOTS: u32 = 3;

/// The client's whole state, one per `connect`.
#[derive(Debug)]
pub struct Session {
    store: Store,
    views: Views,
    schemas: Schemas,
    workflows: BTreeMap<String, (WorkflowState, Option<Schema>)>,
    status: Status,
    open: bool,
    ever_opened: bool,
    /// The query sent on this connection (its normalized text), if any.
    sent_query: Option<String>,
    subscribed: Option<String>,
    relay: Option<String>,
    outgoing: VecDeque<String>,
    counters: Counters,
    backoff: Backoff,
    /// The compression named in `subscribe`: the socket layer inflates it.
    compression: Option<String>,
}

impl Session {
    /// A session with no views, not connected; queries are held to `limits`.
    pub fn new(limits: SubscriptionLimits) -> Session {
        Session {
            store: Store::new(),
            views: Views::new(limits),
            schemas: Schemas::default(),
            workflows: BTreeMap::new(),
            status: Status::Connecting,
            open: false,
            ever_opened: false,
            sent_query: None,
            subscribed: None,
            relay: None,
            outgoing: VecDeque::new(),
            counters: Counters::default(),
            backoff: Backoff::default(),
            compression: None,
        }
    }

    /// Asks the relay for large frames compressed with `compression` (docs/protocol.md):
    /// only for a socket layer that inflates them, in order, before [`Session::receive`].
    pub fn set_compression(&mut self, compression: Option<String>) {
        self.compression = compression;
    }

    /// Sets the reconnect delays: the first, and the longest (milliseconds).
    pub fn set_reconnect_delays(&mut self, base_ms: u32, max_ms: u32) {
        self.backoff.base_ms = base_ms.max(1);
        self.backoff.max_ms = max_ms.max(self.backoff.base_ms);
    }

    /// Every workflow heard of, with its state and schema.
    pub fn workflows(&self) -> Vec<WorkflowInfo> {
        self.workflows
            .iter()
            .map(|(workflow, (state, schema))| WorkflowInfo {
                workflow: workflow.clone(),
                state: *state,
                schema: schema.clone(),
            })
            .collect()
    }

    /// The connection's state.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The store (read-only).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Frames to send to the relay, oldest first.
    pub fn take_outgoing(&mut self) -> Vec<String> {
        self.outgoing.drain(..).collect()
    }

    fn send(&mut self, message: &ClientMessage) {
        if self.open && self.outgoing.len() < MAX_OUTGOING {
            self.outgoing
                .push_back(String::from_utf8_lossy(&clonewire_core::protocol::encode(message)).into_owned());
        }
    }

    fn set_status(&mut self, status: Status, delay_ms: Option<u32>, effects: &mut Effects) {
        self.status = status;
        effects.events.push(PageEvent::Status { status, delay_ms });
    }

    /// A WebSocket is being opened.
    pub fn connecting(&mut self) -> Effects {
        let mut effects = Effects::default();
        self.set_status(Status::Connecting, None, &mut effects);
        effects
    }

    /// The WebSocket opened: subscribe (resuming every verified copy) and ask again for
    /// copies still awaiting a snapshot.
    pub fn opened(&mut self) -> Effects {
        let mut effects = Effects::default();
        if self.ever_opened {
            self.counters.reconnects += 1;
        }
        self.ever_opened = true;
        self.open = true;
        self.sent_query = None;
        self.subscribed = None;
        self.set_status(Status::Open, None, &mut effects);
        self.store.forgive();
        self.sync_subscription(true);
        for (workflow, topic) in self.store.unverified() {
            self.resync(workflow, topic);
        }
        effects
    }

    /// The WebSocket closed. Unless the page closed the client, returns the delay
    /// before the next attempt; `jitter` is a random number in `[0, 1)`.
    pub fn closed(&mut self, jitter: f64) -> (Effects, Option<u32>) {
        let mut effects = Effects::default();
        self.open = false;
        self.outgoing.clear();
        if self.status == Status::Closed {
            return (effects, None);
        }
        let delay = self.backoff.next_delay(jitter);
        self.set_status(Status::Reconnecting, Some(delay), &mut effects);
        (effects, Some(delay))
    }

    /// The page closed the client: no more attempts.
    pub fn close(&mut self) -> Effects {
        let mut effects = Effects::default();
        self.open = false;
        self.outgoing.clear();
        if self.status != Status::Closed {
            self.set_status(Status::Closed, None, &mut effects);
        }
        effects
    }

    /// Sends `subscribe` when the merged query differs from the one the relay has.
    fn sync_subscription(&mut self, first_on_connection: bool) {
        if !self.open {
            return;
        }
        let merged = self.views.merged();
        if first_on_connection && merged.is_empty() {
            // A fresh connection selects nothing until told otherwise.
            self.sent_query = Some(merged.key());
            return;
        }
        let key = merged.key();
        if self.sent_query.as_deref() == Some(key.as_str()) {
            return;
        }
        let resume = first_on_connection
            .then(|| self.store.resume_points())
            .filter(|r| !r.is_empty());
        self.sent_query = Some(key.clone());
        self.counters.subscribes += 1;
        self.send(&ClientMessage::Subscribe {
            query: key,
            resume,
            compression: self.compression.clone(),
        });
    }

    fn resync(&mut self, workflow: String, topic: String) {
        if self.open {
            self.counters.resyncs += 1;
        }
        self.send(&ClientMessage::Resync { workflow, topic });
    }

    /// Handles one text frame from the relay. Never panics on bad input: a frame that
    /// does not decode is counted and, when it names a (workflow, topic), that copy is
    /// resynced.
    pub fn receive(&mut self, text: &str) -> Effects {
        let mut effects = Effects::default();
        self.counters.messages += 1;
        self.counters.bytes += text.len() as u64;
        let Ok(message) = fast::decode(text) else {
            self.undecodable(text);
            return effects;
        };
        let message = match message {
            Frame::Snapshot(data) => {
                let outcome = self.store.snapshot(
                    &data.workflow,
                    &data.topic,
                    &data.epoch,
                    data.seq,
                    data.hash,
                    &data.body,
                );
                self.settle(outcome, true, &data.workflow, &data.topic, None, &mut effects);
                return effects;
            }
            Frame::Delta(data) => {
                let outcome = self.store.delta(
                    &data.workflow,
                    &data.topic,
                    &data.epoch,
                    Chain {
                        prev: data.prev,
                        seq: data.seq,
                    },
                    data.hash,
                    &data.body,
                );
                self.settle(
                    outcome,
                    false,
                    &data.workflow,
                    &data.topic,
                    data.time,
                    &mut effects,
                );
                return effects;
            }
            Frame::Other(message) => message,
        };
        match message {
            RelayMessage::Hello { relay, .. } => {
                self.relay = Some(relay);
                self.backoff.reset();
            }
            RelayMessage::Subscribed { query } => self.subscribed = Some(query),
            RelayMessage::Error { code, message } => effects.events.push(PageEvent::Error {
                code: code.as_str().to_owned(),
                message,
            }),
            RelayMessage::Workflow {
                workflow,
                state,
                schema,
            } => self.workflow(workflow, state, schema, &mut effects),
            // Decoded as `Frame::Snapshot` and `Frame::Delta` above.
            RelayMessage::Snapshot { .. } | RelayMessage::Delta { .. } => {}
        }
        effects
    }

    fn workflow(
        &mut self,
        workflow: String,
        state: WorkflowState,
        schema: Option<Schema>,
        effects: &mut Effects,
    ) {
        if let Some(schema) = &schema {
            if self.schemas.get(&workflow) != Some(schema) {
                let old = self.schemas.insert(workflow.clone(), schema.clone());
                let shown = self
                    .views
                    .schema_changed(&workflow, old.as_ref(), &self.store, &self.schemas);
                for touched in shown {
                    effects.touch(touched);
                }
            }
        }
        let schema = schema.or_else(|| self.schemas.get(&workflow).cloned());
        self.workflows.insert(workflow.clone(), (state, schema.clone()));
        effects.events.push(PageEvent::Workflow {
            workflow: workflow.clone(),
            state,
            schema,
        });
        if state == WorkflowState::Removed {
            for (topic, gone) in self.store.remove_workflow(&workflow) {
                let mut touched = Touched::new(&workflow, &topic, None, gone);
                self.views.select(&mut touched, &self.schemas);
                effects.touch(touched);
            }
        }
        self.count_notifications(effects);
    }

    fn settle(
        &mut self,
        outcome: ApplyOutcome,
        snapshot: bool,
        workflow: &str,
        topic: &str,
        time: Option<f64>,
        effects: &mut Effects,
    ) {
        match outcome {
            ApplyOutcome::Applied(changes) => {
                if snapshot {
                    self.counters.snapshots += 1;
                } else {
                    self.counters.deltas += 1;
                    match self.counters.deltas_by_topic.get_mut(topic) {
                        Some(n) => *n += 1,
                        None => {
                            self.counters.deltas_by_topic.insert(topic.to_owned(), 1);
                        }
                    }
                }
                let mut touched = Touched::new(workflow, topic, time, changes);
                self.views.select(&mut touched, &self.schemas);
                effects.touch(touched);
                self.count_notifications(effects);
            }
            ApplyOutcome::Ignored => self.counters.ignored += 1,
            ApplyOutcome::Rejected(reject) => {
                match reject {
                    Reject::HashMismatch { .. } => self.counters.hash_mismatches += 1,
                    Reject::WrongPrev { .. } | Reject::WrongEpoch => self.counters.chain_breaks += 1,
                    Reject::BadPatch => self.counters.bad_messages += 1,
                }
                let failures = self.store.get(workflow, topic).map_or(0, |r| r.bad_snapshots);
                if failures >= MAX_BAD_SNAPSHOTS {
                    effects.events.push(PageEvent::Error {
                        code: "resync_failed".to_owned(),
                        message: format!(
                            "{failures} snapshots of {workflow}/{topic} in a row did not match their hash; \
                             showing the last verified data until the next connection"
                        ),
                    });
                } else {
                    self.resync(workflow.to_owned(), topic.to_owned());
                }
            }
        }
    }

    fn count_notifications(&mut self, effects: &Effects) {
        self.counters.notifications += effects.view_count() as u64;
    }

    /// A frame that is not a relay message: count it; if it names a (workflow, topic)
    /// as a snapshot or delta would, that copy can no longer be trusted.
    fn undecodable(&mut self, text: &str) {
        self.counters.bad_messages += 1;
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let kind = fields.get("type").and_then(Value::as_str);
        let workflow = fields.get("workflow").and_then(Value::as_str);
        let topic = fields.get("topic").and_then(Value::as_str);
        if let (Some("delta" | "snapshot"), Some(workflow), Some(topic)) = (kind, workflow, topic) {
            let pending = self.store.get(workflow, topic).is_some_and(|r| !r.verified);
            self.store.distrust(workflow, topic);
            if !pending {
                self.resync(workflow.to_owned(), topic.to_owned());
            }
        }
    }

    /// Opens a view. A bad query is an error for this view only; the client and the
    /// other views carry on.
    pub fn add_view(&mut self, name: &str, query: &str) -> Result<ViewId, QueryError> {
        let id = self.views.add(name, query, &self.schemas)?;
        self.sync_subscription(false);
        Ok(id)
    }

    /// Changes a view's query. Returns what the view now shows differently of the data
    /// already held (more arrives from the relay as the merged query grows).
    pub fn set_view_query(&mut self, id: ViewId, query: &str) -> Result<Effects, QueryError> {
        let old = self.views.set_query(id, query, &self.schemas)?;
        let mut effects = Effects::default();
        for touched in self.views.requery_changes(id, &old, &self.store, &self.schemas) {
            effects.touch(touched);
        }
        self.count_notifications(&effects);
        self.sync_subscription(false);
        Ok(effects)
    }

    /// Closes a view; the merged query shrinks if nothing else needs its fields.
    pub fn remove_view(&mut self, id: ViewId) -> bool {
        let removed = self.views.remove(id);
        if removed {
            self.sync_subscription(false);
        }
        removed
    }

    /// A view's normalized query, while it is open.
    pub fn view_query(&self, id: ViewId) -> Option<String> {
        self.views.get(id).map(|v| v.subscription.key())
    }

    /// True while the view is open.
    pub fn has_view(&self, id: ViewId) -> bool {
        self.views.get(id).is_some()
    }

    /// A view's data, `{"workflows": {...}}`, or `None` once closed.
    pub fn view_data(&mut self, id: ViewId) -> Option<Value> {
        self.views.data(id, &self.store, &self.schemas)
    }

    /// The merged query's normalized text.
    pub fn merged_query(&self) -> String {
        self.views.merged().key()
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Everything the inspector shows.
    pub fn inspect(&self) -> Inspection {
        Inspection {
            status: self.status,
            relay: self.relay.clone(),
            views: self
                .views
                .iter()
                .map(|(id, v)| ViewInfo {
                    id,
                    name: v.name.clone(),
                    query: v.subscription.key(),
                })
                .collect(),
            query: self.views.merged().key(),
            subscribed: self.subscribed.clone(),
            topics: self
                .store
                .iter()
                .map(|((workflow, topic), r)| TopicInfo {
                    workflow: workflow.clone(),
                    topic: topic.clone(),
                    epoch: r.epoch.clone(),
                    seq: r.seq,
                    hash: r.topic.hash().to_string(),
                    verified: r.verified,
                })
                .collect(),
            workflows: self.workflows(),
            counters: self.counters.clone(),
        }
    }
}
