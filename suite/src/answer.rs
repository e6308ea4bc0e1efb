//! What the REP socket answers (docs/protocol.md, Suite link › Requests), as pure functions of a
//! [`ServedState`] (the REP side's copy of the store): no sockets, no threads, so every reply is unit-testable.
//!
//! Decisions where the protocol is silent:
//! - a topic asked for by `snapshot`/`verify` that holds nothing is reported at its
//!   seq (0 if never published) with hash `0000000000000000` and value `{}`;
//! - an op that is not in the protocol is `unsupported` (a newer requester probing
//!   learns it is missing); a known op with missing, mistyped or unknown fields is
//!   `bad_request`, naming the field;
//! - `replay` from 0 or from past the latest seq + 1 is `bad_request`; from latest + 1
//!   is an empty list;
//! - `hashes` at a missing path reports hash 0 and no children; at a leaf, its hash
//!   and no children.

use std::collections::BTreeMap;

use clonewire_core::protocol::command::{Command, Outcome};
use clonewire_core::protocol::suite::{
    CommandReply, ErrorCode, ErrorReply, GetReply, HashesReply, HelloReply, ReplayReply, ReplayedDelta,
    Request, TopicState, VerifyReply,
};
use clonewire_core::protocol::{encode, PROTOCOL};
use clonewire_core::{Document, Hash, Node, Object, Schema, Seq};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::commands::Commands;
use crate::history::{History, ReplayError};

/// Ops the protocol defines; anything else is `unsupported`.
const KNOWN_OPS: [&str; 7] = [
    "hello", "snapshot", "verify", "replay", "hashes", "get", "command",
];
/// The most paths one `get` may ask for.
const MAX_GET_PATHS: usize = 10_000;

/// The store as the REP side sees it: a copy kept up to date from the published
/// deltas, with the history behind `replay`.
pub struct ServedState {
    /// The suite's name, for `hello`.
    pub name: String,
    /// The heartbeat interval, for `hello`.
    pub heartbeat_ms: u64,
    /// Which objects are collections, for `hello`.
    pub schema: Schema,
    /// The epoch the copy belongs to.
    pub epoch: String,
    /// Topic values.
    pub document: Document,
    /// Latest seq per topic (topics that were emptied keep theirs).
    pub seqs: BTreeMap<String, Seq>,
    /// Recent deltas per topic.
    pub history: History,
    /// What the suite does with commands, if it takes any.
    pub commands: Option<Commands>,
}

impl ServedState {
    fn state(&self, topic: &str) -> TopicState {
        TopicState {
            seq: self.seqs.get(topic).copied().unwrap_or_default(),
            hash: self.document.topic(topic).map_or(Hash::EMPTY, |t| t.hash()),
        }
    }

    /// The topics a request names, or every topic that has ever been published.
    fn topics_or_all<'a>(&'a self, topics: &'a Option<Vec<String>>) -> Vec<&'a str> {
        match topics {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => self.seqs.keys().map(String::as_str).collect(),
        }
    }
}

/// The reply to `busy` requests.
pub fn busy(retry_ms: u64) -> Vec<u8> {
    encode(&ErrorReply {
        error: ErrorCode::Busy,
        message: "the suite is busy; try again later".into(),
        retry_ms: Some(retry_ms),
    })
}

/// A `bad_request` reply with a message.
pub fn bad_request(message: impl Into<String>) -> Vec<u8> {
    encode(&ErrorReply::new(ErrorCode::BadRequest, message))
}

