//! The hash (docs/protocol.md, Hash): a leaf's hash is XXH3-64 over the JCS
//! (RFC 8785) bytes of `path ++ [value]`; a node's hash is the wrapping sum of the
//! leaf hashes beneath it, so a change costs O(changed leaves) to maintain.

use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use twox_hash::XxHash3_64;

/// A 64-bit node, topic or projection hash; 16 lowercase hex digits on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub u64);

impl Hash {
    /// The hash of the empty node.
    pub const EMPTY: Hash = Hash(0);

    /// Adds a leaf hash (or a subtree's hash) to this sum.
    #[must_use]
    pub fn plus(self, other: u64) -> Hash {
        Hash(self.0.wrapping_add(other))
    }

    /// Removes a leaf hash (or a subtree's hash) from this sum.
    #[must_use]
    pub fn minus(self, other: u64) -> Hash {
        Hash(self.0.wrapping_sub(other))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Why a text is not a wire hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a hash is 16 lowercase hex digits, got {0:?}")]
pub struct HashParseError(pub String);

impl FromStr for Hash {
    type Err = HashParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let well_formed = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            return Err(HashParseError(s.chars().take(40).collect()));
        }
        u64::from_str_radix(s, 16)
            .map(Hash)
            .map_err(|_| HashParseError(s.to_owned()))
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Integers up to this magnitude are exact as IEEE doubles, so their JCS form (the
/// ECMAScript number-to-string of the double) is their plain decimal digits.
const EXACT_INTEGER: u64 = 1 << 53;

/// Writes `JCS(path ++ [value])` into `out` without allocating for the common leaves.
/// Strings are escaped exactly as JCS wants by serde_json's compact writer (the same
/// escapes, lowercase `\u00xx`); booleans and exact integers are written directly;
/// other numbers and arrays go through the JCS serializer.
fn write_leaf<P: AsRef<str>>(path: &[P], value: &Value, out: &mut Vec<u8>) {
    out.push(b'[');
    for key in path {
        write_string(key.as_ref(), out);
        out.push(b',');
    }
    match value {
        Value::String(text) => write_string(text, out),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) if n.as_i64().is_some_and(|i| i.unsigned_abs() <= EXACT_INTEGER) => {
            // Checked just above; `unwrap_or` keeps this free of panics.
            let _ = write!(out, "{}", n.as_i64().unwrap_or(0));
        }
        other => {
            // Writing a parsed `Value` into a Vec cannot fail: every number a `Value`
            // holds is finite, and a Vec never refuses bytes.
            let _ = serde_json_canonicalizer::to_writer(other, out);
        }
    }
    out.push(b']');
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    // Serializing a `str` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// The canonical bytes a leaf's hash is taken over: `JCS(path ++ [value])`.
pub fn leaf_bytes<P: AsRef<str>>(path: &[P], value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_leaf(path, value, &mut out);
    out
}

thread_local! {
    /// Reused for every leaf hash: hashing allocates nothing once it has grown.
    static LEAF_BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

/// The leaf hash of `value` at `path` (keys from the suite root, the topic first).
pub fn leaf_hash<P: AsRef<str>>(path: &[P], value: &Value) -> u64 {
    LEAF_BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            write_leaf(path, value, &mut buffer);
            XxHash3_64::oneshot(&buffer)
        }
        // Never nested in practice; stay correct if it were.
        Err(_) => XxHash3_64::oneshot(&leaf_bytes(path, value)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips_and_rejects_bad_text() {
        let h: Hash = "0149f998f8252d36".parse().unwrap();
        assert_eq!(h.to_string(), "0149f998f8252d36");
        assert_eq!(serde_json::to_string(&h).unwrap(), "\"0149f998f8252d36\"");
        for bad in [
            "",
            "0149F998F8252D36",
            "0149f998f8252d3",
            "0149f998f8252d36a",
            "+149f998f8252d36",
        ] {
            assert!(bad.parse::<Hash>().is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<Hash>("12").is_err());
    }

    /// The direct writer gives the bytes of the JCS serializer for every kind of leaf.
    #[test]
    fn leaf_bytes_are_the_jcs_serializers() {
        let path = ["t\u{1}\"\\/\u{7f}é", "k\n\t\u{8}\u{c}\r", "😀"];
        let values = serde_json::json!([
            "plain", "\u{0}\u{1f}\"\\/\u{2028}", true, false, 0, -0.0, 1, -1, 100, 1.5, 1e21, 1e-7,
            9007199254740992i64, 9007199254740993i64, -9007199254740993i64, u64::MAX, i64::MIN,
            123456789012345678u64, [1, "a", {"b": 2, "a": [null]}], []
        ]);
        for value in values.as_array().unwrap() {
            let mut whole: Vec<Value> = path.iter().map(|k| Value::from(*k)).collect();
            whole.push(value.clone());
            let want = serde_json_canonicalizer::to_vec(&whole).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&leaf_bytes(&path, value)),
                String::from_utf8_lossy(&want),
                "{value}"
            );
            assert_eq!(leaf_hash(&path, value), XxHash3_64::oneshot(&want));
        }
    }
}
