//! The suite side of clonewire (docs/protocol.md, Suite link).
//!
//! - `publisher`: a suite's store and its PUB socket: apply a change, publish the
//!   delta with `epoch`, `seq` and the topic `hash`; heartbeats; goodbye;
//! - `responder`: the REP socket on its own thread, answering from its own replica
//!   of the store so a slow requester never delays publishing;
//! - `answer`: what the REP socket says to each request (pure, no sockets);
//! - `history`: the bounded per-topic delta history behind `replay`;
//! - `held`: what a publisher holds, in bytes ([`Held`]), for long-running suites;
//! - [`contact`]: a suite's contact file (`--contact-dir DIR`), written while it runs;
//! - `epoch`: epoch names;
//! - `follow`: the subscriber side (join, apply, verify, repair): a sans-IO state
//!   machine and its ZeroMQ driver [`Follower`], used by the relay and the tap;
//! - [`sim`]: a simulator that plays realistic Cylc-like workflows through a publisher.
//!
//! The ZeroMQ plumbing under all of it (socket setup, CURVE and ZAP, the request
//! retry policy, discovery by contact files, the clock) is `clonewire-zmq`.

mod answer;
mod commands;
pub mod contact;
mod epoch;
mod error;
mod follow;
mod held;
mod history;
mod publisher;
mod responder;
mod shared;
pub mod sim;

pub use error::Error;

pub use commands::{CommandHandler, Commands};
pub use held::Held;
pub use history::HistoryLimits;
pub use publisher::{Published, Publisher, PublisherConfig};

pub use follow::{
    ArrivedReply, DecodedReply, FollowEvent, FollowStats, Follower, FollowerConfig, GapFound, Machine,
    MachineConfig, Phase, Rung,
};
pub use sim::{SimConfig, SimHandle, Simulator};