/// Decodes a request, or says why it cannot be answered.
pub fn parse(bytes: &[u8]) -> Result<Request, ErrorReply> {
    let bad = |m: String| ErrorReply::new(ErrorCode::BadRequest, m);
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("request is not JSON: {e}")))?;
    let op = match value.get("op") {
        _ if !value.is_object() => {
            return Err(bad(r#"a request is a JSON object such as {"op": "hello"}"#.into()))
        }
        None => return Err(bad(r#"the request has no "op""#.into())),
        Some(Value::String(op)) => op.clone(),
        Some(other) => return Err(bad(format!(r#""op" must be a string, got {other}"#))),
    };
    if !KNOWN_OPS.contains(&op.as_str()) {
        let shown: String = op.chars().take(40).collect();
        return Err(ErrorReply::new(
            ErrorCode::Unsupported,
            format!(
                "unknown op {shown:?}; this suite answers {}",
                KNOWN_OPS.join(", ")
            ),
        ));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("bad {op} request: {e}")))
}

/// The reply to one request frame.
pub fn answer(replica: &ServedState, request: &[u8]) -> Vec<u8> {
    match parse(request) {
        Ok(request) => answer_request(replica, &request),
        Err(error) => encode(&error),
    }
}

/// The reply to a decoded request.
pub fn answer_request(replica: &ServedState, request: &Request) -> Vec<u8> {
    match request {
        Request::Hello => encode(&HelloReply {
            protocol: PROTOCOL.into(),
            name: replica.name.clone(),
            epoch: replica.epoch.clone(),
            heartbeat_ms: replica.heartbeat_ms,
            schema: replica.schema.clone(),
            topics: replica
                .seqs
                .keys()
                .map(|t| (t.clone(), replica.state(t)))
                .collect(),
        }),
        Request::Snapshot { topics } => snapshot(replica, &replica.topics_or_all(topics)),
        Request::Verify { topics } => encode(&VerifyReply {
            epoch: replica.epoch.clone(),
            topics: replica
                .topics_or_all(topics)
                .into_iter()
                .map(|t| (t.to_owned(), replica.state(t)))
                .collect(),
        }),
        Request::Replay { topic, from } => replay(replica, topic, *from),
        Request::Hashes { topic, path } => hashes(replica, topic, path),
        Request::Get { topic, paths } => get(replica, topic, paths),
        Request::Command { command, args, user } => run_command(replica, command, args, user.as_deref()),
    }
}

/// A `command`: checked against the protocol's table, then handed to the suite.
fn run_command(replica: &ServedState, name: &str, args: &Value, user: Option<&str>) -> Vec<u8> {
    let Some(Commands(handler)) = &replica.commands else {
        return encode(&ErrorReply::new(
            ErrorCode::Unsupported,
            "this suite takes no commands",
        ));
    };
    let reply = match Command::check(name, args) {
        Err(why) => Ok(CommandReply {
            outcome: Outcome::Refused,
            message: why,
        }),
        Ok(command) => handler.command(&command, user, &replica.document),
    };
    let shown: String = name.chars().take(40).collect();
    match reply {
        Ok(reply) => {
            tracing::info!(command = %shown, user = user.unwrap_or("?"), outcome = reply.outcome.as_str(), message = %reply.message, "command");
            encode(&reply)
        }
        Err(error) => {
            tracing::info!(command = %shown, user = user.unwrap_or("?"), error = ?error.error, "command not taken");
            encode(&error)
        }
    }
}

/// A snapshot reply serialized straight from the store, without first copying each
/// topic into a `serde_json::Value` (a snapshot of a large topic is the biggest
/// reply there is). Same fields as [`SnapshotReply`](clonewire_core::protocol::suite::SnapshotReply).
fn snapshot(replica: &ServedState, topics: &[&str]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Reply<'a> {
        epoch: &'a str,
        topics: BTreeMap<&'a str, Entry<'a>>,
    }
    #[derive(Serialize)]
    struct Entry<'a> {
        seq: Seq,
        hash: Hash,
        value: TopicValue<'a>,
    }
    struct TopicValue<'a>(Option<&'a Object>);
    impl Serialize for TopicValue<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Some(object) => object.serialize(serializer),
                None => serializer.collect_map(std::iter::empty::<(&str, &str)>()),
            }
        }
    }
    let reply = Reply {
        epoch: &replica.epoch,
        topics: topics
            .iter()
            .map(|&name| {
                let state = replica.state(name);
                let value = TopicValue(replica.document.topic(name).map(|t| t.root()));
                (
                    name,
                    Entry {
                        seq: state.seq,
                        hash: state.hash,
                        value,
                    },
                )
            })
            .collect(),
    };
    encode(&reply)
}

fn replay(replica: &ServedState, topic: &str, from: Seq) -> Vec<u8> {
    if from == Seq::ZERO {
        return bad_request("replay: seqs start at 1");
    }
    let latest = replica.state(topic).seq;
    match replica.history.since(topic, from, latest) {
        Ok(records) => encode(&ReplayReply {
            epoch: replica.epoch.clone(),
            deltas: records
                .iter()
                .map(|r| ReplayedDelta {
                    seq: r.seq,
                    hash: r.hash,
                    time: r.time,
                    patch: &*r.patch,
                })
                .collect(),
        }),
        Err(ReplayError::Gone { oldest }) => {
            let kept = oldest.map_or_else(
                || "no history is kept".to_owned(),
                |o| format!("history starts at {o}"),
            );
            encode(&ErrorReply::new(
                ErrorCode::Gone,
                format!("replay of {topic:?} from {from}: {kept}; take a snapshot"),
            ))
        }
        Err(ReplayError::Ahead { latest }) => bad_request(format!(
            "replay of {topic:?} from {from}: the latest seq is {latest}"
        )),
    }
}

fn hashes(replica: &ServedState, topic: &str, path: &[String]) -> Vec<u8> {
    let state = replica.state(topic);
    let stored = replica.document.topic(topic);
    let (hash, children) = match stored {
        None => (Hash::EMPTY, BTreeMap::new()),
        Some(t) if path.is_empty() => (t.hash(), children_of(t.root())),
        Some(t) => match t.at(path) {
            None => (Hash::EMPTY, BTreeMap::new()),
            Some(Node::Leaf(leaf)) => (Hash(leaf.hash), BTreeMap::new()),
            Some(Node::Object(object)) => (object.hash(), children_of(object)),
        },
    };
    encode(&HashesReply {
        epoch: replica.epoch.clone(),
        seq: state.seq,
        hash,
        children,
    })
}

