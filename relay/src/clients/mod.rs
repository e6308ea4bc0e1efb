//! The client side: websocket connections, their queues and what they may see.

pub mod auth;
pub mod compress;
pub mod listener;
pub mod outbox;
pub mod session;

/// A websocket client, unique for the relay's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
