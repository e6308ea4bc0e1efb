//! Catching up: bridging a client from what it holds (a resume point, a lagging
//! queue) to what its view holds, by one delta when history allows, else a snapshot.

use std::sync::Arc;

use clonewire_core::protocol::client::ResumePoint;
use clonewire_core::{Changes, Hash, Seq, Topic};

use super::frames::{bridging_delta, compile, empty, snapshot_text};
use super::{ClientId, ReplicaSource, SubscriptionViews, ViewTopic};
use crate::clients::outbox::{Outbox, SharedDelta, SnapshotFrame};
use crate::workflow::registry::GroupId;

/// A client's move in a rebind: from the view it is in to the view it goes to.
#[derive(Clone, Copy)]
pub(super) struct Move<'a> {
    pub(super) client: ClientId,
    pub(super) outbox: &'a Arc<Outbox>,
    /// The view it leaves (`None`: it was in none).
    pub(super) from: Option<GroupId>,
    /// The view it joins (`None`: it leaves this workflow).
    pub(super) to: Option<GroupId>,
}

/// How a resume point reaches a view's state.
pub(super) enum Resumed {
    /// The client already holds it: nothing to send.
    UpToDate,
    /// One delta brings the client there.
    Delta(SharedDelta),
}

impl Resumed {
    /// The delta to send, if any.
    pub(super) fn into_delta(self) -> Option<SharedDelta> {
        match self {
            Resumed::UpToDate => None,
            Resumed::Delta(delta) => Some(delta),
        }
    }
}

impl SubscriptionViews {
    /// One topic's part of a rebind.
    pub(super) fn bridge(
        &mut self,
        store: &impl ReplicaSource,
        step: Move<'_>,
        topic: &str,
        point: Option<&ResumePoint>,
    ) {
        let Move {
            client,
            outbox,
            from: old,
            to: new,
        } = step;
        let epoch = store.epoch().to_owned();
        let Some((replica, current)) = store.topic(topic) else {
            // Not held yet (it is being fetched upstream): a resume point waits for it.
            let selected = new
                .and_then(|id| self.views.get(&id))
                .is_some_and(|v| compile(&v.group, &self.workflow, topic, store).is_some());
            if let (true, Some(point)) = (selected, point) {
                self.resume_wait
                    .entry(client)
                    .or_default()
                    .insert(topic.to_owned(), point.clone());
                return;
            }
            // The store no longer holds it; a client copy can only be emptied.
            if point.is_some() || old.is_some() {
                let seq = point.map_or(Seq::ZERO, |p| p.seq);
                outbox.push_snapshot(
                    self.key(topic),
                    snapshot_text(&self.workflow, &epoch, topic, seq, Hash::EMPTY, empty()),
                );
            }
            return;
        };
        // What the client holds: its old view's projection, or a resume point.
        let held = old
            .and_then(|id| self.views.get(&id))
            .and_then(|v| v.topics.get(topic))
            .and_then(|vt| Some((vt.proj.project(replica).0, vt.label?)));
        let has_copy = held.is_some() || point.is_some();
        let target = new
            .and_then(|id| self.views.get(&id))
            .and_then(|v| v.topics.get(topic));
        let key = self.key(topic);
        match target {
            Some(vt) if vt.label.is_some() => {
                let label = vt.label.unwrap_or(current);
                let message = if let Some((old_value, old_label)) = held {
                    let (new_value, _) = vt.proj.project(replica);
                    let diff = Topic::from_value(topic, &old_value)
                        .and_then(|mut copy| copy.replace(&new_value))
                        .unwrap_or_default();
                    if diff.is_empty() && old_label == label {
                        None
                    } else {
                        Some(bridging_delta(
                            &self.workflow,
                            &epoch,
                            topic,
                            old_label,
                            label,
                            vt.hash,
                            diff,
                        ))
                    }
                } else if let Some(resumed) = point.and_then(|p| self.resume(&epoch, topic, current, vt, p)) {
                    self.stats.resumed += 1;
                    resumed.into_delta()
                } else if let Some((frame, resumed)) = self.reuse_big(&epoch, topic, current, vt) {
                    // The view's last big snapshot and one delta from there.
                    outbox.push_snapshot_frame(key, frame);
                    self.stats.snapshots_queued += 1;
                    resumed.into_delta()
                } else {
                    outbox.push_snapshot_frame(
                        key,
                        vt.snapshot((&self.workflow, &epoch, topic), replica, label, &self.builds),
                    );
                    self.stats.snapshots_queued += 1;
                    None
                };
                if let Some(delta) = message {
                    outbox.push_delta(&Arc::new(delta));
                    self.stats.deltas_queued += 1;
                }
            }
            Some(_) => {
                // The view never sent anything for this topic (its projection is empty),
                // but this client holds something: give the view a label all can share.
                if has_copy {
                    if let Some(id) = new {
                        self.promote(&epoch, id, topic, current);
                    }
                    outbox.push_snapshot(
                        key,
                        snapshot_text(&self.workflow, &epoch, topic, current, Hash::EMPTY, empty()),
                    );
                }
            }
            None => {
                if has_copy {
                    outbox.push_snapshot(
                        key,
                        snapshot_text(&self.workflow, &epoch, topic, current, Hash::EMPTY, empty()),
                    );
                }
            }
        }
    }

