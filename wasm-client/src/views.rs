//! Views: subscriptions over the one store. Their queries are merged into the one
//! subscription the relay sees; each view is told only about changed leaves its own
//! query selects, tested per leaf with a projection compiled per (workflow, topic)
//! against that workflow's schema (O(changed leaves × views)).

use std::collections::BTreeMap;

use clonewire_core::{Projection, QueryError, Schema, Subscription, SubscriptionLimits, Topic};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::effects::Touched;
use crate::store::Store;

pub use crate::effects::ViewId;

/// Schemas of the workflows seen so far, by workflow id.
pub type Schemas = FxHashMap<String, Schema>;

/// The schema of a workflow not described yet: no collections.
static NO_SCHEMA: Schema = Schema {
    collections: Vec::new(),
};

fn schema_of<'a>(schemas: &'a Schemas, workflow: &str) -> &'a Schema {
    schemas.get(workflow).unwrap_or(&NO_SCHEMA)
}

/// One view: a name for people, its parsed query and compiled projections.
#[derive(Clone, Debug)]
pub struct View {
    /// The name the page gave it (for the inspector).
    pub name: String,
    /// The parsed, normalized query.
    pub subscription: Subscription,
    /// Compiled per workflow, then topic (looked up by `&str`, no allocation once
    /// compiled); `None` when the view selects nothing there.
    projections: FxHashMap<String, FxHashMap<String, Option<Projection>>>,
}

impl View {
    fn projection(&mut self, workflow: &str, topic: &str, schemas: &Schemas) -> Option<&Projection> {
        if !self
            .projections
            .get(workflow)
            .is_some_and(|topics| topics.contains_key(topic))
        {
            let compiled = self
                .subscription
                .for_topic(workflow, topic)
                .and_then(|field| Projection::compile(field, topic, schema_of(schemas, workflow)));
            self.projections
                .entry(workflow.to_owned())
                .or_default()
                .insert(topic.to_owned(), compiled);
        }
        self.projections.get(workflow)?.get(topic)?.as_ref()
    }
}

/// Every open view and their merged subscription.
#[derive(Clone, Debug, Default)]
pub struct Views {
    views: BTreeMap<ViewId, View>,
    next_id: ViewId,
    merged: Subscription,
    limits: SubscriptionLimits,
}

impl Views {
    /// No views; queries are held to `limits` (the relay's defaults unless told).
    pub fn new(limits: SubscriptionLimits) -> Views {
        Views {
            limits,
            ..Views::default()
        }
    }

    /// Parses a query and checks it (and the merge it would make) against the limits
    /// and the known schemas.
    fn parse(
        &self,
        query: &str,
        replacing: Option<ViewId>,
        schemas: &Schemas,
    ) -> Result<Subscription, QueryError> {
        let subscription = Subscription::parse(query, &self.limits)?;
        for (workflow, schema) in schemas {
            if subscription.for_workflow(workflow).is_some() {
                subscription.check(schema)?;
            }
        }
        let others = self
            .views
            .iter()
            .filter(|(id, _)| Some(**id) != replacing)
            .map(|(_, v)| &v.subscription);
        Subscription::merge_all(others.chain([&subscription])).check_limits(&self.limits)?;
        Ok(subscription)
    }

    /// Adds a view; a bad query is an error for this view only.
    pub fn add(&mut self, name: &str, query: &str, schemas: &Schemas) -> Result<ViewId, QueryError> {
        let subscription = self.parse(query, None, schemas)?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.views.insert(
            id,
            View {
                name: name.to_owned(),
                subscription,
                projections: FxHashMap::default(),
            },
        );
        self.remerge();
        Ok(id)
    }

    /// Replaces a view's query, returning the old subscription; on error nothing changes.
    pub fn set_query(
        &mut self,
        id: ViewId,
        query: &str,
        schemas: &Schemas,
    ) -> Result<Subscription, QueryError> {
        if !self.views.contains_key(&id) {
            return Err(QueryError {
                line: None,
                column: None,
                message: "the view is closed".to_owned(),
            });
        }
        let subscription = self.parse(query, Some(id), schemas)?;
        let view = self.views.get_mut(&id).ok_or_else(|| QueryError {
            line: None,
            column: None,
            message: "the view is closed".to_owned(),
        })?;
        view.projections.clear();
        let old = std::mem::replace(&mut view.subscription, subscription);
        self.remerge();
        Ok(old)
    }

    /// Closes a view; true when it was open.
    pub fn remove(&mut self, id: ViewId) -> bool {
        let removed = self.views.remove(&id).is_some();
        if removed {
            self.remerge();
        }
        removed
    }

    fn remerge(&mut self) {
        self.merged = Subscription::merge_all(self.views.values().map(|v| &v.subscription));
    }

    /// The union of every view's query.
    pub fn merged(&self) -> &Subscription {
        &self.merged
    }

