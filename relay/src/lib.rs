//! The clonewire relay: follows many suites over ZeroMQ, keeps the merged store of
//! what its clients need, and serves projected, verified deltas over websockets.
//!
//! - [`config`]: settings from TOML and flags, with every limit;
//! - [`registry`]: interned subscriptions (one [`registry::Group`] per distinct one);
//! - [`views`]: per workflow, each group's projection, hash and label, and bridging
//!   a client from what it holds to what it should hold;
//! - [`history`]: bounded per-topic history for resume;
//! - [`outbox`]: each client's bounded send queue with conflation.

pub mod config;
pub mod history;
pub mod metrics;
pub mod outbox;
pub mod registry;
pub mod views;
