//! The clonewire model, shared by suites, the relay and the browser client.
//!
//! - [`document`]: leaf-set documents; merge-patch apply that reports changed leaves
//!   and keeps the topic hash up to date in O(changed leaves);
//! - [`changes`]: changed leaves, their exact composition and the patch they make;
//! - [`checked_copy`]: a copy of one topic kept from a relay's snapshots and deltas,
//!   each checked (chain, epoch, hash) before it is kept;
//! - [`client`]: the client of the client link, sans-IO: subscribe, resume, resync
//!   and the checked copies, for the browser and for relay tiers;
//! - [`hash`]: the leaf hash (XXH3-64 over JCS bytes) and node-hash sums;
//! - [`schema`]: which objects are keyed collections;
//! - [`subscription`]: parse, merge, print and project GraphQL-like selections;
//! - [`seq`]: [`Seq`], a topic's sequence number in one suite epoch;
//! - [`protocol`]: the suite-link and client-link messages.
//!
//! Pure: no I/O, threads, clock or randomness, so it behaves the same natively and
//! on wasm32.

pub mod changes;
pub mod checked_copy;
pub mod client;
pub mod document;
pub mod hash;
pub mod protocol;
pub mod schema;
pub mod seq;
pub mod subscription;

pub use changes::{Changes, HashedLeaf, LeafChange};
pub use checked_copy::CheckedCopy;
pub use document::{Document, Node, Object, PatchError, Topic};
pub use hash::{leaf_hash, Hash};
pub use schema::Schema;
pub use seq::Seq;
pub use subscription::project::Projection;
pub use subscription::trie::{Selected, SelectionTrie};
pub use subscription::{QueryError, Subscription, SubscriptionLimits};
