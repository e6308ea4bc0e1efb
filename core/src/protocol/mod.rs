//! Wire messages: the suite link (docs/protocol.md, Suite link: ZeroMQ) and the client
//! link (docs/protocol.md, Client link: WebSocket). Decoding never panics: malformed
//! input is a [`DecodeError`].

pub mod client;
pub mod command;
pub mod suite;

use serde::de::DeserializeOwned;

/// The protocol name and version both links announce.
pub const PROTOCOL: &str = "clonewire/1";

/// A message that could not be decoded, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct DecodeError {
    /// What was being decoded, e.g. "delta".
    pub what: &'static str,
    /// Why it was refused.
    pub reason: String,
}

/// Decodes JSON bytes into `T`, naming `what` in the error.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError {
        what,
        reason: e.to_string(),
    })
}

/// Encodes a message as JSON bytes.
pub fn encode<T: serde::Serialize>(message: &T) -> Vec<u8> {
    // Our message types hold only strings, numbers and JSON values: encoding cannot fail.
    serde_json::to_vec(message).unwrap_or_default()
}
