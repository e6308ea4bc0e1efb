//! The schema of the Cylc model: which objects clients see are keyed collections
//! (`docs/cylc.md`, "The model clients see").
//!
//! It follows from the mapping's own decisions, so it cannot drift from them:
//!
//! - each keyed topic (every element type but the workflow), keyed by relative id;
//! - each id list the model keeps as a set ([`Element::id_lists`]), keyed by
//!   relative id;
//! - each protobuf map whose values are messages ([`MESSAGE_MAPS`]), keyed as Cylc
//!   keys it (an output's label, a state). Maps of scalars (`stateTotals`) and
//!   submessages (`runtime`) are plain objects.

use clonewire_core::Schema;

use crate::element::{Element, Kind};
use crate::proto::{PbEdge, PbFamily, PbFamilyProxy, PbJob, PbTask, PbTaskProxy};

/// The protobuf maps whose values are messages, by topic and model field name.
pub const MESSAGE_MAPS: [(Kind, &str); 4] = [
    (Kind::TaskProxies, "outputs"),
    (Kind::TaskProxies, "xtriggers"),
    (Kind::TaskProxies, "externalTriggers"),
    (Kind::Workflow, "latestStateTasks"),
];

/// The path of a field of an element of `kind` (`["taskProxies", "*", "jobs"]`;
/// the workflow topic is the element itself: `["workflow", "latestStateTasks"]`).
fn field_path(kind: Kind, field: &str) -> Vec<String> {
    match kind {
        Kind::Workflow => vec![kind.topic().to_owned(), field.to_owned()],
        _ => vec![kind.topic().to_owned(), "*".to_owned(), field.to_owned()],
    }
}

/// One keyed type's collections: its topic and its id sets.
fn keyed<E: Element>(collections: &mut Vec<Vec<String>>) {
    collections.push(vec![E::KIND.topic().to_owned()]);
    for (name, _) in E::default().id_lists() {
        collections.push(field_path(E::KIND, name));
    }
}

/// The keyed collections of the Cylc model, as a relay reports them for a Cylc
/// workflow (path patterns from a topic's root, `*` matching any key).
pub fn schema() -> Schema {
    let mut collections = Vec::new();
    keyed::<PbTask>(&mut collections);
    keyed::<PbTaskProxy>(&mut collections);
    keyed::<PbFamily>(&mut collections);
    keyed::<PbFamilyProxy>(&mut collections);
    keyed::<PbJob>(&mut collections);
    keyed::<PbEdge>(&mut collections);
    for (kind, field) in MESSAGE_MAPS {
        collections.push(field_path(kind, field));
    }
    Schema::new(collections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyed_type_id_set_and_message_map_is_a_collection() {
        let schema = schema();
        for kind in Kind::APPLY_ORDER {
            assert_eq!(
                schema.is_collection(&[kind.topic()]),
                kind != Kind::Workflow,
                "{kind:?}"
            );
        }
        assert!(schema.is_collection(&["taskProxies", "*", "jobs"]));
        assert!(schema.is_collection(&["familyProxies", "*", "childTasks"]));
        assert!(schema.is_collection(&["taskProxies", "*", "outputs"]));
        assert!(schema.is_collection(&["workflow", "latestStateTasks"]));
        assert!(!schema.is_collection(&["workflow", "stateTotals"]));
        assert!(!schema.is_collection(&["taskProxies", "*", "runtime"]));
    }
}
