//! A replica of a Cylc scheduler's data store, kept as Cylc's own client keeps it,
//! and the clonewire topics that show it.
//!
//! The semantics follow `apply_delta` in cylc-flow's `data_store_mgr.py` (8.5.4) and
//! cylc-uiserver's use of it:
//!
//! - a batch (`AllDeltas`) is applied type by type in the scheduler's own order, and
//!   within a type `added` (replace by id), `updated` (protobuf merge), `pruned`;
//! - a merge overwrites set scalars, merges submessages, replaces map entries by key
//!   and appends to repeated fields, except the fields Cylc clears first
//!   ([`Element::clear_for_update`]); the lists of ids in [`Element::id_sets`] are
//!   kept as sets (see `docs/cylc.md`: Cylc's client piles up copies there, its
//!   scheduler does not);
//! - pruning an element also removes its id from its parents' lists;
//! - `reloaded` empties the type before the batch is applied to it;
//! - an element whose `stamp` equals the stored one is already in the store (the
//!   first batch after a snapshot may be in the snapshot) and is skipped;
//! - after the batch, each type's `checksum` is compared with the store's.
//!
//! Every change also becomes a merge patch on the element's topic, built from the
//! elements the batch touched only, so a batch costs O(its size).

use prost::Message;
use serde_json::Value;

use clonewire_core::{Changes, PatchError, Topic};

use crate::element::{Element, Kind};
use crate::model::{diff_objects, to_object, TopicBatch};
use crate::proto::{
    AllDeltas, EDeltas, FDeltas, FpDeltas, JDeltas, PbEdge, PbEntireWorkflow, PbFamily, PbFamilyProxy, PbJob,
    PbTask, PbTaskProxy, PbWorkflow, TDeltas, TpDeltas, WDeltas,
};
use crate::table::Table;
use deltas::{Held, Parts, TypeDeltas};
use merge::{begin, drop_element, end, merge_elements, merge_workflow, unlink, without_element_lists};

mod deltas;
mod merge;

/// How many log records the workflow keeps (Cylc's `DEQUE_FIELD_MAP`).
const LOG_RECORDS_KEPT: usize = 10;

/// Why bytes or a batch were refused. A refused input changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum CylcError {
    /// The bytes are not the protobuf message they should be.
    #[error("not a Cylc {what} message: {source}")]
    Decode {
        /// The message expected.
        what: &'static str,
        /// prost's reason.
        source: prost::DecodeError,
    },
    /// A `pb_entire_workflow` reply without the workflow element (e.g. an error
    /// text answered in its place).
    #[error("the pb_entire_workflow reply holds no workflow")]
    NoWorkflow,
    /// An `element_type` Cylc does not have.
    #[error("{0:?} is not a Cylc element type")]
    UnknownKind(String),
    /// A model patch was refused: a bug here, never the scheduler's doing.
    #[error("internal error mapping Cylc data: {0}")]
    Internal(String),
}

impl From<PatchError> for CylcError {
    fn from(err: PatchError) -> CylcError {
        CylcError::Internal(err.to_string())
    }
}

/// One type's checksum after a batch: the scheduler's and ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// The element type.
    pub kind: Kind,
    /// The checksum the scheduler sent.
    pub expected: i64,
    /// The checksum of our store.
    pub actual: u32,
}

impl Check {
    /// True when the replica of this type agrees with the scheduler's.
    pub fn ok(&self) -> bool {
        self.expected == i64::from(self.actual)
    }
}

/// What applying a batch (or a re-fetched type) did.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Per topic that changed, every changed leaf (`Changes::to_patch` gives the
    /// merge patch to publish): `workflow`, `tasks`, `taskProxies`, `families`,
    /// `familyProxies`, `jobs`, `edges`, each at most once.
    pub topics: Vec<(&'static str, Changes)>,
    /// Per type that carried a checksum, the verdict.
    pub checks: Vec<Check>,
    /// The scheduler's time for the batch (the largest of its types' `time`s).
    pub time: Option<f64>,
}

impl Applied {
    /// The types whose checksum disagrees: re-fetch each with `pb_data_elements`
    /// and hand the reply to [`CylcStore::replace_type`].
    pub fn mismatches(&self) -> impl Iterator<Item = Kind> + '_ {
        self.checks.iter().filter(|c| !c.ok()).map(|c| c.kind)
    }

    /// The changes of one topic, if it changed.
    pub fn changes(&self, topic: &str) -> Option<&Changes> {
        self.topics.iter().find(|(t, _)| *t == topic).map(|(_, c)| c)
    }
}

