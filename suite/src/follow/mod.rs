//! The subscriber side of the suite link, as docs/protocol.md, Suite link › Joining,
//! describes it: subscribe first and queue, `hello` and `snapshot`,
//! drop stale deltas, apply the rest in order checking every hash, and repair any gap,
//! mismatch or new epoch (replay, else hash-guided, else snapshot) while the stream
//! keeps flowing.
//!
//! Split like quinn-proto and quinn:
//! - [`Machine`] ([`machine`], with [`repair`] and the request slot in `request`): the
//!   whole protocol, with no sockets and no clock: frames, replies and the current
//!   `Instant` in; requests, deadlines and [`FollowEvent`]s out; [`arrived`]: an answer
//!   taken out of it to be decoded (and a snapshot built) anywhere, then handed back;
//! - [`Follower`] ([`driver`]): the thin ZeroMQ driver (SUB + REQ, CURVE, Lazy Pirate
//!   reopening on timeout) that most users want, with its intake of PUB messages
//!   bounded in bytes (`intake`) and a thread that decodes big answers;
//! - [`config`]: [`FollowerConfig`]; [`event`]: [`FollowEvent`], [`Rung`], [`FollowStats`].

pub mod arrived;
pub mod config;
pub mod driver;
pub mod event;
mod followed_topic;
mod intake;
pub mod machine;
pub mod repair;
mod request;

pub use arrived::{ArrivedReply, DecodedReply};
pub use config::{FollowerConfig, MachineConfig};
pub use driver::Follower;
pub use event::{FollowEvent, FollowStats, GapFound, Rung};
pub use machine::{Machine, Phase};
#[cfg(test)]
mod tests;
