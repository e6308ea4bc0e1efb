//! Cylc 8 schedulers as clonewire upstreams.
//!
//! A running Cylc 8 workflow already is a suite in clonewire's sense: its scheduler
//! binds a ZeroMQ PUB socket that publishes protobuf deltas (`all`, `shutdown`) and a
//! REP socket that answers for the whole store (`pb_entire_workflow`,
//! `pb_data_elements`). This crate follows one natively, with no Python in the path,
//! and turns Cylc's store into the clonewire model (see `docs/cylc.md`).

pub mod checksum;
pub mod command;
pub mod contact;
pub mod discovery;
pub mod driver;
pub mod element;
mod fields;
pub mod keys;
pub mod link;
pub mod model;
pub mod proto;
pub mod replica;
pub mod request;
pub mod schema;
pub mod store;
mod table;
#[cfg(feature = "testing")]
pub mod testing;

pub use element::{Element, Kind};
pub use schema::schema;
pub use store::{Applied, Check, CylcError, CylcStore};
