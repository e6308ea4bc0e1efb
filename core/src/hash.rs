//! The hash of section 2 of the protocol: a leaf's hash is XXH3-64 over the JCS
//! (RFC 8785) bytes of `path ++ [value]`; a node's hash is the wrapping sum of the
//! leaf hashes beneath it, so a change costs O(changed leaves) to maintain.

use std::fmt;
use std::str::FromStr;

use serde::ser::SerializeSeq;
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

/// `path ++ [value]` as one JSON array, serialized without building it.
struct LeafKey<'a, P> {
    path: &'a [P],
    value: &'a Value,
}

impl<P: AsRef<str>> Serialize for LeafKey<'_, P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.path.len() + 1))?;
        for key in self.path {
            seq.serialize_element(key.as_ref())?;
        }
        seq.serialize_element(self.value)?;
        seq.end()
    }
}

/// The canonical bytes a leaf's hash is taken over: `JCS(path ++ [value])`.
pub fn leaf_bytes<P: AsRef<str>>(path: &[P], value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing JSON built from strings and a parsed `Value` into a Vec cannot fail:
    // every number a `Value` holds is finite, and a Vec never refuses bytes.
    let _ = serde_json_canonicalizer::to_writer(&LeafKey { path, value }, &mut out);
    out
}

/// The leaf hash of `value` at `path` (keys from the suite root, the topic first).
pub fn leaf_hash<P: AsRef<str>>(path: &[P], value: &Value) -> u64 {
    XxHash3_64::oneshot(&leaf_bytes(path, value))
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
}
