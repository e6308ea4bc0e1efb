//! Cylc's request protocol on the scheduler's REP socket.
//!
//! A request is one JSON frame, `{"command": C, "args": {...}, "meta": {...}}`; the
//! scheduler passes `meta` to the command as an argument, and the `pb_*` commands
//! ignore it, so ours only says who asks (`prog`, `host`, `comms_method`, as Cylc's
//! own client does). The reply is one frame: the serialised protobuf for a `pb_*`
//! command that succeeded, else JSON, `{"error": {"message": M}, ...}`.
//! (A serialised protobuf never starts with `{`: that byte is a field-15 group start,
//! which proto3 never writes.)

use serde_json::{json, Value};

use crate::element::Kind;

/// The scheduler's topic for every delta batch (an `AllDeltas`).
pub const ALL_TOPIC: &[u8] = b"all";
/// The scheduler's topic for its last message; the payload is the reason, as text.
pub const SHUTDOWN_TOPIC: &[u8] = b"shutdown";

/// A request the link makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRequest {
    /// `pb_entire_workflow`: the whole store, a `PbEntireWorkflow`.
    EntireWorkflow,
    /// `pb_data_elements`: every element of one type, as that type's delta message
    /// with all of them in `added` (and the type's checksum).
    DataElements(Kind),
}

impl LinkRequest {
    /// The command's name.
    pub fn command(self) -> &'static str {
        match self {
            LinkRequest::EntireWorkflow => "pb_entire_workflow",
            LinkRequest::DataElements(_) => "pb_data_elements",
        }
    }

    /// The request frame. `host` is this machine's name, for the scheduler's log.
    pub fn encode(self, host: &str) -> Vec<u8> {
        let args = match self {
            LinkRequest::EntireWorkflow => json!({}),
            LinkRequest::DataElements(kind) => json!({ "element_type": kind.cylc_name() }),
        };
        let message = json!({
            "command": self.command(),
            "args": args,
            "meta": { "prog": "clonewire", "host": host, "comms_method": "zmq" },
        });
        message.to_string().into_bytes()
    }
}

/// Why a request got no protobuf back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The scheduler answered with an error.
    #[error("the scheduler answered {command} with an error: {message}")]
    Remote {
        /// The command asked.
        command: &'static str,
        /// The scheduler's message.
        message: String,
    },
    /// The reply is JSON but not an error (not what a `pb_*` command answers).
    #[error("the scheduler answered {command} with JSON that is not protobuf nor an error")]
    Unexpected {
        /// The command asked.
        command: &'static str,
    },
}

/// The protobuf bytes of a reply to `request`, or the error the scheduler sent.
pub fn decode_reply(request: LinkRequest, reply: &[u8]) -> Result<&[u8], ReplyError> {
    if reply.first() != Some(&b'{') {
        return Ok(reply);
    }
    let command = request.command();
    let parsed: Value = serde_json::from_slice(reply).map_err(|_| ReplyError::Unexpected { command })?;
    let error = parsed.get("error").ok_or(ReplyError::Unexpected { command })?;
    // Cylc sends {"message": M}; take any other shape as it is.
    let message = match error.get("message") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => error.to_string(),
    };
    Err(ReplyError::Remote { command, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_what_cylc_expects() {
        let frame: Value = serde_json::from_slice(&LinkRequest::EntireWorkflow.encode("here")).unwrap();
        assert_eq!(frame["command"], "pb_entire_workflow");
        assert_eq!(frame["args"], json!({}));
        assert_eq!(frame["meta"]["comms_method"], "zmq");
        assert_eq!(frame["meta"]["host"], "here");
        let frame: Value =
            serde_json::from_slice(&LinkRequest::DataElements(Kind::TaskProxies).encode("here")).unwrap();
        assert_eq!(frame["command"], "pb_data_elements");
        assert_eq!(frame["args"], json!({ "element_type": "task_proxies" }));
    }

    #[test]
    fn replies_are_protobuf_or_an_error() {
        let pb = [0x0a, 0x03, b'a', b'b', b'c'];
        assert_eq!(decode_reply(LinkRequest::EntireWorkflow, &pb), Ok(&pb[..]));
        assert_eq!(decode_reply(LinkRequest::EntireWorkflow, b""), Ok(&b""[..]));
        let error = br#"{"error": {"message": "No method by the name 'pb_x'"}, "cylc_version": "8.5.4"}"#;
        assert_eq!(
            decode_reply(LinkRequest::EntireWorkflow, error)
                .unwrap_err()
                .to_string(),
            "the scheduler answered pb_entire_workflow with an error: No method by the name 'pb_x'"
        );
        assert_eq!(
            decode_reply(LinkRequest::EntireWorkflow, br#"{"data": 1}"#),
            Err(ReplyError::Unexpected {
                command: "pb_entire_workflow"
            })
        );
        assert!(decode_reply(LinkRequest::EntireWorkflow, b"{not json").is_err());
    }
}
