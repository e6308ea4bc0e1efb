//! One view of the six per-type `*Deltas` messages, so the store applies each type
//! by the same code, and of where each element type is held in the store.

use prost::Message;

use clonewire_core::Topic;

use super::{slot, CylcStore};
use crate::element::Element;
use crate::proto::{
    EDeltas, FDeltas, FpDeltas, JDeltas, PbEdge, PbFamily, PbFamilyProxy, PbJob, PbTask, PbTaskProxy,
    TDeltas, TpDeltas,
};
use crate::table::Table;

/// What one type's deltas ask of the store, in the order it is applied.
pub(super) struct Parts<T> {
    /// Elements to add (replacing any by id).
    pub added: Vec<T>,
    /// Elements to merge into the held ones.
    pub updated: Vec<T>,
    /// Ids to remove.
    pub pruned: Vec<String>,
    /// True when the type is emptied first.
    pub reloaded: bool,
}

/// An element type with a table of its own in the store.
pub(super) trait Held: Element {
    /// The store's table of this type and its topic.
    fn held(store: &mut CylcStore) -> (&mut Table<Self>, &mut Topic);
}

/// A `*Deltas` message of one element type (not the workflow's).
pub(super) trait TypeDeltas: Message + Default {
    /// The type the message changes.
    type Element: Held;
    /// The scheduler's time for these deltas.
    fn time(&self) -> Option<f64>;
    /// The scheduler's checksum of the type after these deltas.
    fn checksum(&self) -> Option<i64>;
    /// Marks the deltas as a whole new content of the type.
    fn set_reloaded(&mut self);
    /// The changes, taken apart.
    fn into_parts(self) -> Parts<Self::Element>;
}

/// Implements [`Held`] and [`TypeDeltas`] for an element type, its deltas message
/// and the store's field that holds it.
macro_rules! type_deltas {
    ($deltas:ty, $element:ty, $field:ident) => {
        impl Held for $element {
            fn held(store: &mut CylcStore) -> (&mut Table<Self>, &mut Topic) {
                (&mut store.$field, &mut store.topics[slot(<$element>::KIND)])
            }
        }

        impl TypeDeltas for $deltas {
            type Element = $element;

            fn time(&self) -> Option<f64> {
                self.time
            }

            fn checksum(&self) -> Option<i64> {
                self.checksum
            }

            fn set_reloaded(&mut self) {
                self.reloaded = Some(true);
            }

            fn into_parts(self) -> Parts<$element> {
                Parts {
                    added: self.added,
                    updated: self.updated,
                    pruned: self.pruned,
                    reloaded: self.reloaded == Some(true),
                }
            }
        }
    };
}

type_deltas!(EDeltas, PbEdge, edges);
type_deltas!(FDeltas, PbFamily, families);
type_deltas!(FpDeltas, PbFamilyProxy, family_proxies);
type_deltas!(JDeltas, PbJob, jobs);
type_deltas!(TDeltas, PbTask, tasks);
type_deltas!(TpDeltas, PbTaskProxy, task_proxies);
