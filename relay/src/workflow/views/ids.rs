//! Who and what the views deal with: a client (its id is the clients' side's), and the
//! store they read.

use clonewire_core::{Schema, Seq, Topic};

pub use crate::clients::ClientId;

/// What views read from the workflow's store (the workflow link's replicas).
pub trait ReplicaSource {
    /// The suite epoch being followed.
    fn epoch(&self) -> &str;
    /// The workflow's schema, once known (the workflow has been joined); until then
    /// clients are told no schema rather than an empty one, and views are compiled
    /// against an empty one.
    fn schema(&self) -> Option<&Schema>;
    /// A topic's replica and seq.
    fn topic(&self, name: &str) -> Option<(&Topic, Seq)>;
    /// The topics held.
    fn topic_names(&self) -> Vec<String>;
}
