//! Fast decoding of the two frames that make up nearly all traffic, `delta` and
//! `snapshot`. `RelayMessage` is an internally tagged enum, which serde decodes by
//! buffering the whole frame (patch included) before decoding it again; a flat struct
//! reads it once, borrowing the workflow, topic and epoch from the text. Anything
//! else, or anything incomplete, goes to `RelayMessage::decode`.

use std::borrow::Cow;

use clonewire_core::protocol::client::RelayMessage;
use clonewire_core::Hash;
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
    if let Ok(frame) = serde_json::from_str::<Frame<'_>>(text) {
        if let (Some(workflow), Some(topic), Some(epoch), Some(seq), Some(hash)) =
            (frame.workflow, frame.topic, frame.epoch, frame.seq, frame.hash)
        {
            let data = |prev, time, body| Data {
                workflow,
                topic,
                epoch,
                seq,
                hash,
                prev,
                time,
                body,
            };
            match (&*frame.kind, frame.patch, frame.value) {
                ("delta", Some(patch), _) => {
                    return Some(Message::Delta(data(frame.prev, frame.time, patch)))
                }
                ("snapshot", _, Some(value)) => return Some(Message::Snapshot(data(None, None, value))),
                _ => {}
            }
        }
    }
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
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
