//! What a driver chooses about the link, where the browser and a relay following
//! another relay deliberately differ. Each choice is one named value, set once in a
//! [`LinkConfig`].

use std::collections::BTreeSet;
use std::time::Duration;

use super::backoff::Backoff;

/// Which message may make the copy of a (workflow, topic) not held yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewCopies {
    /// Any `snapshot` or `delta`, even one that fails its check (the copy then awaits
    /// a snapshot, and shows as such). The browser: its inspector lists every
    /// (workflow, topic) it heard of.
    FromAnyMessage,
    /// Only a message that can start a copy: a snapshot that checks, or a delta with
    /// `prev: null`. A relay following another relay: it serves only data it holds.
    FromStartingMessage,
}

/// The epoch a new copy is in before any message has been applied to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstEpoch {
    /// None yet (`""`): the first message applied sets it.
    Unknown,
    /// The epoch of the message that made the copy.
    OfMessage,
}

/// How copies are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyPolicy {
    /// Which message makes a copy.
    pub new_copies: NewCopies,
    /// The epoch a new copy starts in.
    pub first_epoch: FirstEpoch,
}

/// Which copies the first `subscribe` of a connection offers in `resume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeFrom {
    /// Every verified copy, whatever its epoch (the relay decides per copy).
    EveryVerifiedCopy,
    /// Only the verified copies in their workflow's latest epoch (the epoch of the
    /// last snapshot heard): older ones are void and not served anyway.
    LatestEpochOnly,
}

/// How often `subscribe` may go when the wanted query keeps changing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribePacing {
    /// As soon as the query changes.
    Unpaced,
    /// At most one per interval; a change in between waits for the interval's end
    /// (within the relay's request rate, docs/protocol.md, Client link rules).
    AtMostEvery(Duration),
}

/// Which (workflow, topic)s the link keeps copies of; messages for others are
/// dropped (one just unsubscribed may still be on its way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything the relay sends: the subscription is the only filter.
    Everything,
    /// One workflow, and of it these topics (`None`: all of them).
    Workflow {
        /// The workflow id.
        workflow: String,
        /// The topics kept (`None`: all).
        topics: Option<BTreeSet<String>>,
    },
}

impl Scope {
    /// True when messages about `workflow` are kept.
    pub fn covers_workflow(&self, workflow: &str) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Workflow { workflow: w, .. } => w == workflow,
        }
    }

    /// True when copies of (`workflow`, `topic`) are kept.
    pub fn covers(&self, workflow: &str, topic: &str) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Workflow { workflow: w, topics } => {
                w == workflow && topics.as_ref().is_none_or(|t| t.contains(topic))
            }
        }
    }
}

/// Everything a driver decides about its link, fixed when the link is made.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// How copies are made.
    pub copies: CopyPolicy,
    /// What `resume` offers.
    pub resume: ResumeFrom,
    /// How often `subscribe` may go.
    pub pacing: SubscribePacing,
    /// The compression named in `subscribe` (the driver inflates it), or none.
    pub compression: Option<String>,
    /// Reconnect delays.
    pub backoff: Backoff,
}
