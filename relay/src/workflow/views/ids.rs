//! Who and what the views deal with: a client's id, and the store they read.

use clonewire_core::{Schema, Seq, Topic};

/// A websocket client, unique for the relay's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

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
