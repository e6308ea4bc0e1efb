//! The browser's driver of core's [`ClientLink`], free of any browser type so it
//! runs in native tests. The link does the protocol (subscribe, resume, resync,
//! checking every message into the [`Store`]); the session adds what a page needs:
//! views and their merged query, telling each view what it selects of a change,
//! workflow states, page events and counters. The wasm layer feeds it socket events
//! and carries out what it returns: frames to send (drained with
//! [`Session::take_outgoing`]), view notifications and events for the page.

use std::collections::BTreeMap;

use clonewire_core::client::{
    AfterReject, Applied, ClientLink, DataKind, LinkConfig, LinkEvent, Millis, ResumeFrom, SubscribePacing,
};
use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::{QueryError, Schema, SubscriptionLimits};
use serde_json::Value;

use crate::backoff::Backoff;
pub use crate::effects::{Change, Effects, Notification, Touched};
use crate::events::{PageEvent, Status};
use crate::inspect::{Counters, Inspection, TopicInfo, ViewInfo, WorkflowInfo};
use crate::store::{Store, COPY_POLICY};
use crate::views::{Schemas, ViewId, Views};

/// The client's whole state, one per `connect`.
#[derive(Debug)]
pub struct Session {
    link: ClientLink<Millis>,
    /// The time the wasm layer last told (the browser's link is not paced, so the
    /// time matters only to the reconnect deadline the layer keeps with a timer).
    now: Millis,
    views: Views,
    schemas: Schemas,
    workflows: BTreeMap<String, (WorkflowState, Option<Schema>)>,
    /// Deltas applied per topic name, and view callbacks made (the link counts the rest).
    deltas_by_topic: BTreeMap<String, u64>,
    notifications: u64,
}

impl Session {
    /// A session with no views, not connected; queries are held to `limits`.
    pub fn new(limits: SubscriptionLimits) -> Session {
        let config = LinkConfig {
            copies: COPY_POLICY,
            resume: ResumeFrom::EveryVerifiedCopy,
            pacing: SubscribePacing::Unpaced,
            compression: None,
            backoff: Backoff::default(),
        };
        Session {
            link: ClientLink::new(config),
            now: Millis::default(),
            views: Views::new(limits),
            schemas: Schemas::default(),
            workflows: BTreeMap::new(),
            deltas_by_topic: BTreeMap::new(),
            notifications: 0,
        }
    }

    /// Asks the relay for large frames compressed with `compression` (docs/protocol.md):
    /// only for a socket layer that inflates them, in order, before [`Session::receive`].
    pub fn set_compression(&mut self, compression: Option<String>) {
        self.link.set_compression(compression);
    }

    /// Sets the reconnect delays: the first, and the longest (milliseconds).
    pub fn set_reconnect_delays(&mut self, base_ms: u32, max_ms: u32) {
        self.link.set_reconnect_delays(base_ms, max_ms);
    }

    /// The time now, on the page's clock, for the calls that follow.
    pub fn set_time(&mut self, now: Millis) {
        self.now = now;
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
        self.link.status()
    }

    /// The store (read-only).
    pub fn store(&self) -> &Store {
        self.link.copies()
    }

