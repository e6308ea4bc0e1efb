//! The one error type of this crate: a socket or setting that failed
//! ([`clonewire_zmq::Error`]), a bad patch, or a publisher that has stopped.
//! Protocol-level trouble (gaps, mismatches, busy suites) is not an error: the
//! follower reports it as an [`FollowEvent`](crate::FollowEvent) and repairs it.

use clonewire_core::PatchError;

/// Why a publisher, responder, follower or simulator could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket could not be set up or used, a key or setting is unusable, or a
    /// thread could not be started.
    #[error(transparent)]
    Link(#[from] clonewire_zmq::Error),
    /// A patch that is not a JSON object (or null) was published.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// The publisher has been shut down.
    #[error("the publisher has been shut down")]
    Stopped,
}

impl Error {
    /// A configuration value is unusable.
    pub fn config(why: impl Into<String>) -> Error {
        Error::Link(clonewire_zmq::Error::Config(why.into()))
    }

    /// Wraps a ZeroMQ error with what we were doing.
    pub fn zmq(context: impl Into<String>, source: zmq::Error) -> Error {
        Error::Link(clonewire_zmq::Error::zmq(context, source))
    }
}

impl From<std::io::Error> for Error {
    /// A thread could not be started.
    fn from(e: std::io::Error) -> Error {
        Error::Link(clonewire_zmq::Error::Thread(e))
    }
}