    /// How a client at a resume point reaches the view's state, if history and hash
    /// allow it at all (`None`: it needs a snapshot).
    pub(super) fn resume(
        &self,
        epoch: &str,
        topic: &str,
        current: Seq,
        vt: &ViewTopic,
        point: &ResumePoint,
    ) -> Option<Resumed> {
        if point.epoch != epoch {
            return None;
        }
        let since = self.history.get(topic).map_or_else(
            || (point.seq == current).then(Changes::default),
            |h| h.since(point.seq, current),
        )?;
        let projected = vt.proj.project_changes(&since);
        if projected.unapply_from_hash(vt.hash) != point.hash {
            return None;
        }
        let label = vt.label?;
        if projected.is_empty() && point.seq == label {
            return Some(Resumed::UpToDate);
        }
        Some(Resumed::Delta(bridging_delta(
            &self.workflow,
            epoch,
            topic,
            point.seq,
            label,
            vt.hash,
            projected,
        )))
    }

    /// The view topic's last big snapshot, if one delta from history brings a client
    /// holding it to the view's state (else it is forgotten).
    pub(super) fn reuse_big(
        &self,
        epoch: &str,
        topic: &str,
        current: Seq,
        vt: &ViewTopic,
    ) -> Option<(Arc<SnapshotFrame>, Resumed)> {
        let (seq, hash, frame) = vt.big.borrow().clone()?;
        let Some(frame) = frame.upgrade() else {
            *vt.big.borrow_mut() = None;
            return None;
        };
        let point = ResumePoint {
            epoch: epoch.to_owned(),
            seq,
            hash,
        };
        let resumed = self.resume(epoch, topic, current, vt, &point);
        if resumed.is_none() {
            *vt.big.borrow_mut() = None;
        }
        Some((frame, resumed?))
    }

    /// Gives a label to a view topic that never sent anything: its members (who hold
    /// nothing) get an empty snapshot labelled `seq`.
    pub(super) fn promote(&mut self, epoch: &str, id: GroupId, topic: &str, seq: Seq) {
        let text = snapshot_text(&self.workflow, epoch, topic, seq, Hash::EMPTY, empty());
        let key = self.key(topic);
        let Some(view) = self.views.get_mut(&id) else {
            return;
        };
        let Some(vt) = view.topics.get_mut(topic) else {
            return;
        };
        let hash = vt.hash;
        vt.relabel(Some(seq), hash);
        for client in &view.members {
            if let Some(member) = self.members.get(client) {
                member.outbox.push_snapshot(key.clone(), text.clone());
            }
        }
    }

    /// A lagging client's queue drained up to where its deltas for `topic` stopped
    /// being queued: queue the one delta from what it holds (`held`) to what its view
    /// holds now (history composed since its seq, checked against its hash), else a
    /// snapshot. Either ends its lag; the cost is per drain, not per skipped delta.
    pub fn bridge_lagging(
        &mut self,
        store: &impl ReplicaSource,
        client: ClientId,
        outbox: &Arc<Outbox>,
        topic: &str,
        held: Option<&ResumePoint>,
    ) {
        let key = self.key(topic);
        let Some(id) = self.members.get(&client).map(|m| m.group) else {
            // It no longer sees this workflow: leaving already emptied its copy.
            outbox.push_bridge(&key, None);
            return;
        };
        let epoch = store.epoch().to_owned();
        let vt = self.views.get(&id).and_then(|v| v.topics.get(topic));
        if let (Some(vt), Some((_, current)), Some(point)) = (vt, store.topic(topic), held) {
            if let Some(bridged) = self.resume(&epoch, topic, current, vt, point) {
                self.stats.bridged += 1;
                outbox.push_bridge(&key, bridged.into_delta().map(Arc::new));
                return;
            }
        }
        self.resync(store, client, topic);
    }

    /// A client asks for a fresh snapshot of one topic (a mismatch on its side, or it
    /// fell too far behind).
    pub fn resync(&mut self, store: &impl ReplicaSource, client: ClientId, topic: &str) {
        let Some(member) = self.members.get(&client) else {
            return;
        };
        let (outbox, id) = (member.outbox.clone(), member.group);
        let epoch = store.epoch().to_owned();
        let key = self.key(topic);
        let current = store.topic(topic).map_or(Seq::ZERO, |(_, seq)| seq);
        let vt = self.views.get(&id).and_then(|v| v.topics.get(topic));
        match (vt, store.topic(topic)) {
            (Some(vt), Some((replica, _))) if vt.label.is_some() => {
                let label = vt.label.unwrap_or(current);
                outbox.push_snapshot_frame(
                    key,
                    vt.snapshot((&self.workflow, &epoch, topic), replica, label, &self.builds),
                );
            }
            (Some(_), Some(_)) => {
                self.promote(&epoch, id, topic, current);
                outbox.push_snapshot(
                    key,
                    snapshot_text(&self.workflow, &epoch, topic, current, Hash::EMPTY, empty()),
                );
            }
            _ => {
                outbox.push_snapshot(
                    key,
                    snapshot_text(&self.workflow, &epoch, topic, current, Hash::EMPTY, empty()),
                );
            }
        }
        self.stats.snapshots_queued += 1;
    }
}
