//! Fan-out: a change of the store projected once per view and queued to every
//! member, and the installs, drops and epochs that follow.

use std::collections::BTreeSet;
use std::sync::Arc;

use clonewire_core::protocol::client::fast::{delta_head, delta_text};
use clonewire_core::protocol::client::ResumePoint;
use clonewire_core::{Changes, Hash, SelectionTrie, Seq};

use super::frames::{compile, empty, snapshot_text};
use super::snapshots::{sliced, snapshot_frame, Build, Head};
use super::{ClientId, Install, ReplicaSource, SubscriptionViews, ViewTopic};
use crate::clients::outbox::SharedDelta;
use crate::workflow::history::TopicHistory;
use crate::workflow::registry::GroupId;

impl SubscriptionViews {
    /// A topic of the store changed from seq `prev` to `seq` (a delta, a replay or a
    /// repair's difference): project once per view and queue the same bytes to every
    /// member. Views that select the topic but never saw it get a snapshot instead.
    pub fn on_changes(
        &mut self,
        store: &impl ReplicaSource,
        topic: &str,
        prev: Seq,
        seq: Seq,
        changes: &Changes,
        time: Option<f64>,
    ) {
        self.history
            .entry(topic.to_owned())
            .or_insert_with(|| TopicHistory::new(self.history_limit))
            .record(prev, seq, changes, time);
        for build in self.builds.get_mut().iter_mut().filter(|b| b.topic() == topic) {
            build.record(changes);
        }
        let epoch = store.epoch().to_owned();
        let epoch_arc: Arc<str> = Arc::from(epoch.as_str());
        let key = self.key(topic);
        let head = delta_head(&self.workflow, topic, &epoch);
        // Views that do not hold the topic install it after this event (see
        // `flush`), and so do those holding it from an older epoch: clients take a new
        // epoch only as a snapshot, even an empty one. Both are looked for only when
        // there can be some, so a delta costs nothing per view that it does not touch.
        let mut installs = Vec::new();
        if self.epoch_checked.get(topic).is_none_or(|e| **e != *epoch) {
            let old: Vec<(GroupId, Install)> = self
                .views
                .iter()
                .filter_map(|(id, v)| {
                    let vt = v.topics.get(topic)?;
                    (*vt.epoch != *epoch).then_some((*id, Install::when_held(vt.label.is_some())))
                })
                .collect();
            for (id, install) in old {
                self.take_topic(id, topic);
                installs.push((id, install));
            }
            self.epoch_checked.insert(topic.to_owned(), epoch_arc.clone());
        }
        let holders = self.selections.get(topic).map_or(0, SelectionTrie::len);
        if holders + installs.len() < self.views.len() {
            let known: BTreeSet<GroupId> = installs.iter().map(|(id, _)| *id).collect();
            installs.extend(
                self.views
                    .iter()
                    .filter(|(id, v)| !v.topics.contains_key(topic) && !known.contains(id))
                    .map(|(id, _)| (*id, Install::IfNonEmpty)),
            );
        }
        let groups = match self.selections.get(topic) {
            Some(trie) => trie.select(changes),
            None => Vec::new(),
        };
        for group in groups {
            // Every view in the group selects the same changed leaves: one projected
            // patch, serialized once; views at the same label and hash (the usual
            // case) share one message too.
            let projected = Arc::new(group.changes(changes));
            let patch = projected.patch_text();
            let mut made: Vec<Arc<SharedDelta>> = Vec::new();
            for id in &group.members {
                let Some(view) = self.views.get_mut(id) else {
                    continue;
                };
                let Some(vt) = view.topics.get_mut(topic) else {
                    continue;
                };
                let hash = projected.apply_to_hash(vt.hash);
                let prev = vt.label;
                let delta = match made.iter().find(|d| d.prev == prev && d.hash == hash) {
                    Some(delta) => delta.clone(),
                    None => {
                        let delta = Arc::new(SharedDelta {
                            key: key.clone(),
                            epoch: epoch_arc.clone(),
                            seq,
                            prev,
                            hash,
                            time,
                            changes: projected.clone(),
                            text: delta_text(&head, seq, prev, hash, time, &patch).into(),
                        });
                        made.push(delta.clone());
                        delta
                    }
                };
                vt.relabel(Some(seq), hash);
                self.stats.deltas_made += 1;
                for client in &view.members {
                    if let Some(member) = self.members.get(client) {
                        member.outbox.push_delta(&delta);
                        self.stats.deltas_queued += 1;
                    }
                }
            }
        }
        for (id, install) in installs {
            self.pending.insert((id, topic.to_owned(), install));
        }
    }

    /// Installs what [`on_changes`](Self::on_changes) deferred. Call it only when the
    /// store reflects every event handled so far (the follower may apply a batch of
    /// messages before handing out their events): a view must start from the state
    /// its next event applies to, or that event would count twice.
    pub fn flush(&mut self, store: &impl ReplicaSource) {
        for (id, topic, install) in std::mem::take(&mut self.pending) {
            if self
                .views
                .get(&id)
                .is_some_and(|v| !v.topics.contains_key(&topic))
            {
                self.install(store, id, &topic, install);
            }
        }
        self.step_builds(store);
    }

