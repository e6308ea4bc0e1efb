//! A fault campaign for clonewire: real `clonewire-sim` and `clonewire-relay`
//! processes, a lossy ZeroMQ forwarder between them, and websocket clients that check
//! every message with the browser client's own store. Suites and the relay are killed
//! and restarted, suites go busy, links drop, duplicate and delay deltas, and bad
//! clients never read or send garbage; at quiet checkpoints every client's copy must
//! equal the projection of its suite's state.
//!
//! - [`procs`]: child processes that die with the campaign (SIGKILL on drop), the
//!   built binaries, signals and RSS;
//! - [`proxy`]: the lossy XSUB/XPUB forwarder that stands between a suite and the relay;
//! - [`truth`]: a [`clonewire_suite::Follower`] per suite, straight to its sockets: the
//!   suite's state, every suite hash verified;
//! - [`clients`]: checked clients that reconnect and resume, and the bad clients;
//! - [`campaign`]: the schedule, the checks and the report.

pub mod campaign;
pub mod clients;
pub mod procs;
pub mod proxy;
pub mod truth;

pub use campaign::{run, CampaignConfig, Report};