fn children_of(object: &Object) -> BTreeMap<String, Hash> {
    object
        .iter()
        .map(|(k, node)| (k.to_owned(), Hash(node.hash())))
        .collect()
}

fn get(replica: &ServedState, topic: &str, paths: &[Vec<String>]) -> Vec<u8> {
    if paths.len() > MAX_GET_PATHS {
        return bad_request(format!("get: at most {MAX_GET_PATHS} paths per request"));
    }
    let stored = replica.document.topic(topic);
    let values = paths
        .iter()
        .map(|path| match stored {
            None => Value::Null,
            Some(t) if path.is_empty() => t.to_value(),
            Some(t) => t.at(path).map_or(Value::Null, Node::to_value),
        })
        .collect();
    encode(&GetReply {
        epoch: replica.epoch.clone(),
        seq: replica.state(topic).seq,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{HistoryLimits, Record};
    use serde_json::json;
    use std::sync::Arc;

    fn replica() -> ServedState {
        let mut document = Document::new();
        let patch = json!({"1/foo": {"status": "running", "name": "foo"}, "1/bar": {"status": "waiting"}});
        document.apply("taskProxies", &patch).unwrap();
        let mut history = History::new(HistoryLimits::default());
        let hash = document.topic("taskProxies").unwrap().hash();
        history.push(
            "taskProxies",
            Arc::new(Record::new(Seq::new(1), hash, Some(1.5), &patch)),
        );
        ServedState {
            name: "demo".into(),
            heartbeat_ms: 1000,
            schema: Schema::new([vec!["taskProxies"]]),
            epoch: "e1".into(),
            document,
            seqs: [("taskProxies".to_owned(), Seq::new(1))].into(),
            history,
            commands: None,
        }
    }

    fn ask(request: Value) -> Value {
        serde_json::from_slice(&answer(&replica(), request.to_string().as_bytes())).unwrap()
    }

    #[test]
    fn hello_and_snapshot_carry_the_protocol_vector_hash() {
        let hello = ask(json!({"op": "hello"}));
        assert_eq!(hello["protocol"], "clonewire/1");
        assert_eq!(
            hello["topics"]["taskProxies"],
            json!({"seq": 1, "hash": "0149f998f8252d36"})
        );
        assert_eq!(hello["schema"], json!({"collections": [["taskProxies"]]}));
        let snap = ask(json!({"op": "snapshot"}));
        assert_eq!(snap["topics"]["taskProxies"]["hash"], "0149f998f8252d36");
        assert_eq!(
            snap["topics"]["taskProxies"]["value"]["1/bar"],
            json!({"status": "waiting"})
        );
        let empty = ask(json!({"op": "snapshot", "topics": ["jobs"]}));
        assert_eq!(
            empty["topics"]["jobs"],
            json!({"seq": 0, "hash": "0000000000000000", "value": {}})
        );
    }

    #[test]
    fn replay_hashes_and_get_answer_from_the_store() {
        assert_eq!(
            ask(json!({"op": "replay", "topic": "taskProxies", "from": 1}))["deltas"][0]["seq"],
            1
        );
        assert_eq!(
            ask(json!({"op": "replay", "topic": "taskProxies", "from": 2}))["deltas"],
            json!([])
        );
        assert_eq!(
            ask(json!({"op": "replay", "topic": "jobs", "from": 1}))["deltas"],
            json!([])
        );
        assert_eq!(
            ask(json!({"op": "replay", "topic": "taskProxies", "from": 0}))["error"],
            "bad_request"
        );
        let hashes = ask(json!({"op": "hashes", "topic": "taskProxies", "path": []}));
        assert_eq!(hashes["hash"], "0149f998f8252d36");
        assert_eq!(hashes["children"].as_object().unwrap().len(), 2);
        let got = ask(json!({"op": "get", "topic": "taskProxies", "paths": [["1/foo", "status"], ["nope"]]}));
        assert_eq!(got["values"], json!(["running", null]));
    }

    #[test]
    fn malformed_requests_get_clear_errors() {
        for (request, code, says) in [
            ("not json", "bad_request", "not JSON"),
            ("[1]", "bad_request", "JSON object"),
            ("{}", "bad_request", "no \"op\""),
            (r#"{"op": 7}"#, "bad_request", "must be a string"),
            (r#"{"op": "frobnicate"}"#, "unsupported", "frobnicate"),
            (r#"{"op": "replay", "topic": "t"}"#, "bad_request", "from"),
            (r#"{"op": "snapshot", "topic": ["t"]}"#, "bad_request", "topic"),
        ] {
            let reply: Value = serde_json::from_slice(&answer(&replica(), request.as_bytes())).unwrap();
            assert_eq!(reply["error"], code, "{request}");
            assert!(
                reply["message"].as_str().unwrap().contains(says),
                "{request}: {reply}"
            );
        }
    }
}
