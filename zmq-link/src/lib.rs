//! The ZeroMQ plumbing shared by clonewire's links: what a clonewire suite, its
//! followers and the Cylc link all need, and nothing about either protocol.
//!
//! - [`sockets`]: socket setup (high-water marks, linger, bound endpoints) and CURVE
//!   keys;
//! - [`zap`]: a ZAP handler that admits only listed CURVE clients;
//! - [`retry`]: the one request policy of a REQ socket (deadline, backoff, reopen
//!   after a timeout), sans-IO: the time is passed in;
//! - [`discovery`]: finding peers by the contact files they leave in a directory,
//!   one mechanism for every kind of contact file (ours, Cylc's), and this host's
//!   name;
//! - [`background`]: a lower priority for threads doing bulk work that can wait, and
//!   dropping big values on such a thread;
//! - [`unix_ms`]: the wall clock as Unix milliseconds;
//! - [`Error`]: what can go wrong setting up or using a socket.

pub mod background;
mod clock;
pub mod discovery;
mod error;
pub mod retry;
pub mod sockets;
pub mod zap;

pub use clock::unix_ms;
pub use error::Error;
