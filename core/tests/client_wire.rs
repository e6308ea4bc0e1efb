//! The client link's two writers and two readers agree: the fast `delta` encoder
//! (what the relay sends) with the serde decoder, and the serde encoder with the fast
//! decoder (what the browser client reads), on random messages of every kind; and the
//! two decoders accept and refuse the same damaged frames.
#![cfg(not(target_arch = "wasm32"))]

use clonewire_core::protocol::client::fast::{self, Frame};
use clonewire_core::protocol::client::{ClientErrorCode, RelayMessage, WorkflowState};
use clonewire_core::protocol::command::Outcome;
use clonewire_core::{Hash, Schema, Seq};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Names with the characters JSON must escape, non-ASCII and plain ones.
fn name() -> impl Strategy<Value = String> {
    "[a-z0-9/_\"\\\\\u{0}-\u{1f}é😀 ]{0,12}"
}

/// Floats that print and parse back exactly (multiples of 1/4 up to 2^50).
fn time() -> impl Strategy<Value = f64> {
    (0u64..1 << 50).prop_map(|n| n as f64 / 4.0)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-(1i64 << 40)..1 << 40).prop_map(|n| Value::from(n as f64 / 8.0)),
        name().prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(name(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn patch() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(name(), json(), 0..5).prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn hash() -> impl Strategy<Value = Hash> {
    any::<u64>().prop_map(Hash)
}

fn seq() -> impl Strategy<Value = Seq> {
    any::<u64>().prop_map(Seq::new)
}

fn delta() -> impl Strategy<Value = RelayMessage> {
    (
        (name(), name(), name()),
        (seq(), prop::option::of(seq()), hash()),
        prop::option::of(time()),
        patch(),
    )
        .prop_map(
            |((workflow, topic, epoch), (seq, prev, hash), time, patch)| RelayMessage::Delta {
                workflow,
                topic,
                epoch,
                seq,
                prev,
                hash,
                time,
                patch,
            },
        )
}

fn message() -> impl Strategy<Value = RelayMessage> {
    let state = prop::sample::select(WorkflowState::ALL.to_vec());
    let code = prop::sample::select(vec![
        ClientErrorCode::BadQuery,
        ClientErrorCode::BadMessage,
        ClientErrorCode::RateLimited,
    ]);
    let schema = prop::option::of(
        prop::collection::vec(prop::collection::vec(name(), 1..3), 0..3).prop_map(Schema::new),
    );
    prop_oneof![
        delta(),
        ((name(), name(), name()), seq(), hash(), patch()).prop_map(
            |((workflow, topic, epoch), seq, hash, value)| RelayMessage::Snapshot {
                workflow,
                topic,
                epoch,
                seq,
                hash,
                value,
            }
        ),
        (name(), name()).prop_map(|(protocol, relay)| RelayMessage::Hello { protocol, relay }),
        name().prop_map(|query| RelayMessage::Subscribed { query }),
        (code, name()).prop_map(|(code, message)| RelayMessage::Error { code, message }),
        (name(), state, schema).prop_map(|(workflow, state, schema)| RelayMessage::Workflow {
            workflow,
            state,
            schema,
        }),
        (
            (name(), name(), name(), name()),
            prop::sample::select(Outcome::ALL.to_vec()),
            prop::option::of(0u64..100_000),
        )
            .prop_map(|((id, workflow, command, message), outcome, retry_ms)| {
                RelayMessage::CommandResult {
                    id,
                    workflow,
                    command,
                    outcome,
                    message,
                    retry_ms,
                }
            }),
    ]
}

/// The fast encoder's text for a `delta`.
fn fast_text(message: &RelayMessage) -> String {
    let RelayMessage::Delta {
        workflow,
        topic,
        epoch,
        seq,
        prev,
        hash,
        time,
        patch,
    } = message
    else {
        unreachable!("only deltas have a fast encoder");
    };
    let head = fast::delta_head(workflow, topic, epoch);
    fast::delta_text(&head, *seq, *prev, *hash, *time, &patch.to_string())
}

/// A way to damage one field of a frame: drop it, or give it a value of another kind.
#[derive(Clone, Debug)]
enum Damage {
    Drop,
    Replace(Value),
}

fn damage() -> impl Strategy<Value = (prop::sample::Index, Damage)> {
    let other = prop_oneof![
        Just(Value::Null),
        Just(Value::from(-1)),
        Just(Value::from(1.5)),
        Just(Value::from("x")),
        Just(Value::from("live")),
        Just(Value::from("0000000000000000")),
        Just(Value::Array(vec![])),
        Just(serde_json::json!({})),
    ];
    (
        any::<prop::sample::Index>(),
        prop_oneof![Just(Damage::Drop), other.prop_map(Damage::Replace)],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The relay's fast `delta` text is exactly serde's, and serde reads it back.
    #[test]
    fn fast_encoder_and_serde_decoder_agree(message in delta()) {
        let text = fast_text(&message);
        prop_assert_eq!(&text, &message.to_text());
        prop_assert_eq!(RelayMessage::decode(&text).ok(), Some(message.clone()));
        // And so does the fast decoder, for good measure.
        prop_assert_eq!(fast::decode(&text).ok().map(RelayMessage::from), Some(message));
    }

    /// Whatever serde writes, the fast decoder reads back as the same message.
    #[test]
    fn serde_encoder_and_fast_decoder_agree(message in message()) {
        let text = message.to_text();
        let frame = fast::decode(&text);
        prop_assert!(frame.is_ok(), "{:?}: {}", frame, text);
        let frame = frame.unwrap();
        prop_assert_eq!(frame.kind(), message.kind());
        prop_assert_eq!(
            matches!(frame, Frame::Delta(_) | Frame::Snapshot(_)),
            matches!(message, RelayMessage::Delta { .. } | RelayMessage::Snapshot { .. })
        );
        prop_assert_eq!(RelayMessage::from(frame), message);
    }

    /// A frame with one of its own fields dropped or of the wrong kind is refused by
    /// both decoders, or read the same by both.
    #[test]
    fn decoders_agree_on_damaged_frames(message in message(), (at, damage) in damage()) {
        let Value::Object(mut fields) = serde_json::to_value(&message).unwrap() else {
            unreachable!("every message is an object");
        };
        let key = fields.keys().nth(at.index(fields.len())).cloned().unwrap();
        match damage {
            Damage::Drop => {
                fields.remove(&key);
            }
            Damage::Replace(value) => {
                fields.insert(key, value);
            }
        }
        let text = Value::Object(fields).to_string();
        let fast = fast::decode(&text).map(RelayMessage::from).ok();
        prop_assert_eq!(fast, RelayMessage::decode(&text).ok(), "{}", text);
    }
}