/// A Cylc data store replica and its seven clonewire topics.
#[derive(Clone, Debug)]
pub struct CylcStore {
    workflow: PbWorkflow,
    tasks: Table<PbTask>,
    task_proxies: Table<PbTaskProxy>,
    families: Table<PbFamily>,
    family_proxies: Table<PbFamilyProxy>,
    jobs: Table<PbJob>,
    edges: Table<PbEdge>,
    topics: [Topic; 7],
}

/// The kinds by topic slot.
const SLOT_KINDS: [Kind; 7] = [
    Kind::Workflow,
    Kind::Tasks,
    Kind::TaskProxies,
    Kind::Families,
    Kind::FamilyProxies,
    Kind::Jobs,
    Kind::Edges,
];

/// A topic's slot in [`CylcStore::topics`].
fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Workflow => 0,
        Kind::Tasks => 1,
        Kind::TaskProxies => 2,
        Kind::Families => 3,
        Kind::FamilyProxies => 4,
        Kind::Jobs => 5,
        Kind::Edges => 6,
    }
}

/// Decodes a `pb_entire_workflow` reply.
pub fn decode_entire_workflow(bytes: &[u8]) -> Result<PbEntireWorkflow, CylcError> {
    let message = PbEntireWorkflow::decode(bytes).map_err(|source| CylcError::Decode {
        what: "PbEntireWorkflow",
        source,
    })?;
    if message.workflow.is_none() {
        return Err(CylcError::NoWorkflow);
    }
    Ok(message)
}

/// Decodes the payload of an `all` message.
pub fn decode_all_deltas(bytes: &[u8]) -> Result<AllDeltas, CylcError> {
    AllDeltas::decode(bytes).map_err(|source| CylcError::Decode {
        what: "AllDeltas",
        source,
    })
}

/// The workflow as the model shows it.
fn workflow_value(workflow: &PbWorkflow) -> Value {
    Value::Object(to_object(workflow))
}

/// Keeps the batch's time the largest of its types' times.
fn note_time(applied: &mut Applied, time: Option<f64>) {
    if let Some(t) = time {
        applied.time = Some(applied.time.map_or(t, |a| a.max(t)));
    }
}

impl CylcStore {
    /// A replica holding a `pb_entire_workflow` reply.
    pub fn from_entire_workflow(snapshot: &PbEntireWorkflow) -> Result<CylcStore, CylcError> {
        let workflow = without_element_lists(snapshot.workflow.clone().ok_or(CylcError::NoWorkflow)?);
        let mut store = CylcStore {
            workflow,
            tasks: Table::from_elements(snapshot.tasks.iter().cloned()),
            task_proxies: Table::from_elements(snapshot.task_proxies.iter().cloned()),
            families: Table::from_elements(snapshot.families.iter().cloned()),
            family_proxies: Table::from_elements(snapshot.family_proxies.iter().cloned()),
            jobs: Table::from_elements(snapshot.jobs.iter().cloned()),
            edges: Table::from_elements(snapshot.edges.iter().cloned()),
            topics: Kind::APPLY_ORDER.map(|_| Topic::new("")),
        };
        for kind in Kind::APPLY_ORDER {
            store.topics[slot(kind)] = Topic::from_value(kind.topic(), &store.topic_value(kind))?;
        }
        Ok(store)
    }

    /// [`CylcStore::from_entire_workflow`] from the reply's bytes.
    pub fn from_entire_workflow_bytes(bytes: &[u8]) -> Result<CylcStore, CylcError> {
        CylcStore::from_entire_workflow(&decode_entire_workflow(bytes)?)
    }

    /// Replaces the whole replica with a fresh `pb_entire_workflow` reply (e.g.
    /// after a reconnect) and reports exactly the leaves that differ per topic.
    pub fn replace_all(&mut self, snapshot: &PbEntireWorkflow) -> Result<Applied, CylcError> {
        let mut fresh = CylcStore::from_entire_workflow(snapshot)?;
        let mut applied = Applied {
            time: fresh.workflow.last_updated,
            ..Applied::default()
        };
        for kind in Kind::APPLY_ORDER {
            let topic = std::mem::replace(&mut fresh.topics[slot(kind)], Topic::new(""));
            let changes = self.topics[slot(kind)].replace_with(topic);
            if !changes.is_empty() {
                applied.topics.push((kind.topic(), changes));
            }
        }
        // Our topics now hold the snapshot's values (their changes reported above).
        std::mem::swap(&mut fresh.topics, &mut self.topics);
        *self = fresh;
        Ok(applied)
    }