    /// A view meets a topic for the first time (or in a new epoch): its members get
    /// the projection as a snapshot (an empty one only with [`Install::Always`]: they
    /// hold something that must go), or one delta when a waiting resume point allows.
    pub(super) fn install(&mut self, store: &impl ReplicaSource, id: GroupId, topic: &str, install: Install) {
        let Some(view) = self.views.get(&id) else { return };
        let Some(proj) = compile(&view.group, &self.workflow, topic, store) else {
            return;
        };
        let Some((replica, seq)) = store.topic(topic) else {
            return;
        };
        let epoch = store.epoch().to_owned();
        // A big projection is built a slice at a time: only its hash now.
        let (value, hash) = if sliced(&proj, replica) {
            (None, proj.project_hash(replica))
        } else {
            let (value, hash) = proj.project(replica);
            (Some(value), hash)
        };
        let members = view.members.clone();
        let waiting: Vec<(ClientId, ResumePoint)> = members
            .iter()
            .filter_map(|c| Some((*c, self.resume_wait.get_mut(c)?.remove(topic)?)))
            .collect();
        let holds_something = waiting.iter().any(|(_, p)| p.hash != Hash::EMPTY);
        let nonempty = match &value {
            Some(value) => value.as_object().is_some_and(|m| !m.is_empty()),
            None => hash != Hash::EMPTY,
        };
        let label = (install == Install::Always || nonempty || holds_something).then_some(seq);
        let vt = ViewTopic::new(proj, hash, label, Arc::from(epoch.as_str()));
        let Some(label) = label else {
            self.put_topic(id, topic, vt);
            return;
        };
        let head = Head {
            workflow: self.workflow.to_string(),
            epoch: epoch.clone(),
            topic: topic.to_owned(),
            seq: label,
            hash,
        };
        let frame = match value {
            Some(value) => snapshot_frame(head, value),
            None => {
                let (build, frame) = Build::start(head, &vt.proj, replica);
                self.builds.get_mut().push(build);
                *vt.big.borrow_mut() = Some((label, hash, Arc::downgrade(&frame)));
                frame
            }
        };
        *vt.snapshot.borrow_mut() = Arc::downgrade(&frame);
        let key = self.key(topic);
        for client in &members {
            let Some(outbox) = self.members.get(client).map(|m| m.outbox.clone()) else {
                continue;
            };
            let resumed = waiting
                .iter()
                .find(|(c, _)| c == client)
                .and_then(|(_, point)| self.resume(&epoch, topic, seq, &vt, point));
            match resumed {
                Some(resumed) => {
                    self.stats.resumed += 1;
                    if let Some(delta) = resumed.into_delta() {
                        outbox.push_delta(&Arc::new(delta));
                        self.stats.deltas_queued += 1;
                    }
                }
                None => {
                    outbox.push_snapshot_frame(key.clone(), frame.clone());
                    self.stats.snapshots_queued += 1;
                }
            }
        }
        self.put_topic(id, topic, vt);
    }

    /// The store no longer holds a topic (no view wants it any more).
    pub fn on_dropped(&mut self, topic: &str) {
        self.cut_builds(Some(topic));
        self.history.remove(topic);
        self.selections.remove(topic);
        for view in self.views.values_mut() {
            view.topics.remove(topic);
        }
    }

    /// A new epoch: history cannot chain across it.
    pub fn on_new_epoch(&mut self) {
        self.cut_builds(None);
        for history in self.history.values_mut() {
            history.clear();
        }
    }

    /// After joining an epoch: view topics still from an older epoch that the new
    /// epoch did not bring back get an empty snapshot and are forgotten; those it did
    /// bring back were already sent as snapshots.
    pub fn after_join(&mut self, store: &impl ReplicaSource) {
        let epoch = store.epoch().to_owned();
        let mut gone = Vec::new();
        for (id, view) in &self.views {
            for (topic, vt) in &view.topics {
                if *vt.epoch != *epoch {
                    gone.push((*id, topic.clone(), vt.label.is_some()));
                }
            }
        }
        for (id, topic, had_label) in gone {
            let seq = store.topic(&topic).map_or(Seq::ZERO, |(_, seq)| seq);
            self.take_topic(id, &topic);
            if store.topic(&topic).is_some() {
                self.pending.insert((id, topic, Install::when_held(had_label)));
            } else if had_label {
                let text = snapshot_text(&self.workflow, &epoch, &topic, seq, Hash::EMPTY, empty());
                let key = self.key(&topic);
                if let Some(view) = self.views.get(&id) {
                    for client in &view.members {
                        if let Some(member) = self.members.get(client) {
                            member.outbox.push_snapshot(key.clone(), text.clone());
                        }
                    }
                }
            }
        }
    }

    /// The schema changed (a new epoch may bring one): recompile every view and send
    /// its members fresh snapshots.
    pub fn on_schema(&mut self) {
        self.cut_builds(None);
        let ids: Vec<GroupId> = self.views.keys().copied().collect();
        for id in ids {
            let topics: Vec<String> = self
                .views
                .get(&id)
                .map(|v| v.topics.keys().cloned().collect())
                .unwrap_or_default();
            for topic in topics {
                self.take_topic(id, &topic);
                self.pending.insert((id, topic, Install::Always));
            }
        }
    }
}
