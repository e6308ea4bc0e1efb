//! Limits on what a subscription may ask for, so one query cannot cost the relay
//! (or a browser) unbounded work.

use serde::{Deserialize, Serialize};

/// Limits checked when a subscription is parsed, and again after a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionLimits {
    /// Longest query text, in bytes.
    pub max_query_bytes: usize,
    /// Deepest nesting of selection sets.
    pub max_depth: usize,
    /// Most fields in the whole selection.
    pub max_fields: usize,
    /// Most ids across all `ids` arguments.
    pub max_ids: usize,
}

impl Default for SubscriptionLimits {
    fn default() -> SubscriptionLimits {
        SubscriptionLimits {
            max_query_bytes: 64 * 1024,
            max_depth: 12,
            max_fields: 2_000,
            max_ids: 10_000,
        }
    }
}