    /// The topic that shows `kind`.
    pub fn topic(&self, kind: Kind) -> &Topic {
        &self.topics[slot(kind)]
    }

    /// The seven topics, in [`Kind::APPLY_ORDER`].
    pub fn topics(&self) -> impl Iterator<Item = (Kind, &Topic)> {
        Kind::APPLY_ORDER.into_iter().map(|k| (k, self.topic(k)))
    }

    /// The workflow element.
    pub fn workflow(&self) -> &PbWorkflow {
        &self.workflow
    }

    /// How many elements of `kind` there are (the workflow: 1).
    pub fn len(&self, kind: Kind) -> usize {
        match kind {
            Kind::Workflow => 1,
            Kind::Tasks => self.tasks.len(),
            Kind::TaskProxies => self.task_proxies.len(),
            Kind::Families => self.families.len(),
            Kind::FamilyProxies => self.family_proxies.len(),
            Kind::Jobs => self.jobs.len(),
            Kind::Edges => self.edges.len(),
        }
    }

    /// Cylc's checksum of `kind` as stored (the workflow has none: `None`).
    pub fn checksum(&self, kind: Kind) -> Option<u32> {
        Some(match kind {
            Kind::Workflow => return None,
            Kind::Tasks => self.tasks.checksum(),
            Kind::TaskProxies => self.task_proxies.checksum(),
            Kind::Families => self.families.checksum(),
            Kind::FamilyProxies => self.family_proxies.checksum(),
            Kind::Jobs => self.jobs.checksum(),
            Kind::Edges => self.edges.checksum(),
        })
    }

    /// The model's value of a topic, computed from the store (O(type)).
    pub fn topic_value(&self, kind: Kind) -> Value {
        match kind {
            Kind::Workflow => workflow_value(&self.workflow),
            Kind::Tasks => self.tasks.topic_value(),
            Kind::TaskProxies => self.task_proxies.topic_value(),
            Kind::Families => self.families.topic_value(),
            Kind::FamilyProxies => self.family_proxies.topic_value(),
            Kind::Jobs => self.jobs.topic_value(),
            Kind::Edges => self.edges.topic_value(),
        }
    }

    /// The store as a `PbEntireWorkflow` (elements in no particular order).
    pub fn to_entire_workflow(&self) -> PbEntireWorkflow {
        PbEntireWorkflow {
            workflow: Some(self.workflow.clone()),
            tasks: self.tasks.iter().cloned().collect(),
            task_proxies: self.task_proxies.iter().cloned().collect(),
            jobs: self.jobs.iter().cloned().collect(),
            families: self.families.iter().cloned().collect(),
            family_proxies: self.family_proxies.iter().cloned().collect(),
            edges: self.edges.iter().cloned().collect(),
        }
    }

    /// True when both hold the same elements (topics follow from them).
    pub fn same_data(&self, other: &CylcStore) -> bool {
        self.workflow == other.workflow
            && self.tasks == other.tasks
            && self.task_proxies == other.task_proxies
            && self.families == other.families
            && self.family_proxies == other.family_proxies
            && self.jobs == other.jobs
            && self.edges == other.edges
    }

    /// Decodes and applies one `all` payload. Bytes that do not decode are refused
    /// and change nothing.
    pub fn apply_bytes(&mut self, bytes: &[u8]) -> Result<Applied, CylcError> {
        let deltas = decode_all_deltas(bytes)?;
        self.apply_deltas(deltas)
    }

