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
//!
//! Here: the views' state and what it is made of. By concern: `membership` (a client
//! joins, moves or leaves a view), `fan_out` (a change of the store reaches every
//! member), `catch_up` (resume and bridging a client to its view), `ids` (a client's
//! id and the [`ReplicaSource`] the views read); `frames` and `snapshots` make the
//! bytes sent.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use clonewire_core::protocol::client::{RelayMessage, ResumePoint, WorkflowState};
use clonewire_core::{Hash, Projection, Schema, SelectionTrie, Seq, Topic};

use crate::clients::outbox::{Outbox, SharedTopicKey, SnapshotFrame};
use crate::workflow::history::{HistoryLimit, TopicHistory};
use crate::workflow::registry::{Group, GroupId};
pub use ids::{ClientId, ReplicaSource};
pub use rebind_slot::{PendingRebind, RebindSlot};
use snapshots::{sliced, snapshot_frame, Build, Head, SLICE};

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

/// Whether installing a view topic sends its members a snapshot even when it is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Install {
    /// Only a snapshot with something in it (or one a waiting resume point needs):
    /// the members hold nothing of the topic yet.
    IfNonEmpty,
    /// Always, even an empty one: the members hold something that must go.
    Always,
}

impl Install {
    /// `Always` when the members hold what the view had labelled.
    fn when_held(held: bool) -> Install {
        if held {
            Install::Always
        } else {
            Install::IfNonEmpty
        }
    }
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
    /// (view, topic, how) to install once the store is consistent with every
    /// event handled (see [`SubscriptionViews::flush`]).
    pending: BTreeSet<(GroupId, String, Install)>,
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
}

mod catch_up;
mod fan_out;
mod frames;
mod held;
mod ids;
mod membership;
mod rebind_slot;
mod snapshots;
#[cfg(test)]
mod tests;
