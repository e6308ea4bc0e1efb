//! How to follow a suite: where it is, and how the state machine behaves (which
//! topics, deadlines, backoff, queue bounds) plus what only the driver needs.

use std::time::Duration;

use clonewire_zmq::retry::RetryPolicy;
use clonewire_zmq::sockets;

/// How to follow a suite: the endpoints, the [`MachineConfig`] of its state machine,
/// and what only the ZeroMQ driver needs (its intake, CURVE, decoding elsewhere).
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// The suite's PUB endpoint.
    pub sub_endpoint: String,
    /// The suite's REP endpoint.
    pub rep_endpoint: String,
    /// Topics, request deadlines and backoff, and queue bounds.
    pub machine: MachineConfig,
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
    /// Follows every topic as [`MachineConfig::default`] says, with a 64 MiB intake,
    /// and answers of 1 MiB or more decoded off the follower's thread.
    pub fn new(sub_endpoint: impl Into<String>, rep_endpoint: impl Into<String>) -> FollowerConfig {
        FollowerConfig {
            sub_endpoint: sub_endpoint.into(),
            rep_endpoint: rep_endpoint.into(),
            machine: MachineConfig::default(),
            intake_bytes: 64 << 20,
            curve: None,
            decode_elsewhere_bytes: 1 << 20,
        }
    }
}

/// What the sans-IO [`Machine`](super::Machine) is told (no endpoints, no keys).
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// Topics to follow; `None` follows every topic.
    pub topics: Option<Vec<String>>,
    /// Request deadlines and backoff. A timeout backs off too (after `busy`, a
    /// timeout or an error the next request waits), and the deadline grows up to
    /// 16× after timeouts in a row, so a big snapshot that takes longer than
    /// `request_timeout` still gets through; a reply resets it.
    pub retry: RetryPolicy,
    /// Deltas queued per topic while it is being repaired; past it, take a snapshot.
    pub max_queued: usize,
    /// The same bound in body bytes, per topic.
    pub max_queued_bytes: usize,
}

impl Default for MachineConfig {
    /// Every topic, a 5 s request deadline (up to 16×), 100 ms..5 s backoff, 10,000
    /// deltas or 16 MiB queued per topic under repair.
    fn default() -> MachineConfig {
        MachineConfig {
            topics: None,
            retry: RetryPolicy {
                request_timeout: Duration::from_secs(5),
                max_timeout_factor: 16,
                backoff_min: Duration::from_millis(100),
                backoff_max: Duration::from_secs(5),
                backoff_after_timeout: true,
            },
            max_queued: 10_000,
            max_queued_bytes: 16 << 20,
        }
    }
}
