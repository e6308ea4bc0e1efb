//! Workflow states (docs/protocol.md, Client link › Workflow states). Their wire names
//! are written once, in [`WorkflowState::as_str`]; serde, the fast decoder, the relay's
//! metrics and the npm module all take them from there.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A workflow's state as the relay sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkflowState {
    /// Joining or repairing.
    Syncing,
    /// Following, heartbeats on time.
    Live,
    /// Heartbeats missed.
    Stale,
    /// The suite answers `busy`.
    Busy,
    /// The suite said goodbye.
    Stopped,
    /// No longer followed by the relay.
    Removed,
}

impl WorkflowState {
    /// Every state, in the order docs/protocol.md lists them.
    pub const ALL: [WorkflowState; 6] = [
        WorkflowState::Syncing,
        WorkflowState::Live,
        WorkflowState::Stale,
        WorkflowState::Busy,
        WorkflowState::Stopped,
        WorkflowState::Removed,
    ];

    /// The wire name: the one place the names are written.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Syncing => "syncing",
            WorkflowState::Live => "live",
            WorkflowState::Stale => "stale",
            WorkflowState::Busy => "busy",
            WorkflowState::Stopped => "stopped",
            WorkflowState::Removed => "removed",
        }
    }

    /// The state with this wire name, if any.
    pub fn from_name(name: &str) -> Option<WorkflowState> {
        WorkflowState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WorkflowState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WorkflowState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = WorkflowState;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a workflow state")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<WorkflowState, E> {
                WorkflowState::from_name(name)
                    .ok_or_else(|| E::custom(format_args!("unknown workflow state {name:?}")))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_by_name_and_through_serde() {
        for state in WorkflowState::ALL {
            assert_eq!(WorkflowState::from_name(state.as_str()), Some(state));
            let text = serde_json::to_string(&state).unwrap();
            assert_eq!(text, format!("\"{state}\""));
            assert_eq!(serde_json::from_str::<WorkflowState>(&text).unwrap(), state);
        }
        assert_eq!(WorkflowState::from_name("sleeping"), None);
        assert!(serde_json::from_str::<WorkflowState>("\"Live\"").is_err());
        assert!(serde_json::from_str::<WorkflowState>("1").is_err());
    }
}
