//! Membership: moving a client into a view, between views, or out of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use clonewire_core::protocol::client::{ResumePoint, WorkflowState};

use super::catch_up::Move;
use super::frames::compile;
use super::{ClientId, Member, ReplicaSource, SubscriptionView, SubscriptionViews, ViewTopic};
use crate::clients::outbox::Outbox;
use crate::workflow::registry::{Group, GroupId};

impl SubscriptionViews {
    /// Moves a client to the view of `to` (or out of every view), sending it only
    /// what it needs: per topic one delta from what it holds to what it should hold,
    /// a snapshot when what it holds is unknown, nothing when they are equal.
    /// `resume` says what a reconnecting client holds.
    pub fn rebind(
        &mut self,
        store: &impl ReplicaSource,
        client: ClientId,
        outbox: Arc<Outbox>,
        to: Option<Arc<Group>>,
        resume: Option<&BTreeMap<String, ResumePoint>>,
    ) {
        let to = to.filter(|g| g.sub.for_workflow(&self.workflow).is_some());
        let old = self.members.get(&client).map(|m| m.group);
        let new = to.as_ref().map(|g| g.id);
        if old.is_some() && old == new {
            return;
        }
        if let Some(group) = &to {
            self.ensure_view(store, group);
        }
        let mut topics: BTreeSet<String> = BTreeSet::new();
        for id in old.iter().chain(new.iter()) {
            if let Some(view) = self.views.get(id) {
                topics.extend(view.topics.keys().cloned());
            }
        }
        let resume = if old.is_none() { resume } else { None };
        if let Some(points) = resume {
            topics.extend(points.keys().cloned());
        }
        if old.is_none() && new.is_some() {
            // The workflow's state and schema come before its data.
            let schema = store.schema();
            outbox.push_text(self.workflow_text(self.state, schema));
        }
        self.resume_wait.remove(&client);
        for topic in &topics {
            let point = resume.and_then(|r| r.get(topic));
            let step = Move {
                client,
                outbox: &outbox,
                from: old,
                to: new,
            };
            self.bridge(store, step, topic, point);
        }
        if let Some(id) = old {
            self.leave_view(id, client);
        }
        match new {
            Some(id) => {
                if let Some(view) = self.views.get_mut(&id) {
                    view.members.push(client);
                }
                self.members.insert(client, Member { outbox, group: id });
            }
            None => {
                if old.is_some() {
                    let schema = store.schema();
                    outbox.push_text(self.workflow_text(WorkflowState::Removed, schema));
                }
                self.members.remove(&client);
            }
        }
    }

    /// A client left: forget it.
    pub fn leave(&mut self, client: ClientId) {
        self.resume_wait.remove(&client);
        if let Some(member) = self.members.remove(&client) {
            self.leave_view(member.group, client);
        }
    }

    pub(super) fn leave_view(&mut self, id: GroupId, client: ClientId) {
        if let Some(view) = self.views.get_mut(&id) {
            view.members.retain(|c| *c != client);
            if view.members.is_empty() {
                let topics: Vec<String> = view.topics.keys().cloned().collect();
                for topic in topics {
                    self.take_topic(id, &topic);
                }
                self.views.remove(&id);
            }
        }
    }

    pub(super) fn ensure_view(&mut self, store: &impl ReplicaSource, group: &Arc<Group>) {
        if self.views.contains_key(&group.id) {
            return;
        }
        let view = SubscriptionView {
            group: group.clone(),
            members: Vec::new(),
            topics: HashMap::new(),
        };
        self.views.insert(group.id, view);
        for name in store.topic_names() {
            if let (Some(proj), Some((topic, seq))) =
                (compile(group, &self.workflow, &name, store), store.topic(&name))
            {
                let hash = proj.project_hash(topic);
                let epoch = Arc::from(store.epoch());
                self.put_topic(group.id, &name, ViewTopic::new(proj, hash, Some(seq), epoch));
            }
        }
    }
}
