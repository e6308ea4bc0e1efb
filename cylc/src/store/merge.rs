//! Cylc's merge rules, one element at a time: how a workflow update, an element
//! added or updated, a pruned element and its parents' id lists change the tables,
//! and the merge patch each change makes on its topic.

use std::collections::HashSet;

use prost::Message;
use serde_json::{json, Map, Value};

use clonewire_core::{Node, Topic};

use super::{CylcError, LOG_RECORDS_KEPT};
use crate::element::Element;
use crate::fields::{field_names, field_values};
use crate::model::{compact_value, diff_node, element_value, relative_id, TopicBatch};
use crate::proto::PbWorkflow;
use crate::table::Table;

/// The workflow without its lists of every element, which the replica does not keep
/// (the topics are those lists, and keeping them would make each prune O(workflow)).
pub(super) fn without_element_lists(mut workflow: PbWorkflow) -> PbWorkflow {
    workflow.tasks.clear();
    workflow.families.clear();
    workflow.task_proxies.clear();
    workflow.family_proxies.clear();
    workflow.jobs.clear();
    if let Some(edges) = &mut workflow.edges {
        edges.edges.clear();
    }
    workflow
}

/// Cylc's merge of a workflow update: the fields in its `CLEAR_FIELD_MAP` are
/// replaced when sent (all three when `states_updated`), log records are capped.
pub(super) fn merge_workflow(workflow: &mut PbWorkflow, update: PbWorkflow) -> Result<(), CylcError> {
    let states_updated = update.states_updated == Some(true);
    if states_updated || !update.latest_state_tasks.is_empty() {
        workflow.latest_state_tasks.clear();
    }
    if states_updated || !update.state_totals.is_empty() {
        workflow.state_totals.clear();
    }
    if states_updated || !update.states.is_empty() {
        workflow.states.clear();
    }
    let logged = !update.log_records.is_empty();
    merge_message(workflow, &update)?;
    if logged && workflow.log_records.len() > LOG_RECORDS_KEPT {
        let extra = workflow.log_records.len() - LOG_RECORDS_KEPT;
        workflow.log_records.drain(..extra);
    }
    Ok(())
}

/// Protobuf's MergeFrom, by prost: `update`'s encoding merged into `target`.
pub(super) fn merge_message<M: Message>(target: &mut M, update: &M) -> Result<(), CylcError> {
    target
        .merge(update.encode_to_vec().as_slice())
        .map_err(|err| CylcError::Internal(format!("re-merging an encoded update: {err}")))
}

/// Empties a table when the type was reloaded.
pub(super) fn begin<T: Element>(table: &mut Table<T>, reloaded: bool) {
    if reloaded {
        table.clear();
    }
}

/// After a reloaded type was rebuilt, its topic is replaced wholesale.
pub(super) fn end<T: Element>(
    table: &Table<T>,
    topic: &mut Topic,
    batch: &mut TopicBatch,
    reloaded: bool,
) -> Result<(), CylcError> {
    if reloaded {
        batch.replace(topic, &table.topic_value())?;
    }
    Ok(())
}

