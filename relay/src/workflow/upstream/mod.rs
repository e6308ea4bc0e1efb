//! What a workflow's link thread follows: one [`Upstream`] per workflow, which keeps
//! replicas of the workflow's topics and says what changed in them.
//!
//! The link thread ([`crate::workflow::link`]) is the only caller, from its own thread. Its
//! loop is: when [`Upstream::has_pending_events`] is false, the replicas reflect every
//! event handed out, so the views may read them (through [`Upstream::topic`] and
//! friends) and clients' commands are served, which may call
//! [`Upstream::set_topics`]; then [`Upstream::next_event`] waits for the next event (or a
//! wake-up: the link thread has commands); every 100 ms while clients watch the
//! workflow, every second while none do, [`Upstream::state`] is asked what clients
//! should be told.
//!
//! Implementations: [`clonewire`] (a clonewire suite, through
//! [`clonewire_suite::Follower`]), [`cylc`] (a running Cylc 8 workflow) and
//! [`relay`] (a workflow of another clonewire relay, for relay tiers). Another
//! kind of upstream only has to keep replicas as [`clonewire_core::Topic`]s and
//! report their changes as leaves.

pub mod clonewire;
pub mod cylc;
pub mod upper;

use std::collections::BTreeSet;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::{Changes, Schema, Seq, Subscription, Topic};

/// An upstream's error: the link thread only logs it and retries a little later.
pub type UpstreamError = Box<dyn std::error::Error + Send + Sync>;

/// Where a topic's change came from; the views treat all alike, metrics do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// One new delta from the stream (or from a replay), applied and verified.
    Delta,
    /// The replica was replaced or put right (join, snapshot, repair).
    Reset,
    /// A delta applied whose result did not verify; a repair follows. Clients follow
    /// the replica exactly, so they get it too.
    Unverified,
}

/// What went wrong upstream, for the `suite_problems` metric and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Messages were missed.
    Gap,
    /// A replica's hash differed from the upstream's.
    Mismatch,
    /// The upstream asked us to come back later.
    Busy,
    /// A request got no answer in time.
    Timeout,
    /// The upstream refused a request.
    Refused,
    /// A message or reply could not be understood.
    Malformed,
}

impl Problem {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Gap => "gap",
            Problem::Mismatch => "mismatch",
            Problem::Busy => "busy",
            Problem::Timeout => "timeout",
            Problem::Refused => "refused",
            Problem::Malformed => "malformed",
        }
    }

    /// Worth a warning in the logs (the others are routine and logged at debug).
    pub fn is_serious(self) -> bool {
        matches!(self, Problem::Mismatch | Problem::Refused | Problem::Malformed)
    }
}

/// Something the link thread acts on, in the order it happened upstream.
#[derive(Clone, Debug)]
pub enum UpstreamEvent {
    /// A topic's replica changed from seq `prev` to `seq`; `changes` are its leaves
    /// that changed. The replica already holds the change.
    Changed {
        /// The topic.
        topic: String,
        /// The seq before.
        prev: Seq,
        /// The seq now.
        seq: Seq,
        /// The leaves that changed.
        changes: Changes,
        /// The upstream's publish time (Unix ms), if it said.
        time: Option<f64>,
        /// Where it came from.
        kind: ChangeKind,
    },
    /// Joined (or re-joined) the workflow: every followed topic has been fetched, and
    /// [`Upstream::schema`] may have changed.
    Joined {
        /// For the logs.
        detail: String,
    },
    /// The workflow restarted: replicas start afresh; what clients hold is void.
    NewEpoch {
        /// The new epoch.
        epoch: String,
    },
    /// A topic is trusted again after a problem.
    Repaired {
        /// The topic.
        topic: String,
        /// Its seq now.
        seq: Seq,
        /// How (the `repairs` metric label: "replay", "hashes", "snapshot"...).
        how: &'static str,
    },
    /// Something went wrong; it is being dealt with.
    Problem {
        /// What.
        kind: Problem,
        /// For the logs.
        detail: String,
    },
    /// Worth an info line in the logs, nothing else (goodbye, silence...).
    Notice {
        /// For the logs.
        detail: String,
    },
}

/// One followed workflow: its replicas, and a stream of what changed in them.
pub trait Upstream {
    /// Does the work that is due (receive, apply, request, repair) and returns the next
    /// event, or `None` if none came within `max_wait` or `wake` became readable first
    /// (the link thread has commands to serve). The link thread calls it in a loop
    /// and waits here when idle, so it must wait on its sockets, its own deadlines and
    /// `wake` together, never on a fixed tick.
    fn next_event(
        &mut self,
        max_wait: Duration,
        wake: BorrowedFd<'_>,
    ) -> Result<Option<UpstreamEvent>, UpstreamError>;

    /// True while events are waiting to be handed out: the replicas already include
    /// their changes, so the views must not read the replicas until this is false.
    fn has_pending_events(&self) -> bool;

    /// What clients should be told about the workflow now. Asked every 100 ms while
    /// clients watch the workflow, every second while none do.
    fn state(&self, now: Instant) -> WorkflowState;

    /// The epoch followed (the workflow's run), once known.
    fn epoch(&self) -> Option<&str>;

    /// The workflow's schema (empty until known); read after [`UpstreamEvent::Joined`].
    fn schema(&self) -> &Schema;

    /// A followed topic's replica and seq.
    fn topic(&self, name: &str) -> Option<(&Topic, Seq)>;

    /// The names of the topics followed now.
    fn topic_names(&self) -> Vec<String>;

    /// Follows exactly these topics from now on (`None`: every topic). A newly
    /// followed topic arrives as a [`ChangeKind::Reset`]; a dropped one goes silently
    /// (the link thread tells its views). Called when clients' subscriptions change.
    fn set_topics(&mut self, topics: Option<BTreeSet<String>>) -> Result<(), UpstreamError>;

    /// True for an upstream that can follow less than whole topics (another relay):
    /// the link thread then gives it [`Upstream::set_selection`]. Suites follow whole
    /// topics, so the selection is not even merged for them.
    fn follows_selections(&self) -> bool {
        false
    }

    /// The merged selection of every view of the workflow (their clients' needs), given
    /// just before [`Upstream::set_topics`] whenever it may have changed, when
    /// [`Upstream::follows_selections`].
    fn set_selection(&mut self, _selection: &Subscription) {}
}
