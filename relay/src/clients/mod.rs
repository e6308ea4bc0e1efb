//! The client side: websocket connections, their queues and what they may see.

pub mod auth;
pub mod compress;
pub mod listener;
pub mod outbox;
pub mod session;
