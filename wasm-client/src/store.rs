//! The client's one store: core's [`Copies`](clonewire_core::client::Copies), a
//! checked copy of each (workflow, topic) the merged subscription selects, kept by the
//! link ([`clonewire_core::client::ClientLink`]).
//!
//! Any message makes a copy the client had not heard of, even one that fails (it
//! then waits for a snapshot, and `inspect` shows it): [`COPY_POLICY`].

pub use clonewire_core::checked_copy::{ApplyOutcome, Chain, Reject};
pub use clonewire_core::client::{Copies as Store, TopicKey};
use clonewire_core::client::{CopyPolicy, FirstEpoch, NewCopies};

/// How the browser makes copies: from any message, in no epoch until one applies.
pub const COPY_POLICY: CopyPolicy = CopyPolicy {
    new_copies: NewCopies::FromAnyMessage,
    first_epoch: FirstEpoch::Unknown,
};

/// An empty store that makes copies as the browser does.
pub fn new_store() -> Store {
    Store::new(COPY_POLICY)
}
