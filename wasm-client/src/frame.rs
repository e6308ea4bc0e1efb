//! Decoding relay frames in one pass. `RelayMessage` is an internally tagged enum,
//! which serde decodes by buffering the whole frame (patch included) before decoding
//! it again, with code of its own for that; one flat struct reads any frame once,
//! borrowing the workflow, topic and epoch of `delta` and `snapshot` frames (nearly
//! all traffic) from the text. The result is what `RelayMessage::decode` gives.

use std::borrow::Cow;

use clonewire_core::protocol::client::{ClientErrorCode, RelayMessage, WorkflowState};
use clonewire_core::{Hash, Schema};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    workflow: Option<Cow<'a, str>>,
    #[serde(borrow)]
    topic: Option<Cow<'a, str>>,
    #[serde(borrow)]
    epoch: Option<Cow<'a, str>>,
    seq: Option<u64>,
    #[serde(default)]
    prev: Option<u64>,
    hash: Option<Hash>,
    time: Option<f64>,
    patch: Option<Value>,
    value: Option<Value>,
    // The other messages' fields (names, when they are strings, left for later).
    protocol: Option<String>,
    relay: Option<String>,
    query: Option<String>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
    message: Option<String>,
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
    schema: Option<Schema>,
}

fn workflow_state(name: &str) -> Option<WorkflowState> {
    Some(match name {
        "syncing" => WorkflowState::Syncing,
        "live" => WorkflowState::Live,
        "stale" => WorkflowState::Stale,
        "busy" => WorkflowState::Busy,
        "stopped" => WorkflowState::Stopped,
        "removed" => WorkflowState::Removed,
        _ => return None,
    })
}

/// A `delta` or `snapshot` frame, its names borrowed from the text when they can be.
#[derive(Clone, Debug, PartialEq)]
pub struct Data<'a> {
    /// The workflow id.
    pub workflow: Cow<'a, str>,
    /// The topic.
    pub topic: Cow<'a, str>,
    /// The suite epoch.
    pub epoch: Cow<'a, str>,
    /// The suite seq.
    pub seq: u64,
    /// The projection hash after applying.
    pub hash: Hash,
    /// For a delta, the seq of the previous message for (workflow, topic), if any;
    /// for a snapshot, `None`.
    pub prev: Option<u64>,
    /// For a delta, the suite's publish time, when known.
    pub time: Option<f64>,
    /// The patch (delta) or the value (snapshot).
    pub body: Value,
}

/// A relay frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Message<'a> {
    /// A `delta`.
    Delta(Data<'a>),
    /// A `snapshot`.
    Snapshot(Data<'a>),
    /// Any other relay message (never `Delta` or `Snapshot`).
    Other(RelayMessage),
}

/// Decodes a relay frame; `None` when it is not a relay message.
pub fn decode(text: &str) -> Option<Message<'_>> {
    let frame = serde_json::from_str::<Frame<'_>>(text).ok()?;
    Some(match &*frame.kind {
        "delta" | "snapshot" => {
            let data = Data {
                workflow: frame.workflow?,
                topic: frame.topic?,
                epoch: frame.epoch?,
                seq: frame.seq?,
                hash: frame.hash?,
                prev: None,
                time: None,
                body: Value::Null,
            };
            if frame.kind == "delta" {
                Message::Delta(Data {
                    prev: frame.prev,
                    time: frame.time,
                    body: frame.patch?,
                    ..data
                })
            } else {
                Message::Snapshot(Data {
                    body: frame.value?,
                    ..data
                })
            }
        }
        "hello" => Message::Other(RelayMessage::Hello {
            protocol: frame.protocol?,
            relay: frame.relay?,
        }),
        "subscribed" => Message::Other(RelayMessage::Subscribed { query: frame.query? }),
        "error" => Message::Other(RelayMessage::Error {
            code: match frame.code.as_deref()? {
                "bad_query" => ClientErrorCode::BadQuery,
                "bad_message" => ClientErrorCode::BadMessage,
                "rate_limited" => ClientErrorCode::RateLimited,
                _ => return None,
            },
            message: frame.message?,
        }),
        "workflow" => Message::Other(RelayMessage::Workflow {
            workflow: frame.workflow?.into_owned(),
            state: workflow_state(frame.state.as_deref()?)?,
            schema: frame.schema,
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general decoder's reading of a frame, in this module's terms.
    fn general(text: &str) -> Option<Message<'static>> {
        Some(match RelayMessage::decode(text).ok()? {
            RelayMessage::Delta {
                workflow,
                topic,
                epoch,
                seq,
                prev,
                hash,
                time,
                patch,
            } => Message::Delta(Data {
                workflow: workflow.into(),
                topic: topic.into(),
                epoch: epoch.into(),
                seq,
                hash,
                prev,
                time,
                body: patch,
            }),
            RelayMessage::Snapshot {
                workflow,
                topic,
                epoch,
                seq,
                hash,
                value,
            } => Message::Snapshot(Data {
                workflow: workflow.into(),
                topic: topic.into(),
                epoch: epoch.into(),
                seq,
                hash,
                prev: None,
                time: None,
                body: value,
            }),
            other => Message::Other(other),
        })
    }

    #[test]
    fn fast_and_general_decoding_agree() {
        let frames = [
            r#"{"type":"delta","workflow":"w","topic":"t","epoch":"e","seq":3,"prev":null,"hash":"0000000000000001","patch":{"a":1}}"#,
            r#"{"type":"delta","workflow":"w","topic":"t","epoch":"e","seq":3,"prev":2,"hash":"0000000000000001","time":1.5,"patch":{"a":null}}"#,
            r#"{"type":"delta","workflow":"w\"x","topic":"t\u00e9","epoch":"e","seq":3,"prev":2,"hash":"0000000000000001","patch":{}}"#,
            r#"{"type":"snapshot","workflow":"w","topic":"t","epoch":"e","seq":3,"hash":"0000000000000000","value":{}}"#,
            r#"{"type":"hello","protocol":"clonewire/1","relay":"r/1"}"#,
            r#"{"type":"workflow","workflow":"w","state":"live","schema":{"collections":[]}}"#,
            r#"{"type":"workflow","workflow":"w","state":"removed"}"#,
            r#"{"type":"subscribed","query":"subscription { workflows(ids: []) }"}"#,
            r#"{"type":"error","code":"bad_query","message":"line 1, column 3: no"}"#,
            r#"{"type":"error","code":"bad_message","message":"?","extra":1}"#,
        ];
        for text in frames {
            assert_eq!(decode(text), general(text), "{text}");
            assert!(decode(text).is_some());
        }
        for bad in [
            "",
            "[]",
            r#"{"type":"delta","workflow":"w"}"#,
            r#"{"type":"delta","workflow":"w","topic":"t","epoch":"e","seq":3,"prev":null,"hash":"XYZ","patch":{}}"#,
            r#"{"type":"error","code":"no_such_code","message":"?"}"#,
            r#"{"type":"workflow","workflow":"w","state":"sleeping"}"#,
            r#"{"type":"hello","protocol":"clonewire/1"}"#,
            r#"{"type":"goodbye"}"#,
        ] {
            assert_eq!(general(bad), None, "{bad}");
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