    /// Applies one batch as Cylc's data store does and reports, per topic, the
    /// changed leaves and, per type, the checksum verdict.
    pub fn apply_deltas(&mut self, deltas: AllDeltas) -> Result<Applied, CylcError> {
        let AllDeltas {
            families,
            family_proxies,
            jobs,
            tasks,
            task_proxies,
            edges,
            workflow,
        } = deltas;
        let mut batches: [TopicBatch; 7] = Default::default();
        let mut applied = Applied::default();
        // The scheduler's order (`data_store_mgr.py`'s `DATA_TEMPLATE`).
        self.apply_batch_type(edges, &mut batches, &mut applied)?;
        self.apply_batch_type(families, &mut batches, &mut applied)?;
        self.apply_batch_type(family_proxies, &mut batches, &mut applied)?;
        self.apply_batch_type(jobs, &mut batches, &mut applied)?;
        self.apply_batch_type(tasks, &mut batches, &mut applied)?;
        self.apply_batch_type(task_proxies, &mut batches, &mut applied)?;
        if let Some(d) = workflow {
            note_time(&mut applied, d.time);
            self.apply_workflow(d, &mut batches[slot(Kind::Workflow)])?;
        }
        for check in &mut applied.checks {
            check.actual = self.checksum(check.kind).unwrap_or_default();
        }
        self.finish(batches, &mut applied)?;
        Ok(applied)
    }

    /// Applies one type's part of a batch, if the batch has one, noting its time
    /// and the checksum to verify.
    fn apply_batch_type<D: TypeDeltas>(
        &mut self,
        d: Option<D>,
        batches: &mut [TopicBatch; 7],
        applied: &mut Applied,
    ) -> Result<(), CylcError> {
        let Some(d) = d else { return Ok(()) };
        note_time(applied, d.time());
        if let Some(expected) = d.checksum() {
            applied.checks.push(Check {
                kind: D::Element::KIND,
                expected,
                actual: 0,
            });
        }
        self.apply_type(d, batches)
    }

    /// Applies one type's deltas: `reloaded` empties it, `added` and `updated` are
    /// merged, each pruned element leaves its parents' lists and then the table.
    fn apply_type<D: TypeDeltas>(&mut self, d: D, batches: &mut [TopicBatch; 7]) -> Result<(), CylcError> {
        let s = slot(D::Element::KIND);
        let Parts {
            added,
            updated,
            pruned,
            reloaded,
        } = d.into_parts();
        let (table, topic) = D::Element::held(self);
        begin(table, reloaded);
        merge_elements(table, topic, &mut batches[s], added, updated, reloaded)?;
        for id in &pruned {
            self.unlink_from_parents(D::Element::KIND, id, batches)?;
            let (table, topic) = D::Element::held(self);
            drop_element(table, topic, &mut batches[s], id, reloaded)?;
        }
        let (table, topic) = D::Element::held(self);
        end(table, topic, &mut batches[s], reloaded)
    }

    /// Before the element `id` of `kind` is pruned, removes its id from its
    /// parents' lists as Cylc does: an edge from its two task proxies' `edges`, a
    /// family proxy from its family's `proxies` and its parent's `childFamilies`, a
    /// task proxy from its task's `proxies` and its parent's `childTasks`.
    fn unlink_from_parents(
        &mut self,
        kind: Kind,
        id: &str,
        batches: &mut [TopicBatch; 7],
    ) -> Result<(), CylcError> {
        match kind {
            Kind::Edges => {
                let Some(edge) = self.edges.get(id) else {
                    return Ok(());
                };
                let (source, target) = (edge.source().to_owned(), edge.target().to_owned());
                self.unlink::<PbTaskProxy>(batches, &source, "edges", id)?;
                self.unlink::<PbTaskProxy>(batches, &target, "edges", id)
            }
            Kind::FamilyProxies => {
                let Some(proxy) = self.family_proxies.get(id) else {
                    return Ok(());
                };
                let (family, parent) = (proxy.family().to_owned(), proxy.first_parent().to_owned());
                self.unlink::<PbFamily>(batches, &family, "proxies", id)?;
                self.unlink::<PbFamilyProxy>(batches, &parent, "childFamilies", id)
            }
            Kind::TaskProxies => {
                let Some(proxy) = self.task_proxies.get(id) else {
                    return Ok(());
                };
                let (task, parent) = (proxy.task().to_owned(), proxy.first_parent().to_owned());
                self.unlink::<PbTask>(batches, &task, "proxies", id)?;
                self.unlink::<PbFamilyProxy>(batches, &parent, "childTasks", id)
            }
            Kind::Workflow | Kind::Tasks | Kind::Families | Kind::Jobs => Ok(()),
        }
    }