    /// Frames to send to the relay, oldest first.
    pub fn take_outgoing(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.link.poll_transmit()).collect()
    }

    /// A WebSocket is being opened.
    pub fn connecting(&mut self) -> Effects {
        self.link.handle_connecting();
        self.drain().0
    }

    /// The WebSocket opened: subscribe (resuming every verified copy) and ask again for
    /// copies still awaiting a snapshot.
    pub fn opened(&mut self) -> Effects {
        self.link.handle_open(self.now);
        self.drain().0
    }

    /// The WebSocket closed. Unless the page closed the client, returns the delay
    /// before the next attempt; `jitter` is a random number in `[0, 1)`.
    pub fn closed(&mut self, jitter: f64) -> (Effects, Option<u32>) {
        self.link.handle_lost(self.now, jitter);
        self.drain()
    }

    /// The page closed the client: no more attempts.
    pub fn close(&mut self) -> Effects {
        self.link.close();
        self.drain().0
    }

    /// Tells the link the merged query of the views.
    fn sync_subscription(&mut self) {
        self.link.set_query(self.views.merged(), self.now);
    }

    /// Handles one text frame from the relay. Never panics on bad input: a frame that
    /// does not decode is counted and, when it names a (workflow, topic), that copy is
    /// resynced.
    pub fn receive(&mut self, text: &str) -> Effects {
        self.link.handle_frame(text);
        self.drain().0
    }

    /// Turns what the link did into what the page is told; returns them, and the
    /// reconnect delay (milliseconds) if the link scheduled one.
    fn drain(&mut self) -> (Effects, Option<u32>) {
        let mut effects = Effects::default();
        let mut delay = None;
        while let Some(event) = self.link.poll_event() {
            match event {
                LinkEvent::Status { status, retry_in } => {
                    let delay_ms = retry_in.map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
                    delay = delay.or(delay_ms);
                    effects.events.push(PageEvent::Status { status, delay_ms });
                }
                LinkEvent::RelayError { code, message } => effects.events.push(PageEvent::Error {
                    code: code.as_str().to_owned(),
                    message,
                }),
                LinkEvent::Workflow {
                    workflow,
                    state,
                    schema,
                } => self.workflow(workflow, state, schema, &mut effects),
                LinkEvent::Applied(applied) => self.applied(applied, &mut effects),
                LinkEvent::Rejected {
                    workflow,
                    topic,
                    next: AfterReject::GaveUp { failures },
                    ..
                } => effects.events.push(PageEvent::Error {
                    code: "resync_failed".to_owned(),
                    message: format!(
                        "{failures} snapshots of {workflow}/{topic} in a row did not match their hash; \
                         showing the last verified data until the next connection"
                    ),
                }),
                // The link resynced, counted, or keeps them (the relay's name); the
                // reconnect timer is the wasm layer's; epochs show in the copies.
                LinkEvent::Rejected { .. }
                | LinkEvent::Connect
                | LinkEvent::Hello { .. }
                | LinkEvent::NewEpoch { .. }
                | LinkEvent::Undecodable { .. }
                | LinkEvent::CommandUnanswered { .. }
                // The page sends no commands yet, so none is answered.
                | LinkEvent::CommandResult { .. } => {}
            }
        }
        (effects, delay)
    }

    fn applied(&mut self, applied: Applied, effects: &mut Effects) {
        if applied.kind == DataKind::Delta {
            match self.deltas_by_topic.get_mut(&applied.topic) {
                Some(n) => *n += 1,
                None => {
                    self.deltas_by_topic.insert(applied.topic.clone(), 1);
                }
            }
        }
        let mut touched = Touched::new(&applied.workflow, &applied.topic, applied.time, applied.changes);
        self.views.select(&mut touched, &self.schemas);
        effects.touch(touched);
        self.count_notifications(effects);
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
                let shown =
                    self.views
                        .schema_changed(&workflow, old.as_ref(), self.link.copies(), &self.schemas);
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
            for (topic, gone) in self.link.copies_mut().remove_workflow(&workflow) {
                let mut touched = Touched::new(&workflow, &topic, None, gone);
                self.views.select(&mut touched, &self.schemas);
                effects.touch(touched);
            }
        }
        self.count_notifications(effects);
    }

    fn count_notifications(&mut self, effects: &Effects) {
        self.notifications += effects.view_count() as u64;
    }

    /// Opens a view. A bad query is an error for this view only; the client and the
    /// other views carry on.
    pub fn add_view(&mut self, name: &str, query: &str) -> Result<ViewId, QueryError> {
        let id = self.views.add(name, query, &self.schemas)?;
        self.sync_subscription();
        Ok(id)
    }

    /// Changes a view's query. Returns what the view now shows differently of the data
    /// already held (more arrives from the relay as the merged query grows).
    pub fn set_view_query(&mut self, id: ViewId, query: &str) -> Result<Effects, QueryError> {
        let old = self.views.set_query(id, query, &self.schemas)?;
        let mut effects = Effects::default();
        for touched in self
            .views
            .requery_changes(id, &old, self.link.copies(), &self.schemas)
        {
            effects.touch(touched);
        }
        self.count_notifications(&effects);
        self.sync_subscription();
        Ok(effects)
    }

    /// Closes a view; the merged query shrinks if nothing else needs its fields.
    pub fn remove_view(&mut self, id: ViewId) -> bool {
        let removed = self.views.remove(id);
        if removed {
            self.sync_subscription();
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
        self.views.data(id, self.link.copies(), &self.schemas)
    }

    /// The merged query's normalized text.
    pub fn merged_query(&self) -> String {
        self.views.merged().key()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        let stats = self.link.stats();
        Counters {
            messages: stats.messages,
            bytes: stats.bytes,
            snapshots: stats.snapshots,
            deltas: stats.deltas,
            deltas_by_topic: self.deltas_by_topic.clone(),
            resyncs: stats.resyncs,
            reconnects: stats.connections.saturating_sub(1),
            chain_breaks: stats.chain_breaks,
            hash_mismatches: stats.hash_mismatches,
            ignored: stats.ignored,
            bad_messages: stats.bad_messages,
            subscribes: stats.subscribes,
            notifications: self.notifications,
        }
    }

    /// Everything the inspector shows.
    pub fn inspect(&self) -> Inspection {
        Inspection {
            status: self.link.status(),
            relay: self.link.relay().map(str::to_owned),
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
            subscribed: self.link.subscribed().map(str::to_owned),
            topics: self
                .link
                .copies()
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
            counters: self.counters(),
        }
    }
}
