//! The one error type of this crate: failures to set up or use a socket, or a bad
//! argument. Protocol-level trouble (gaps, mismatches, busy suites) is not an error:
//! the follower reports it as an [`FollowEvent`](crate::FollowEvent) and repairs it.

use clonewire_core::PatchError;

/// Why a publisher, responder, follower or simulator could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A ZeroMQ call failed (bind, connect, socket options).
    #[error("zeromq: {context}: {source}")]
    Zmq {
        /// What we were doing.
        context: String,
        /// The ZeroMQ error.
        source: zmq::Error,
    },
    /// A patch that is not a JSON object (or null) was published.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// A configuration value is unusable.
    #[error("bad configuration: {0}")]
    Config(String),
    /// A thread could not be started.
    #[error("could not start a thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The publisher has been shut down.
    #[error("the publisher has been shut down")]
    Stopped,
}

impl Error {
    /// Wraps a ZeroMQ error with what we were doing.
    pub fn zmq(context: impl Into<String>, source: zmq::Error) -> Error {
        Error::Zmq {
            context: context.into(),
            source,
        }
    }
}
