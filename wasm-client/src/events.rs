//! What the client tells the page besides view changes: connection status,
//! workflow states and errors.

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::Schema;
use serde::Serialize;

/// The connection's state as the page sees it: the link's status, written in
/// lowercase (`connecting`, `open`, `reconnecting`, `closed`).
pub use clonewire_core::client::LinkStatus as Status;

impl PageEvent {
    /// The listener kind that hears this event: `status`, `workflow` or `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            PageEvent::Status { .. } => "status",
            PageEvent::Workflow { .. } => "workflow",
            PageEvent::Error { .. } => "error",
        }
    }
}

/// An event for the page.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PageEvent {
    /// The connection's state changed.
    Status {
        /// The new state.
        status: Status,
        /// For `reconnecting`: milliseconds until the next attempt.
        #[serde(rename = "delayMs", skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u32>,
    },
    /// A workflow's state (and schema) as the relay reported it.
    Workflow {
        /// The workflow id.
        workflow: String,
        /// Its state.
        state: WorkflowState,
        /// Its schema, if known.
        schema: Option<Schema>,
    },
    /// Something went wrong that the page may want to show (the client carries on).
    Error {
        /// A short machine-readable code, e.g. `bad_query` or `resync_failed`.
        code: String,
        /// For a person.
        message: String,
    },
}
