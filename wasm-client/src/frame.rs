//! Fast decoding of the two frames that make up nearly all traffic, `delta` and
//! `snapshot`. `RelayMessage` is an internally tagged enum, which serde decodes by
//! buffering the whole frame (patch included) before decoding it again; a flat struct
//! reads it once. Anything else, or anything incomplete, goes to `RelayMessage::decode`.

use clonewire_core::protocol::client::RelayMessage;
use clonewire_core::Hash;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: Box<str>,
    workflow: Option<String>,
    topic: Option<String>,
    epoch: Option<String>,
    seq: Option<u64>,
    #[serde(default)]
    prev: Option<u64>,
    hash: Option<Hash>,
    time: Option<f64>,
    patch: Option<Value>,
    value: Option<Value>,
}

/// Decodes a relay frame; `None` when it is not a relay message.
pub fn decode(text: &str) -> Option<RelayMessage> {
    if let Ok(mut frame) = serde_json::from_str::<Frame>(text) {
        let kind = std::mem::take(&mut frame.kind);
        match (&*kind, frame) {
            (
                "delta",
                Frame {
                    workflow: Some(workflow),
                    topic: Some(topic),
                    epoch: Some(epoch),
                    seq: Some(seq),
                    prev,
                    hash: Some(hash),
                    time,
                    patch: Some(patch),
                    ..
                },
            ) => {
                return Some(RelayMessage::Delta {
                    workflow,
                    topic,
                    epoch,
                    seq,
                    prev,
                    hash,
                    time,
                    patch,
                })
            }
            (
                "snapshot",
                Frame {
                    workflow: Some(workflow),
                    topic: Some(topic),
                    epoch: Some(epoch),
                    seq: Some(seq),
                    hash: Some(hash),
                    value: Some(value),
                    ..
                },
            ) => {
                return Some(RelayMessage::Snapshot {
                    workflow,
                    topic,
                    epoch,
                    seq,
                    hash,
                    value,
                })
            }
            _ => {}
        }
    }
    RelayMessage::decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_and_general_decoding_agree() {
        let frames = [
            r#"{"type":"delta","workflow":"w","topic":"t","epoch":"e","seq":3,"prev":null,"hash":"0000000000000001","patch":{"a":1}}"#,
            r#"{"type":"delta","workflow":"w","topic":"t","epoch":"e","seq":3,"prev":2,"hash":"0000000000000001","time":1.5,"patch":{"a":null}}"#,
            r#"{"type":"snapshot","workflow":"w","topic":"t","epoch":"e","seq":3,"hash":"0000000000000000","value":{}}"#,
            r#"{"type":"hello","protocol":"clonewire/1","relay":"r/1"}"#,
            r#"{"type":"workflow","workflow":"w","state":"live","schema":{"collections":[]}}"#,
        ];
        for text in frames {
            assert_eq!(decode(text), RelayMessage::decode(text).ok(), "{text}");
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
