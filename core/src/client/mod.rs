//! The client of the client link (docs/protocol.md, Client link), once, for every
//! driver: the browser client (`clonewire-wasm`) and a relay following another relay
//! (`clonewire-relay`'s `upstream::relay`). Sans-IO, like the suite follower's
//! `Machine` and the Cylc `Link`: frames' text, socket events and the time go in;
//! frames to send, a deadline and events come out. The driver moves the bytes.
//!
//! - [`link`]: [`ClientLink`], subscribe, resume, resync, settle and the bad-snapshot
//!   policy ([`MAX_BAD_SNAPSHOTS`]);
//! - [`copies`]: [`Copies`], the checked copy of every (workflow, topic) held;
//! - [`policy`]: what a driver chooses ([`LinkConfig`]), where the callers differ;
//! - [`events`]: [`LinkEvent`], [`LinkStatus`] and [`LinkStats`];
//! - [`time`]: [`Moment`], the time the driver passes in ([`Millis`] in the browser);
//! - [`backoff`]: reconnect delays;
//! - [`commands`]: requests answered by a client-chosen id (no message uses it yet).

pub mod backoff;
pub mod commands;
pub mod copies;
pub mod events;
pub mod link;
pub mod policy;
pub mod time;

#[cfg(test)]
mod tests;

pub use backoff::Backoff;
pub use commands::{CommandRefused, PendingCommand, PendingCommands};
pub use copies::{Copies, TopicKey};
pub use events::{AfterReject, Applied, DataKind, LinkEvent, LinkStats, LinkStatus};
pub use link::{ClientLink, MAX_BAD_SNAPSHOTS, MAX_OUTGOING_BYTES};
pub use policy::{CopyPolicy, FirstEpoch, LinkConfig, NewCopies, ResumeFrom, Scope, SubscribePacing};
pub use time::{Millis, Moment};
