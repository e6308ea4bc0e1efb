//! The fast paths for `delta` and `snapshot` frames, nearly all of the client link's
//! traffic. They write and read exactly what the serde types of
//! [`RelayMessage`] do (`core/tests/client_wire.rs` checks both directions).
//!
//! - Encoding: the relay projects a change once per view and sends one `delta` per
//!   view. [`delta_head`] writes the part every view shares (type, workflow, topic,
//!   epoch) once; [`delta_text`] adds the per-view numbers and an already serialized
//!   patch, with no `Value` and no second serialization of the patch.
//! - Decoding: [`RelayMessage`] is an internally tagged enum, which serde decodes by
//!   buffering the whole frame (patch included) and decoding it again. [`decode`]
//!   reads any relay frame once into one flat struct, borrowing the workflow, topic
//!   and epoch of `delta` and `snapshot` frames from the text.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::super::command::Outcome;
use super::{ClientErrorCode, RelayMessage, WorkflowState};
use crate::hash::Hash;
use crate::protocol::DecodeError;
use crate::schema::Schema;
use crate::seq::Seq;

/// The start of a `delta` frame, the same for every view of one change:
/// `{"type":"delta","workflow":..,"topic":..,"epoch":..,`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaHead(String);

/// Writes the shared start of the `delta` frames of one change.
pub fn delta_head(workflow: &str, topic: &str, epoch: &str) -> DeltaHead {
    let mut text = String::with_capacity(workflow.len() + topic.len() + epoch.len() + 48);
    text.push_str(r#"{"type":"delta","workflow":"#);
    push_json_str(&mut text, workflow);
    text.push_str(r#","topic":"#);
    push_json_str(&mut text, topic);
    text.push_str(r#","epoch":"#);
    push_json_str(&mut text, epoch);
    text.push(',');
    DeltaHead(text)
}

/// A whole `delta` frame from its head, one view's numbers and the patch, which must
/// be the JSON text of a value (e.g. [`Changes::patch_text`](crate::Changes::patch_text)).
/// With a compact patch the result is byte for byte what [`RelayMessage::to_text`]
/// writes for the same delta.
pub fn delta_text(
    head: &DeltaHead,
    seq: Seq,
    prev: Option<Seq>,
    hash: Hash,
    time: Option<f64>,
    patch: &str,
) -> String {
    let mut text = String::with_capacity(head.0.len() + patch.len() + 96);
    text.push_str(&head.0);
    // Writing to a String cannot fail.
    let _ = write!(text, r#""seq":{seq},"prev":"#);
    match prev {
        Some(prev) => {
            let _ = write!(text, "{prev}");
        }
        None => text.push_str("null"),
    }
    let _ = write!(text, r#","hash":"{hash}""#);
    if let Some(time) = time {
        text.push_str(r#","time":"#);
        // serde_json writes a finite float in its shortest form and NaN or infinity
        // as null, as it does inside `RelayMessage`.
        text.push_str(&serde_json::to_string(&time).unwrap_or_else(|_| "null".into()));
    }
    text.push_str(r#","patch":"#);
    text.push_str(patch);
    text.push('}');
    text
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
fn push_json_str(out: &mut String, s: &str) {
    // A `str` always serializes.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// A string borrowed from the text unless it has escapes. (serde borrows a `Cow`
/// field, but not one inside an `Option`: this newtype is what makes it borrow.)
#[derive(Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

/// Any relay frame's fields, read in one pass.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    workflow: Option<Name<'a>>,
    #[serde(borrow)]
    topic: Option<Name<'a>>,
    #[serde(borrow)]
    epoch: Option<Name<'a>>,
    seq: Option<Seq>,
    #[serde(default)]
    prev: Option<Seq>,
    hash: Option<Hash>,
    time: Option<f64>,
    // `"patch": null` is a patch (as it is to serde's `Value`), not a missing one.
    #[serde(default, deserialize_with = "present")]
    patch: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Value>,
    protocol: Option<String>,
    relay: Option<String>,
    query: Option<String>,
    // Codes and states by name: cheaper in the browser build than serde's enum code.
    #[serde(borrow)]
    code: Option<Name<'a>>,
    message: Option<String>,
    #[serde(borrow)]
    state: Option<Name<'a>>,
    schema: Option<Schema>,
    id: Option<String>,
    command: Option<String>,
    #[serde(borrow)]
    outcome: Option<Name<'a>>,
    retry_ms: Option<u64>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
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
    pub seq: Seq,
    /// The projection hash after applying.
    pub hash: Hash,
    /// For a delta, the seq of the previous message for (workflow, topic), if any;
    /// for a snapshot, `None`.
    pub prev: Option<Seq>,
    /// For a delta, the suite's publish time, when known.
    pub time: Option<f64>,
    /// The patch (delta) or the value (snapshot).
    pub body: Value,
}

/// A decoded relay frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame<'a> {
    /// A `delta`.
    Delta(Data<'a>),
    /// A `snapshot`.
    Snapshot(Data<'a>),
    /// Any other relay message (never `Delta` or `Snapshot`).
    Other(RelayMessage),
}

fn missing(field: &str) -> DecodeError {
    DecodeError {
        what: "relay message",
        reason: format!("missing field `{field}`"),
    }
}

fn unknown(what: &str, name: &str) -> DecodeError {
    DecodeError {
        what: "relay message",
        reason: format!("unknown {what} {:?}", name.chars().take(40).collect::<String>()),
    }
}

/// Decodes a relay frame; it accepts and gives what [`RelayMessage::decode`] does.
pub fn decode(text: &str) -> Result<Frame<'_>, DecodeError> {
    let fields: Fields<'_> = serde_json::from_str(text).map_err(|e| DecodeError {
        what: "relay message",
        reason: e.to_string(),
    })?;
    Ok(match &*fields.kind {
        "delta" | "snapshot" => {
            let data = Data {
                workflow: fields.workflow.ok_or_else(|| missing("workflow"))?.0,
                topic: fields.topic.ok_or_else(|| missing("topic"))?.0,
                epoch: fields.epoch.ok_or_else(|| missing("epoch"))?.0,
                seq: fields.seq.ok_or_else(|| missing("seq"))?,
                hash: fields.hash.ok_or_else(|| missing("hash"))?,
                prev: None,
                time: None,
                body: Value::Null,
            };
            if fields.kind == "delta" {
                Frame::Delta(Data {
                    prev: fields.prev,
                    time: fields.time,
                    body: fields.patch.ok_or_else(|| missing("patch"))?,
                    ..data
                })
            } else {
                Frame::Snapshot(Data {
                    body: fields.value.ok_or_else(|| missing("value"))?,
                    ..data
                })
            }
        }
        "hello" => Frame::Other(RelayMessage::Hello {
            protocol: fields.protocol.ok_or_else(|| missing("protocol"))?,
            relay: fields.relay.ok_or_else(|| missing("relay"))?,
        }),
        "subscribed" => Frame::Other(RelayMessage::Subscribed {
            query: fields.query.ok_or_else(|| missing("query"))?,
        }),
        "error" => Frame::Other(RelayMessage::Error {
            code: {
                let name = fields.code.ok_or_else(|| missing("code"))?.0;
                ClientErrorCode::from_name(&name).ok_or_else(|| unknown("error code", &name))?
            },
            message: fields.message.ok_or_else(|| missing("message"))?,
        }),
        "workflow" => Frame::Other(RelayMessage::Workflow {
            workflow: fields.workflow.ok_or_else(|| missing("workflow"))?.0.into_owned(),
            state: {
                let name = fields.state.ok_or_else(|| missing("state"))?.0;
                WorkflowState::from_name(&name).ok_or_else(|| unknown("workflow state", &name))?
            },
            schema: fields.schema,
        }),
        "command_result" => Frame::Other(RelayMessage::CommandResult {
            id: fields.id.ok_or_else(|| missing("id"))?,
            workflow: fields.workflow.ok_or_else(|| missing("workflow"))?.0.into_owned(),
            command: fields.command.ok_or_else(|| missing("command"))?,
            outcome: {
                let name = fields.outcome.ok_or_else(|| missing("outcome"))?.0;
                Outcome::from_name(&name).ok_or_else(|| unknown("outcome", &name))?
            },
            message: fields.message.ok_or_else(|| missing("message"))?,
            retry_ms: fields.retry_ms,
        }),
        other => return Err(unknown("type", other)),
    })
}

impl Frame<'_> {
    /// The frame's `type` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Delta(_) => "delta",
            Frame::Snapshot(_) => "snapshot",
            Frame::Other(message) => message.kind(),
        }
    }
}

impl From<Frame<'_>> for RelayMessage {
    fn from(frame: Frame<'_>) -> RelayMessage {
        match frame {
            Frame::Delta(d) => RelayMessage::Delta {
                workflow: d.workflow.into_owned(),
                topic: d.topic.into_owned(),
                epoch: d.epoch.into_owned(),
                seq: d.seq,
                prev: d.prev,
                hash: d.hash,
                time: d.time,
                patch: d.body,
            },
            Frame::Snapshot(d) => RelayMessage::Snapshot {
                workflow: d.workflow.into_owned(),
                topic: d.topic.into_owned(),
                epoch: d.epoch.into_owned(),
                seq: d.seq,
                hash: d.hash,
                value: d.body,
            },
            Frame::Other(message) => message,
        }
    }
}

/// Which (workflow, topic) a `delta` or `snapshot` frame is about, reading nothing
/// else into memory: for meters that look at every frame.
pub fn data_topic(text: &str) -> Option<(&'static str, Cow<'_, str>, Cow<'_, str>)> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        workflow: Cow<'a, str>,
        #[serde(borrow)]
        topic: Cow<'a, str>,
    }
    let head: Head<'_> = serde_json::from_str(text).ok()?;
    let kind = match &*head.kind {
        "delta" => "delta",
        "snapshot" => "snapshot",
        _ => return None,
    };
    Some((kind, head.workflow, head.topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(text: &str) {
        let fast = decode(text).map(RelayMessage::from).ok();
        assert_eq!(fast, RelayMessage::decode(text).ok(), "{text}");
    }

    #[test]
    fn fast_and_serde_decoding_agree_on_every_kind() {
        for text in [
            r#"{"type":"delta","workflow":"w","topic":"t","epoch":"e","seq":3,"prev":null,"hash":"0000000000000001","patch":{"a":1}}"#,
            r#"{"type":"delta","workflow":"w","topic":"t","epoch":"e","seq":3,"prev":2,"hash":"0000000000000001","time":1.5,"patch":{"a":null}}"#,
            r#"{"type":"delta","workflow":"w\"x","topic":"t\u00e9","epoch":"e","seq":3,"prev":2,"hash":"0000000000000001","patch":{}}"#,
            r#"{"type":"delta","workflow":"w","topic":"t","epoch":"e","seq":3,"hash":"0000000000000001","patch":null}"#,
            r#"{"type":"snapshot","workflow":"w","topic":"t","epoch":"e","seq":3,"hash":"0000000000000000","value":{}}"#,
            r#"{"type":"hello","protocol":"clonewire/1","relay":"r/1"}"#,
            r#"{"type":"workflow","workflow":"w","state":"live","schema":{"collections":[]}}"#,
            r#"{"type":"workflow","workflow":"w","state":"removed"}"#,
            r#"{"type":"subscribed","query":"subscription { workflows(ids: []) }"}"#,
            r#"{"type":"error","code":"bad_query","message":"line 1, column 3: no"}"#,
            r#"{"type":"error","code":"bad_message","message":"?","extra":1}"#,
        ] {
            assert!(decode(text).is_ok(), "{text}");
            agree(text);
        }
    }

    #[test]
    fn both_refuse_what_is_not_a_relay_message() {
        for bad in [
            "",
            "[]",
            r#"{"type":"delta","workflow":"w"}"#,
            r#"{"type":"delta","workflow":"w","topic":"t","epoch":"e","seq":3,"prev":null,"hash":"XYZ","patch":{}}"#,
            r#"{"type":"snapshot","workflow":"w","topic":"t","epoch":"e","seq":3,"hash":"0000000000000000"}"#,
            r#"{"type":"error","code":"no_such_code","message":"?"}"#,
            r#"{"type":"workflow","workflow":"w","state":"sleeping"}"#,
            r#"{"type":"hello","protocol":"clonewire/1"}"#,
            r#"{"type":"goodbye"}"#,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
            agree(bad);
        }
        let error = decode(r#"{"type":"hello","protocol":"clonewire/1"}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed relay message: missing field `relay`"
        );
    }

    #[test]
    fn names_are_borrowed_from_the_text_when_unescaped() {
        let text = r#"{"type":"snapshot","workflow":"w","topic":"t\n","epoch":"e","seq":1,"hash":"0000000000000000","value":{}}"#;
        let Ok(Frame::Snapshot(data)) = decode(text) else {
            panic!("a snapshot");
        };
        assert!(matches!(data.workflow, Cow::Borrowed("w")));
        assert!(matches!(data.topic, Cow::Owned(_)));
        assert_eq!(data.topic, "t\n");
    }

    #[test]
    fn data_topic_names_only_deltas_and_snapshots() {
        let head = delta_head("w\"1", "t", "e");
        let text = delta_text(&head, Seq::new(1), None, Hash(1), None, "{}");
        let (kind, workflow, topic) = data_topic(&text).expect("a delta");
        assert_eq!((kind, &*workflow, &*topic), ("delta", "w\"1", "t"));
        assert_eq!(
            data_topic(r#"{"type":"workflow","workflow":"w","state":"live"}"#),
            None
        );
        assert_eq!(data_topic("not json"), None);
    }
}
