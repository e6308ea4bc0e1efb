//! A suite's schema: which objects are keyed collections (docs/protocol.md,
//! Data model › Collections and the schema).

use serde::{Deserialize, Serialize};

/// The schema a suite reports in `hello`: collections as path patterns from the suite
/// root, `*` matching any one key, e.g. `[["taskProxies"], ["taskProxies", "*", "outputs"]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// Path patterns of the keyed collections.
    #[serde(default)]
    pub collections: Vec<Vec<String>>,
}

impl Schema {
    /// A schema with these collections.
    pub fn new<I, P, S>(collections: I) -> Schema
    where
        I: IntoIterator<Item = P>,
        P: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Schema {
            collections: collections
                .into_iter()
                .map(|p| p.into_iter().map(Into::into).collect())
                .collect(),
        }
    }

    /// True when the object at `pattern` (keys from the suite root, with `*` at the
    /// levels of collection entries) is a collection.
    pub fn is_collection<S: AsRef<str>>(&self, pattern: &[S]) -> bool {
        self.collections.iter().any(|c| {
            c.len() == pattern.len()
                && c.iter()
                    .zip(pattern)
                    .all(|(want, got)| want == "*" || want == got.as_ref())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_wildcards() {
        let schema = Schema::new([vec!["taskProxies"], vec!["taskProxies", "*", "outputs"]]);
        assert!(schema.is_collection(&["taskProxies"]));
        assert!(schema.is_collection(&["taskProxies", "*", "outputs"]));
        assert!(!schema.is_collection(&["workflow"]));
        assert!(!schema.is_collection(&["taskProxies", "*"]));
        assert!(!schema.is_collection::<&str>(&[]));
    }
}