    /// Removes `child` from the id list `field` of the element `parent` of type `T`.
    fn unlink<T: Held>(
        &mut self,
        batches: &mut [TopicBatch; 7],
        parent: &str,
        field: &'static str,
        child: &str,
    ) -> Result<(), CylcError> {
        let batch = &mut batches[slot(T::KIND)];
        let (table, topic) = T::held(self);
        unlink(table, topic, batch, parent, field, child)
    }

    fn apply_workflow(&mut self, d: WDeltas, batch: &mut TopicBatch) -> Result<(), CylcError> {
        let topic = &mut self.topics[slot(Kind::Workflow)];
        let before = to_object(&self.workflow);
        if d.reloaded == Some(true) {
            self.workflow = PbWorkflow::default();
        }
        if let Some(added) = d.added {
            let repeat = !added.stamp().is_empty() && added.stamp() == self.workflow.stamp();
            if added != PbWorkflow::default() && !repeat {
                self.workflow = without_element_lists(added);
            }
        }
        if let Some(update) = d.updated {
            let repeat = !update.stamp().is_empty() && update.stamp() == self.workflow.stamp();
            if !repeat {
                merge_workflow(&mut self.workflow, without_element_lists(update))?;
            }
        }
        if d.pruned.is_some() {
            self.workflow.pruned = Some(true);
        }
        let patch = diff_objects(&before, &to_object(&self.workflow));
        if !patch.is_empty() {
            batch.put_whole(topic, &Value::Object(patch))?;
        }
        Ok(())
    }

    /// Replaces one type with a `pb_data_elements` reply for it (the repair after a
    /// checksum mismatch): the type is emptied and refilled, as Cylc's client does,
    /// and its topic reports exactly the leaves that differ. Bytes that do not
    /// decode are refused and change nothing.
    pub fn replace_type(&mut self, kind: Kind, bytes: &[u8]) -> Result<Applied, CylcError> {
        let mut batches: [TopicBatch; 7] = Default::default();
        let time = match kind {
            Kind::Workflow => {
                let mut d = WDeltas::decode(bytes).map_err(|source| CylcError::Decode {
                    what: kind.cylc_name(),
                    source,
                })?;
                d.reloaded = Some(true);
                let time = d.time;
                self.apply_workflow(d, &mut batches[slot(kind)])?;
                time
            }
            Kind::Edges => self.refill::<EDeltas>(bytes, &mut batches)?,
            Kind::Families => self.refill::<FDeltas>(bytes, &mut batches)?,
            Kind::FamilyProxies => self.refill::<FpDeltas>(bytes, &mut batches)?,
            Kind::Jobs => self.refill::<JDeltas>(bytes, &mut batches)?,
            Kind::Tasks => self.refill::<TDeltas>(bytes, &mut batches)?,
            Kind::TaskProxies => self.refill::<TpDeltas>(bytes, &mut batches)?,
        };
        let mut applied = Applied {
            time,
            ..Applied::default()
        };
        self.finish(batches, &mut applied)?;
        Ok(applied)
    }

    /// Turns each topic's batch into its changes, in slot order.
    fn finish(&mut self, batches: [TopicBatch; 7], applied: &mut Applied) -> Result<(), CylcError> {
        for (i, batch) in batches.into_iter().enumerate() {
            let changes = batch.finish(&mut self.topics[i])?;
            if !changes.is_empty() {
                applied.topics.push((SLOT_KINDS[i].topic(), changes));
            }
        }
        Ok(())
    }

    /// Decodes a `pb_data_elements` reply for one type and applies it as reloaded;
    /// returns its time.
    fn refill<D: TypeDeltas>(
        &mut self,
        bytes: &[u8],
        batches: &mut [TopicBatch; 7],
    ) -> Result<Option<f64>, CylcError> {
        let mut d = D::decode(bytes).map_err(|source| CylcError::Decode {
            what: D::Element::KIND.cylc_name(),
            source,
        })?;
        let time = d.time();
        d.set_reloaded();
        self.apply_type(d, batches)?;
        Ok(time)
    }

    /// [`CylcStore::replace_type`] by Cylc's name for the type (`task_proxies`).
    pub fn replace_type_named(&mut self, element_type: &str, bytes: &[u8]) -> Result<Applied, CylcError> {
        let kind =
            Kind::from_cylc_name(element_type).ok_or_else(|| CylcError::UnknownKind(element_type.into()))?;
        self.replace_type(kind, bytes)
    }
}
