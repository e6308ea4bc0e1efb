//! The error type of the ZeroMQ plumbing: failures to set up or use a socket, or a
//! bad key or setting. Protocol-level trouble (gaps, mismatches, busy peers) is not
//! an error here: the links above report it as events and repair it.

/// Why a socket, key or helper thread could not be set up or used.
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
    /// A configuration value (a key, a file, a setting) is unusable.
    #[error("bad configuration: {0}")]
    Config(String),
    /// A thread could not be started.
    #[error("could not start a thread: {0}")]
    Thread(#[from] std::io::Error),
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
