//! Cylc's element types and what each needs for Cylc's merge semantics: its id,
//! its checksum key, the fields Cylc clears before merging an update, and the id
//! lists this crate keeps as sets.

use serde::Serialize;

use crate::proto::{PbEdge, PbFamily, PbFamilyProxy, PbJob, PbTask, PbTaskProxy};

/// One of Cylc's seven element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The workflow itself (one element, no checksum).
    Workflow,
    /// Task definitions (`$namespace|foo`).
    Tasks,
    /// Task instances (`1/foo`).
    TaskProxies,
    /// Family definitions.
    Families,
    /// Family instances (`1/FAM`).
    FamilyProxies,
    /// Jobs (`1/foo/01`).
    Jobs,
    /// Graph edges between task proxies.
    Edges,
}

impl Kind {
    /// Every kind, in the order a scheduler applies a batch to its own store
    /// (`DataStoreMgr.deltas`: edges first, workflow last).
    pub const APPLY_ORDER: [Kind; 7] = [
        Kind::Edges,
        Kind::Families,
        Kind::FamilyProxies,
        Kind::Jobs,
        Kind::Tasks,
        Kind::TaskProxies,
        Kind::Workflow,
    ];

    /// Cylc's name for the type (`task_proxies`): the key of `AllDeltas` and the
    /// `element_type` of a `pb_data_elements` request.
    pub fn cylc_name(self) -> &'static str {
        match self {
            Kind::Workflow => "workflow",
            Kind::Tasks => "tasks",
            Kind::TaskProxies => "task_proxies",
            Kind::Families => "families",
            Kind::FamilyProxies => "family_proxies",
            Kind::Jobs => "jobs",
            Kind::Edges => "edges",
        }
    }

    /// The clonewire topic that holds this type (`taskProxies`).
    pub fn topic(self) -> &'static str {
        match self {
            Kind::Workflow => "workflow",
            Kind::Tasks => "tasks",
            Kind::TaskProxies => "taskProxies",
            Kind::Families => "families",
            Kind::FamilyProxies => "familyProxies",
            Kind::Jobs => "jobs",
            Kind::Edges => "edges",
        }
    }

    /// The kind with this Cylc name, if any.
    pub fn from_cylc_name(name: &str) -> Option<Kind> {
        Kind::APPLY_ORDER.into_iter().find(|k| k.cylc_name() == name)
    }
}

/// An element of one of the six keyed types (everything but the workflow).
pub trait Element: prost::Message + Serialize + Default + Clone + PartialEq {
    /// Which type this is.
    const KIND: Kind;

    /// The full Cylc id (`~user/workflow//1/foo`).
    fn id(&self) -> &str;

    /// The timestamped id (`<id>@<time>`), new whenever the element changes.
    fn stamp(&self) -> &str;

    /// What Cylc's checksum covers for this type: the stamp (edges: the id).
    fn checksum_key(&self) -> &str {
        self.stamp()
    }

    /// Clears the fields Cylc clears before merging `update` (its
    /// `CLEAR_FIELD_MAP`): those `update` sets are replaced, not appended to.
    fn clear_for_update(&mut self, _update: &Self) {}

    /// The lists of ids kept as sets, with their field names in the model:
    /// merging appends only ids not already there, pruning removes every copy.
    fn id_sets(&mut self) -> Vec<(&'static str, &mut Vec<String>)> {
        Vec::new()
    }

    /// [`Element::id_sets`], read only.
    fn id_lists(&self) -> Vec<(&'static str, &[String])> {
        Vec::new()
    }
}

impl Element for PbEdge {
    const KIND: Kind = Kind::Edges;
    fn id(&self) -> &str {
        self.id()
    }
    fn stamp(&self) -> &str {
        self.stamp()
    }
    fn checksum_key(&self) -> &str {
        self.id()
    }
}

impl Element for PbFamily {
    const KIND: Kind = Kind::Families;
    fn id(&self) -> &str {
        self.id()
    }
    fn stamp(&self) -> &str {
        self.stamp()
    }
    fn id_sets(&mut self) -> Vec<(&'static str, &mut Vec<String>)> {
        vec![
            ("proxies", &mut self.proxies),
            ("childTasks", &mut self.child_tasks),
            ("childFamilies", &mut self.child_families),
        ]
    }
    fn id_lists(&self) -> Vec<(&'static str, &[String])> {
        vec![
            ("proxies", &self.proxies),
            ("childTasks", &self.child_tasks),
            ("childFamilies", &self.child_families),
        ]
    }
}

impl Element for PbFamilyProxy {
    const KIND: Kind = Kind::FamilyProxies;
    fn id(&self) -> &str {
        self.id()
    }
    fn stamp(&self) -> &str {
        self.stamp()
    }
    fn clear_for_update(&mut self, update: &Self) {
        if !update.state_totals.is_empty() {
            self.state_totals.clear();
        }
        if !update.states.is_empty() {
            self.states.clear();
        }
    }
    fn id_sets(&mut self) -> Vec<(&'static str, &mut Vec<String>)> {
        vec![
            ("childTasks", &mut self.child_tasks),
            ("childFamilies", &mut self.child_families),
        ]
    }
    fn id_lists(&self) -> Vec<(&'static str, &[String])> {
        vec![
            ("childTasks", &self.child_tasks),
            ("childFamilies", &self.child_families),
        ]
    }
}

impl Element for PbJob {
    const KIND: Kind = Kind::Jobs;
    fn id(&self) -> &str {
        self.id()
    }
    fn stamp(&self) -> &str {
        self.stamp()
    }
    fn clear_for_update(&mut self, update: &Self) {
        if !update.messages.is_empty() {
            self.messages.clear();
        }
    }
}

impl Element for PbTask {
    const KIND: Kind = Kind::Tasks;
    fn id(&self) -> &str {
        self.id()
    }
    fn stamp(&self) -> &str {
        self.stamp()
    }
    fn id_sets(&mut self) -> Vec<(&'static str, &mut Vec<String>)> {
        vec![("proxies", &mut self.proxies)]
    }
    fn id_lists(&self) -> Vec<(&'static str, &[String])> {
        vec![("proxies", &self.proxies)]
    }
}

impl Element for PbTaskProxy {
    const KIND: Kind = Kind::TaskProxies;
    fn id(&self) -> &str {
        self.id()
    }
    fn stamp(&self) -> &str {
        self.stamp()
    }
    fn clear_for_update(&mut self, update: &Self) {
        if !update.prerequisites.is_empty() {
            self.prerequisites.clear();
        }
    }
    fn id_sets(&mut self) -> Vec<(&'static str, &mut Vec<String>)> {
        vec![("jobs", &mut self.jobs), ("edges", &mut self.edges)]
    }
    fn id_lists(&self) -> Vec<(&'static str, &[String])> {
        vec![("jobs", &self.jobs), ("edges", &self.edges)]
    }
}