    /// A view, if open.
    pub fn get(&self, id: ViewId) -> Option<&View> {
        self.views.get(&id)
    }

    /// Open views by id.
    pub fn iter(&self) -> impl Iterator<Item = (ViewId, &View)> {
        self.views.iter().map(|(id, v)| (*id, v))
    }

    /// A workflow's schema arrived or changed (`old` is the one its projections were
    /// compiled against; `schemas` holds the new one): recompile them, and return per
    /// view and (workflow, topic) what it shows differently now (the schema says which
    /// fields are collections, so it changes what a query selects), so that a view's
    /// changes always add up to its data.
    pub fn schema_changed(
        &mut self,
        workflow: &str,
        old: Option<&Schema>,
        store: &Store,
        schemas: &Schemas,
    ) -> Vec<Touched> {
        let old = old.unwrap_or(&NO_SCHEMA);
        let mut out = Vec::new();
        for (id, view) in &mut self.views {
            view.projections.remove(workflow);
            for ((w, topic), replica) in store.iter() {
                if w != workflow {
                    continue;
                }
                let was = view
                    .subscription
                    .for_topic(workflow, topic)
                    .and_then(|f| Projection::compile(f, topic, old));
                let now = view.projection(workflow, topic, schemas);
                if let Some(touched) = shown_changes(*id, workflow, topic, was.as_ref(), now, &replica.topic)
                {
                    out.push(touched);
                }
            }
        }
        out
    }

    /// Marks, for each view, the changed leaves of `touched` its query selects
    /// (O(changed leaves × views), nothing copied).
    pub fn select(&mut self, touched: &mut Touched, schemas: &Schemas) {
        if touched.changes.is_empty() {
            return;
        }
        // Taken out for the loop (no copy) and put back.
        let workflow = std::mem::take(&mut touched.workflow);
        let topic = std::mem::take(&mut touched.topic);
        for (id, view) in &mut self.views {
            if let Some(projection) = view.projection(&workflow, &topic, schemas) {
                touched.select(*id, |leaf| projection.selects(&leaf.path[1..]));
            }
        }
        touched.workflow = workflow;
        touched.topic = topic;
    }

    /// The view's current data, `{"workflows": {id: {topic: value}}}`, projected from
    /// the store. `None` when the view is closed.
    pub fn data(&mut self, id: ViewId, store: &Store, schemas: &Schemas) -> Option<Value> {
        let view = self.views.get_mut(&id)?;
        let mut workflows = Map::new();
        for ((workflow, topic), replica) in store.iter() {
            if !view.subscription.topics(workflow).contains(topic) {
                continue;
            }
            let Some(projection) = view.projection(workflow, topic, schemas) else {
                continue;
            };
            let (value, _) = projection.project(&replica.topic);
            if value.as_object().is_some_and(|o| !o.is_empty()) {
                let entry = workflows
                    .entry(workflow.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(topics) = entry {
                    topics.insert(topic.clone(), value);
                }
            }
        }
        let mut root = Map::new();
        root.insert("workflows".to_owned(), Value::Object(workflows));
        Some(Value::Object(root))
    }

    /// The changes a view's query change makes to what it shows: per (workflow, topic)
    /// of the store, the leaves selected by one query and not the other.
    pub fn requery_changes(
        &mut self,
        id: ViewId,
        old: &Subscription,
        store: &Store,
        schemas: &Schemas,
    ) -> Vec<Touched> {
        let mut out = Vec::new();
        let Some(view) = self.views.get_mut(&id) else {
            return out;
        };
        for ((workflow, topic), replica) in store.iter() {
            let was = old
                .for_topic(workflow, topic)
                .and_then(|f| Projection::compile(f, topic, schema_of(schemas, workflow)));
            let now = view.projection(workflow, topic, schemas);
            if let Some(touched) = shown_changes(id, workflow, topic, was.as_ref(), now, &replica.topic) {
                out.push(touched);
            }
        }
        out
    }
}

/// What view `id` is told when its projection of a (workflow, topic) turns from `was`
/// into `now`: the leaves one selects and the other does not (`None`: nothing, or
/// neither projects the topic).
fn shown_changes(
    id: ViewId,
    workflow: &str,
    topic: &str,
    was: Option<&Projection>,
    now: Option<&Projection>,
    replica: &Topic,
) -> Option<Touched> {
    if was.is_none() && now.is_none() {
        return None;
    }
    let mut shown = projected_topic(was, replica);
    let changes = shown.replace_with(projected_topic(now, replica));
    let mut touched = Touched::new(workflow, topic, None, changes);
    touched.select(id, |_| true);
    Some(touched)
}

fn projected_topic(projection: Option<&Projection>, topic: &Topic) -> Topic {
    let name = topic.name();
    match projection {
        None => Topic::new(name),
        Some(p) => {
            let (value, _) = p.project(topic);
            Topic::from_value(name, &value).unwrap_or_else(|_| Topic::new(name))
        }
    }
}
