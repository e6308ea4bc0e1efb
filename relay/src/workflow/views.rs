//! One workflow's views: for each distinct subscription (group) that sees the
//! workflow, the compiled projection of each topic, its projection hash and the seq
//! of the last message its members received ("label"), plus the clients that share it.
//!
//! Everything here runs on the workflow's own link thread, so the order of messages
//! per (workflow, topic) is the order of events, with no locks on the store.
//!
//! Invariant: every member of a view holds, for each topic of the view, exactly the
//! projection of the relay's store, labelled with the view's label. A delta is
//! projected once per topic for all views ([`SelectionTrie`]); its patch is serialized
//! once per distinct set of selected leaves and its message once per distinct
//! (leaves, prev, hash), and the same bytes go to every member.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use clonewire_core::protocol::client::fast::{delta_head, delta_text};
use clonewire_core::protocol::client::{RelayMessage, ResumePoint, WorkflowState};
use clonewire_core::{Changes, Hash, Projection, Schema, SelectionTrie, Seq, Topic};

use crate::clients::outbox::{Outbox, SharedDelta, SharedTopicKey, SnapshotFrame};
use crate::workflow::history::{HistoryLimit, TopicHistory};
use crate::workflow::registry::{Group, GroupId};
use frames::{bridging_delta, compile, empty, snapshot_text};
pub use rebind_slot::{PendingRebind, RebindSlot};
use snapshots::{sliced, snapshot_frame, Build, Head, SLICE};

/// A websocket client, unique for the relay's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What views read from the workflow's store (the suite link's replicas).
pub trait ReplicaSource {
    /// The suite epoch being followed.
    fn epoch(&self) -> &str;
    /// The suite's schema (empty until it is known).
    fn schema(&self) -> &Schema;
    /// Whether the schema is known (the suite has been joined); until then clients
    /// are told no schema rather than an empty one.
    fn schema_known(&self) -> bool {
        true
    }
    /// A topic's replica and seq.
    fn topic(&self, name: &str) -> Option<(&Topic, Seq)>;
    /// The topics held.
    fn topic_names(&self) -> Vec<String>;
}

struct ViewTopic {
    proj: Projection,
    hash: Hash,
    label: Option<Seq>,
    /// The epoch of the last message; a new epoch goes out as a snapshot.
    epoch: Arc<str>,
    /// The snapshot at `label` and `hash` while some client's queue (or its build)
    /// still holds it: every client that joins meanwhile, before the view's next
    /// message, shares it (one projection and one text per view and label, not one
    /// per join). Emptied whenever `label` or `hash` change; held weakly, so sent
    /// snapshots cost no memory here.
    snapshot: RefCell<Weak<SnapshotFrame>>,
    /// The last big snapshot made, with its label and hash, while still held: a
    /// client joining later gets it plus one bridging delta from history, rather
    /// than a build of its own.
    big: RefCell<Option<(Seq, Hash, Weak<SnapshotFrame>)>>,
}

impl ViewTopic {
    fn new(proj: Projection, hash: Hash, label: Option<Seq>, epoch: Arc<str>) -> ViewTopic {
        ViewTopic {
            proj,
            hash,
            label,
            epoch,
            snapshot: RefCell::new(Weak::new()),
            big: RefCell::new(None),
        }
    }

    /// The snapshot of this view topic at its label (`replica` is the store's topic,
    /// of `epoch`).
    /// A big one is built a slice at a time (it joins `builds`).
    fn snapshot(
        &self,
        head: (&str, &str, &str),
        replica: &Topic,
        label: Seq,
        builds: &RefCell<Vec<Build>>,
    ) -> Arc<SnapshotFrame> {
        if let Some(frame) = self.snapshot.borrow().upgrade() {
            return frame;
        }
        let (workflow, epoch, topic) = head;
        let mut head = Head {
            workflow: workflow.to_owned(),
            epoch: epoch.to_owned(),
            topic: topic.to_owned(),
            seq: label,
            hash: self.hash,
        };
        let frame = if sliced(&self.proj, replica) {
            let (build, frame) = Build::start(head, &self.proj, replica);
            builds.borrow_mut().push(build);
            *self.big.borrow_mut() = Some((label, self.hash, Arc::downgrade(&frame)));
            frame
        } else {
            let (value, hash) = self.proj.project(replica);
            head.hash = hash;
            snapshot_frame(head, value)
        };
        *self.snapshot.borrow_mut() = Arc::downgrade(&frame);
        frame
    }

    /// Forgets the snapshot at the old label.
    fn relabel(&mut self, label: Option<Seq>, hash: Hash) {
        self.label = label;
        self.hash = hash;
        *self.snapshot.get_mut() = Weak::new();
    }
}