/// Applies a type's `added` (replace by id) and `updated` (merge) elements, skipping
/// those already held (same stamp) and updates of elements not held (Cylc ignores
/// them too). Unless `quiet`, each change becomes a patch on `topic`.
pub(super) fn merge_elements<T: Element>(
    table: &mut Table<T>,
    topic: &mut Topic,
    batch: &mut TopicBatch,
    added: Vec<T>,
    updated: Vec<T>,
    quiet: bool,
) -> Result<(), CylcError> {
    for element in added {
        let id = element.id().to_owned();
        let key = relative_id(&id);
        let held = match table.get(&id) {
            Some(old) if !old.stamp().is_empty() && old.stamp() == element.stamp() => continue,
            held => held.is_some(),
        };
        let patch = if quiet {
            None
        } else if held {
            // Replaced: the patch from what the topic shows to the new element.
            batch.settle(topic, key)?;
            diff_node(topic.at(&[key]), compact_value(element_value(&element)))
        } else {
            Some(element_value(&element))
        };
        table.insert(element);
        if let Some(patch) = patch {
            batch.put(topic, key, patch)?;
        }
    }
    for mut update in updated {
        let id = update.id().to_owned();
        let Some(stored) = table.get(&id) else { continue };
        if !update.stamp().is_empty() && stored.stamp() == update.stamp() {
            continue;
        }
        let sets: Vec<(&'static str, Vec<String>)> = update
            .id_sets()
            .into_iter()
            .map(|(name, ids)| (name, std::mem::take(ids)))
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        // A merge changes only the fields the update sets (Cylc clears only those
        // too), so only they are read back for the patch.
        let touched = if quiet { Vec::new() } else { field_names(&update) };
        let outcome = table.modify(&id, |stored| -> Result<Map<String, Value>, CylcError> {
            stored.clear_for_update(&update);
            merge_message(stored, &update)?;
            let mut added_ids = Map::new();
            for (name, ids) in sets {
                let mut fields = stored.id_sets();
                let Some((_, field)) = fields.iter_mut().find(|(n, _)| *n == name) else {
                    continue;
                };
                let new = append_missing(field, ids);
                if !new.is_empty() {
                    added_ids.insert(name.to_owned(), Value::Object(new));
                }
            }
            Ok(added_ids)
        });
        let added_ids = match outcome {
            Some(result) => result?,
            None => continue,
        };
        if quiet {
            continue;
        }
        let Some(stored) = table.get(&id) else { continue };
        let key = relative_id(&id);
        batch.settle(topic, key)?;
        let shown = match topic.at(&[key]) {
            Some(Node::Object(object)) => Some(object),
            _ => None,
        };
        let mut patch = Map::new();
        let mut values = field_values(stored, &touched).into_iter().peekable();
        for name in &touched {
            let value = match values.peek() {
                Some((picked, _)) if picked == name => values.next().map(|(_, v)| v),
                _ => None,
            };
            let old = shown.and_then(|object| object.get(name));
            if let Some(change) = diff_node(old, value.and_then(compact_value)) {
                patch.insert((*name).to_owned(), change);
            }
        }
        patch.extend(added_ids);
        if !patch.is_empty() {
            batch.put(topic, key, Value::Object(patch))?;
        }
    }
    Ok(())
}

/// Appends the ids not already in `field`; returns them as model set entries.
pub(super) fn append_missing(field: &mut Vec<String>, ids: Vec<String>) -> Map<String, Value> {
    let mut new = Map::new();
    if ids.len() <= 4 {
        for id in ids {
            if !field.contains(&id) {
                new.insert(relative_id(&id).to_owned(), Value::Bool(true));
                field.push(id);
            }
        }
        return new;
    }
    let mut held: HashSet<String> = field.iter().cloned().collect();
    for id in ids {
        if held.insert(id.clone()) {
            new.insert(relative_id(&id).to_owned(), Value::Bool(true));
            field.push(id);
        }
    }
    new
}

/// Removes `child` from the id set `field` of `parent` (every copy), as Cylc does
/// when it prunes `child`; the topic loses that one key.
pub(super) fn unlink<T: Element>(
    table: &mut Table<T>,
    topic: &mut Topic,
    batch: &mut TopicBatch,
    parent: &str,
    field: &'static str,
    child: &str,
) -> Result<(), CylcError> {
    let removed = table.modify(parent, |element| {
        let mut sets = element.id_sets();
        let Some((_, ids)) = sets.iter_mut().find(|(name, _)| *name == field) else {
            return false;
        };
        let before = ids.len();
        ids.retain(|id| id != child);
        ids.len() != before
    });
    if removed == Some(true) {
        let patch = json!({ field: { relative_id(child): null } });
        batch.put(topic, relative_id(parent), patch)?;
    }
    Ok(())
}

/// Removes a pruned element; unless `quiet`, its topic loses its key.
pub(super) fn drop_element<T: Element>(
    table: &mut Table<T>,
    topic: &mut Topic,
    batch: &mut TopicBatch,
    id: &str,
    quiet: bool,
) -> Result<(), CylcError> {
    if table.remove(id).is_some() && !quiet {
        batch.put(topic, relative_id(id), Value::Null)?;
    }
    Ok(())
}
