//! What a workflow's views hold, for the relay's `/metrics`.

use super::SubscriptionViews;

impl SubscriptionViews {
    /// Bytes the topics' resume histories hold, as their byte limit counts them.
    pub fn history_bytes(&self) -> usize {
        self.history.values().map(|h| h.bytes()).sum()
    }
}