/// A client's move in a rebind: from the view it is in to the view it goes to.
#[derive(Clone, Copy)]
struct Move<'a> {
    client: ClientId,
    outbox: &'a Arc<Outbox>,
    /// The view it leaves (`None`: it was in none).
    from: Option<GroupId>,
    /// The view it joins (`None`: it leaves this workflow).
    to: Option<GroupId>,
}

/// How a resume point reaches a view's state.
enum Resumed {
    /// The client already holds it: nothing to send.
    UpToDate,
    /// One delta brings the client there.
    Delta(SharedDelta),
}

impl Resumed {
    /// The delta to send, if any.
    fn into_delta(self) -> Option<SharedDelta> {
        match self {
            Resumed::UpToDate => None,
            Resumed::Delta(delta) => Some(delta),
        }
    }
}

/// One distinct subscription (group) seen by this workflow: its members and the
/// projection state of each topic they share.
struct SubscriptionView {
    group: Arc<Group>,
    members: Vec<ClientId>,
    topics: HashMap<String, ViewTopic>,
}

struct Member {
    outbox: Arc<Outbox>,
    group: GroupId,
}

/// Counters the link thread reports as metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct ViewStats {
    /// Projected delta messages made (once per view).
    pub deltas_made: u64,
    /// Delta messages queued to clients (once per member).
    pub deltas_queued: u64,
    /// Snapshot messages queued to clients.
    pub snapshots_queued: u64,
    /// Resumes answered with one delta.
    pub resumed: u64,
    /// Lagging clients brought up to date with one delta (not a snapshot).
    pub bridged: u64,
}

/// The views of one workflow.
pub struct SubscriptionViews {
    workflow: Arc<str>,
    views: HashMap<GroupId, SubscriptionView>,
    members: HashMap<ClientId, Member>,
    history: HashMap<String, TopicHistory>,
    history_limit: HistoryLimit,
    state: WorkflowState,
    /// The schema members were last told about (`None`: not known yet).
    told_schema: Option<Schema>,
    stats: ViewStats,
    /// (view, topic, force) to install once the store is consistent with every
    /// event handled (see [`SubscriptionViews::flush`]).
    pending: BTreeSet<(GroupId, String, bool)>,
    /// Resume points of clients whose topics the store does not hold yet.
    resume_wait: HashMap<ClientId, BTreeMap<String, ResumePoint>>,
    /// Per topic, the projection of every view that holds it, in one trie: kept in
    /// step with each view's `topics` (see [`SubscriptionViews::put_topic`]).
    selections: HashMap<String, SelectionTrie<GroupId>>,
    /// Per topic, the store epoch for which every view topic was last checked to be
    /// of that epoch (view topics are only ever made in the store's epoch).
    epoch_checked: HashMap<String, Arc<str>>,
    /// Big snapshots being projected a slice per [`flush`](Self::flush).
    builds: RefCell<Vec<Build>>,
}

impl SubscriptionViews {
    /// No views yet; `history_limit` says how much history each topic keeps for resume.
    pub fn new(workflow: Arc<str>, history_limit: HistoryLimit) -> SubscriptionViews {
        SubscriptionViews {
            workflow,
            views: HashMap::new(),
            members: HashMap::new(),
            history: HashMap::new(),
            history_limit,
            state: WorkflowState::Syncing,
            told_schema: None,
            stats: ViewStats::default(),
            pending: BTreeSet::new(),
            resume_wait: HashMap::new(),
            selections: HashMap::new(),
            epoch_checked: HashMap::new(),
            builds: RefCell::new(Vec::new()),
        }
    }

    /// True while a big snapshot is being built: the link thread should come back to
    /// [`flush`](Self::flush) without waiting.
    pub fn building(&self) -> bool {
        !self.builds.borrow().is_empty()
    }

    /// Projects the next slice of the snapshots being built (at most [`SLICE`]
    /// entries in all) and hands those done to be written.
    fn step_builds(&mut self, store: &impl ReplicaSource) {
        let builds = self.builds.get_mut();
        let mut budget = SLICE;
        let mut i = 0;
        while i < builds.len() && budget > 0 {
            let replica = store.topic(builds[i].topic()).map(|(t, _)| t);
            let (spent, done) = builds[i].step(replica, budget);
            budget = budget.saturating_sub(spent);
            if done {
                builds.swap_remove(i).finish();
            } else {
                i += 1;
            }
        }
    }

    /// Ends every build now, as it stands (its topic's content is replaced).
    fn cut_builds(&mut self, topic: Option<&str>) {
        let builds = std::mem::take(self.builds.get_mut());
        for build in builds {
            if topic.is_none_or(|t| t == build.topic()) {
                build.finish();
            } else {
                self.builds.get_mut().push(build);
            }
        }
    }

