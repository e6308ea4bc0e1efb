//! The one place a client's newest subscription for a workflow waits for that
//! workflow's link thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use clonewire_core::protocol::client::ResumePoint;

use crate::workflow::registry::Group;

/// A client's newest subscription for one workflow, waiting for the link thread.
/// A newer `subscribe` replaces what waits here instead of queueing another rebind,
/// so however fast a client churns, its link thread rebinds it at most once per turn.
#[derive(Debug, Default)]
pub struct RebindSlot {
    pending: std::sync::Mutex<Option<PendingRebind>>,
}

/// What a [`RebindSlot`] holds.
#[derive(Debug)]
pub struct PendingRebind {
    /// The subscription (`None`: nothing of this workflow).
    pub group: Option<Arc<Group>>,
    /// What the client holds, when it reconnects.
    pub resume: Option<BTreeMap<String, ResumePoint>>,
}

impl RebindSlot {
    /// Puts the newest subscription in; true when the slot was empty (the link thread
    /// must be told), false when a rebind already waits and now takes this one.
    pub fn put(&self, mut rebind: PendingRebind) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = pending.is_none();
        if let Some(older) = pending.take() {
            // A resume point only matters to the first binding; keep it.
            rebind.resume = rebind.resume.or(older.resume);
        }
        *pending = Some(rebind);
        was_empty
    }

    /// Takes what waits (the link thread's side).
    pub fn take(&self) -> Option<PendingRebind> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
