//! How to follow a suite: where it is, which topics, deadlines, backoff and bounds.

use std::time::Duration;

use clonewire_zmq::sockets;

/// How to follow a suite.
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// The suite's PUB endpoint.
    pub sub_endpoint: String,
    /// The suite's REP endpoint.
    pub rep_endpoint: String,
    /// Topics to follow; `None` follows every topic.
    pub topics: Option<Vec<String>>,
    /// How long a request may take before its socket is discarded and it is retried.
    /// Each timeout in a row doubles it (up to 16×), so a big snapshot that takes
    /// longer than this still gets through; a reply resets it.
    pub request_timeout: Duration,
    /// The first retry delay after `busy`, a timeout or an error; doubles each time.
    pub backoff_min: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// Deltas queued per topic while it is being repaired; past it, take a snapshot.
    pub max_queued: usize,
    /// The same bound in body bytes, per topic.
    pub max_queued_bytes: usize,
    /// PUB messages received and not yet handled, in bytes (plus a small charge per
    /// message for its bookkeeping): the follower reads its SUB socket promptly
    /// (whose own queue is kept short) into this intake, and drops what does not
    /// fit, repairing the gap. So a follower that falls behind its suite holds at
    /// most this much of the stream.
    pub intake_bytes: usize,
    /// Encrypted links to a CURVE suite: its public key and ours. A suite with CURVE
    /// never answers a follower without it (nor one with a wrong server key).
    pub curve: Option<sockets::CurveClient>,
    /// Answers this big or bigger (big snapshots) are decoded, built and hash-checked
    /// on a thread of the follower's own, one at a time, while the stream keeps being
    /// read and the other topics' deltas applied.
    pub decode_elsewhere_bytes: usize,
}

impl FollowerConfig {
    /// Follows every topic, with a 5 s request deadline, 100 ms..5 s backoff, 10,000
    /// deltas or 16 MiB queued per topic under repair, a 64 MiB intake, and answers
    /// of 1 MiB or more decoded off the follower's thread.
    pub fn new(sub_endpoint: impl Into<String>, rep_endpoint: impl Into<String>) -> FollowerConfig {
        FollowerConfig {
            sub_endpoint: sub_endpoint.into(),
            rep_endpoint: rep_endpoint.into(),
            topics: None,
            request_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_queued: 10_000,
            max_queued_bytes: 16 << 20,
            intake_bytes: 64 << 20,
            curve: None,
            decode_elsewhere_bytes: 1 << 20,
        }
    }

    /// The part of the configuration the state machine needs (no endpoints, no keys).
    pub fn machine(&self) -> MachineConfig {
        MachineConfig {
            topics: self.topics.clone(),
            request_timeout: self.request_timeout,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            max_queued: self.max_queued,
            max_queued_bytes: self.max_queued_bytes,
        }
    }
}

/// What the sans-IO [`Machine`](super::Machine) is told: the fields of
/// [`FollowerConfig`] with the same names.
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// Topics to follow; `None` follows every topic.
    pub topics: Option<Vec<String>>,
    /// A request's first deadline (doubled after each timeout in a row, up to 16×).
    pub request_timeout: Duration,
    /// The first retry delay.
    pub backoff_min: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// Deltas queued per topic while it is being repaired; past it, take a snapshot.
    pub max_queued: usize,
    /// The same bound in body bytes, per topic.
    pub max_queued_bytes: usize,
}

impl Default for MachineConfig {
    /// As [`FollowerConfig::new`].
    fn default() -> MachineConfig {
        FollowerConfig::new("", "").machine()
    }
}