    /// Gives view `id` its state for `topic` (replacing any), keeping the trie in step.
    fn put_topic(&mut self, id: GroupId, topic: &str, vt: ViewTopic) {
        let Some(view) = self.views.get_mut(&id) else {
            return;
        };
        let trie = self.selections.entry(topic.to_owned()).or_default();
        if let Some(old) = view.topics.insert(topic.to_owned(), vt) {
            trie.remove(id, &old.proj);
        }
        if let Some(vt) = view.topics.get(topic) {
            trie.insert(id, &vt.proj);
        }
    }

    /// Takes view `id`'s state for `topic` away, keeping the trie in step.
    fn take_topic(&mut self, id: GroupId, topic: &str) -> Option<ViewTopic> {
        let vt = self.views.get_mut(&id)?.topics.remove(topic)?;
        if let Some(trie) = self.selections.get_mut(topic) {
            trie.remove(id, &vt.proj);
            if trie.is_empty() {
                self.selections.remove(topic);
            }
        }
        Some(vt)
    }

    /// Counters so far (the unit tests read them).
    #[cfg(test)]
    pub fn stats(&self) -> ViewStats {
        self.stats
    }

    /// How many clients see this workflow.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The topics some view wants from the suite (`None`: every topic).
    pub fn wanted(&self) -> Option<BTreeSet<String>> {
        let mut wanted = BTreeSet::new();
        for view in self.views.values() {
            match view.group.sub.topics(&self.workflow) {
                clonewire_core::subscription::Topics::All => return None,
                clonewire_core::subscription::Topics::Only(set) => wanted.extend(set),
            }
        }
        Some(wanted)
    }

    /// The union of every view's subscription (for an upstream that follows only what
    /// is selected: another relay).
    pub fn selection(&self) -> clonewire_core::Subscription {
        clonewire_core::Subscription::merge_all(self.views.values().map(|v| &v.group.sub))
    }

    fn key(&self, topic: &str) -> SharedTopicKey {
        (self.workflow.clone(), Arc::from(topic))
    }

    fn workflow_text(&self, state: WorkflowState, schema: Option<&Schema>) -> Arc<str> {
        RelayMessage::Workflow {
            workflow: self.workflow.to_string(),
            state,
            schema: schema.cloned(),
        }
        .to_text()
        .into()
    }

    /// Tells every member about a new state or schema, if either changed. Call it with
    /// a newly known schema before any data projected with it is queued: a client
    /// reads the data through the schema (which fields are collections).
    pub fn set_state(&mut self, state: WorkflowState, schema: Option<&Schema>) {
        if state == self.state && schema == self.told_schema.as_ref() {
            return;
        }
        self.state = state;
        self.told_schema = schema.cloned();
        let text = self.workflow_text(state, schema);
        for member in self.members.values() {
            member.outbox.push_text(text.clone());
        }
    }

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
            let schema = store.schema_known().then(|| store.schema());
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
                    let schema = store.schema_known().then(|| store.schema());
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

    fn leave_view(&mut self, id: GroupId, client: ClientId) {
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

    fn ensure_view(&mut self, store: &impl ReplicaSource, group: &Arc<Group>) {
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

    /// One topic's part of a rebind.
    fn bridge(
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
    fn resume(
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
    fn reuse_big(
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
    fn promote(&mut self, epoch: &str, id: GroupId, topic: &str, seq: Seq) {
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
            .record(prev, seq, changes);
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
            let old: Vec<(GroupId, bool)> = self
                .views
                .iter()
                .filter_map(|(id, v)| {
                    let vt = v.topics.get(topic)?;
                    (*vt.epoch != *epoch).then_some((*id, vt.label.is_some()))
                })
                .collect();
            for (id, had_label) in old {
                self.take_topic(id, topic);
                installs.push((id, had_label));
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
                    .map(|(id, _)| (*id, false)),
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
        for (id, force) in installs {
            self.pending.insert((id, topic.to_owned(), force));
        }
    }

    /// Installs what [`on_changes`](Self::on_changes) deferred. Call it only when the
    /// store reflects every event handled so far (the follower may apply a batch of
    /// messages before handing out their events): a view must start from the state
    /// its next event applies to, or that event would count twice.
    pub fn flush(&mut self, store: &impl ReplicaSource) {
        for (id, topic, force) in std::mem::take(&mut self.pending) {
            if self
                .views
                .get(&id)
                .is_some_and(|v| !v.topics.contains_key(&topic))
            {
                self.install(store, id, &topic, force);
            }
        }
        self.step_builds(store);
    }

    /// A view meets a topic for the first time (or in a new epoch): its members get
    /// the projection as a snapshot (an empty one only when `force`: they hold
    /// something that must go), or one delta when a waiting resume point allows.
    fn install(&mut self, store: &impl ReplicaSource, id: GroupId, topic: &str, force: bool) {
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
        let label = (force || nonempty || holds_something).then_some(seq);
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
                self.pending.insert((id, topic, had_label));
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
                self.pending.insert((id, topic, true));
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

mod frames;
mod held;
mod rebind_slot;
mod snapshots;
#[cfg(test)]
mod tests;
