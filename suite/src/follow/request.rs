//! The one request a follower has out at a time: what it asks, its deadline (which
//! grows after timeouts in a row), and the backoff before the next one.

use std::time::{Duration, Instant};

use clonewire_core::protocol::suite::{
    decode_reply, GetReply, HashesReply, HelloReply, ReplayReply, Request, SnapshotReply,
};
use clonewire_core::protocol::DecodeError;
use clonewire_core::{Hash, Seq};

use super::arrived::BuiltSnapshot;

/// How far the request deadline may grow after timeouts in a row.
const MAX_TIMEOUT_FACTOR: u32 = 16;

/// A request, with what the follower needs to remember to use its answer.
#[derive(Clone, Debug)]
pub(super) enum Pending {
    Hello,
    Snapshot {
        topics: Option<Vec<String>>,
    },
    Replay {
        topic: String,
        from: Seq,
    },
    Hashes {
        topic: String,
    },
    Get {
        topic: String,
        seq: Seq,
        hash: Hash,
        keys: Vec<String>,
    },
}

impl Pending {
    /// What goes on the wire.
    pub(super) fn request(&self) -> Request {
        match self {
            Pending::Hello => Request::Hello,
            Pending::Snapshot { topics } => Request::Snapshot {
                topics: topics.clone(),
            },
            Pending::Replay { topic, from } => Request::Replay {
                topic: topic.clone(),
                from: *from,
            },
            Pending::Hashes { topic } => Request::Hashes {
                topic: topic.clone(),
                path: Vec::new(),
            },
            Pending::Get { topic, keys, .. } => Request::Get {
                topic: topic.clone(),
                paths: keys.iter().map(|k| vec![k.clone()]).collect(),
            },
        }
    }

    /// Decodes the answer to this request: a reply, an error reply, or garbage.
    pub(super) fn decode(
        &self,
        bytes: &[u8],
    ) -> Result<Result<Reply, clonewire_core::protocol::suite::ErrorReply>, DecodeError> {
        match self {
            Pending::Hello => decode_reply::<HelloReply>("hello reply", bytes).map(|r| r.map(Reply::Hello)),
            Pending::Snapshot { .. } => {
                decode_reply::<SnapshotReply>("snapshot reply", bytes).map(|r| r.map(Reply::Snapshot))
            }
            Pending::Replay { .. } => {
                decode_reply::<ReplayReply>("replay reply", bytes).map(|r| r.map(Reply::Replay))
            }
            Pending::Hashes { .. } => {
                decode_reply::<HashesReply>("hashes reply", bytes).map(|r| r.map(Reply::Hashes))
            }
            Pending::Get { .. } => decode_reply::<GetReply>("get reply", bytes).map(|r| r.map(Reply::Get)),
        }
    }
}

/// A successful answer.
pub(super) enum Reply {
    Hello(HelloReply),
    /// As decoded; [`ArrivedReply::decode`](super::arrived::ArrivedReply::decode) builds it into [`Reply::Built`].
    Snapshot(SnapshotReply),
    Built(BuiltSnapshot),
    Replay(ReplayReply),
    Hashes(HashesReply),
    Get(GetReply),
}

impl Reply {
    /// The epoch it answers for.
    pub(super) fn epoch(&self) -> &str {
        match self {
            Reply::Hello(r) => &r.epoch,
            Reply::Snapshot(r) => &r.epoch,
            Reply::Built(r) => &r.epoch,
            Reply::Replay(r) => &r.epoch,
            Reply::Hashes(r) => &r.epoch,
            Reply::Get(r) => &r.epoch,
        }
    }
}

/// A request sent and not answered yet.
pub(super) struct InFlight {
    pub(super) pending: Pending,
    /// The request's op name, for logs.
    pub(super) op: &'static str,
    pub(super) deadline: Instant,
}

/// Where the request slot stands.
enum Slot {
    /// Nothing out; the next request may go.
    Idle,
    /// Nothing out; the next request waits until then (after `busy`, a timeout or
    /// an error).
    BackingOff { until: Instant },
    /// A request is out.
    Out(InFlight),
    /// Its answer has arrived and is being decoded elsewhere (see
    /// [`Requests::arrived`]): no deadline runs, and the next request waits for it.
    Decoding,
}

/// The request slot, its deadlines and its backoff.
pub(super) struct Requests {
    slot: Slot,
    timeout: Duration,
    /// The deadline's multiplier: doubles on each timeout, 1 after a reply.
    timeout_factor: u32,
    backoff_min: Duration,
    backoff_max: Duration,
    /// The next backoff delay.
    backoff: Duration,
}

impl Requests {
    pub(super) fn new(timeout: Duration, backoff_min: Duration, backoff_max: Duration) -> Requests {
        Requests {
            slot: Slot::Idle,
            timeout,
            timeout_factor: 1,
            backoff_min,
            backoff_max,
            backoff: backoff_min,
        }
    }

    /// True when a new request may be sent at `now` (a backoff that is over ends).
    pub(super) fn ready(&mut self, now: Instant) -> bool {
        match &self.slot {
            Slot::Idle => true,
            Slot::BackingOff { until } if now >= *until => {
                self.slot = Slot::Idle;
                true
            }
            _ => false,
        }
    }

    /// `pending` was handed out to be sent at `now`; returns what goes on the wire.
    pub(super) fn send(&mut self, pending: Pending, now: Instant) -> Request {
        let request = pending.request();
        self.slot = Slot::Out(InFlight {
            pending,
            op: request.op(),
            deadline: now + self.timeout * self.timeout_factor,
        });
        request
    }

    /// The request out, if any.
    pub(super) fn in_flight(&self) -> Option<&InFlight> {
        match &self.slot {
            Slot::Out(inflight) => Some(inflight),
            _ => None,
        }
    }

    /// The request out has its answer: it is no longer out, and deadlines go back to
    /// normal (the suite answers).
    pub(super) fn answered(&mut self) -> Option<InFlight> {
        match std::mem::replace(&mut self.slot, Slot::Idle) {
            Slot::Out(inflight) => {
                self.timeout_factor = 1;
                Some(inflight)
            }
            other => {
                self.slot = other;
                None
            }
        }
    }

    /// The answer to the request out has arrived, to be decoded elsewhere: it is no
    /// longer out (its deadline no longer runs) and deadlines go back to normal, but
    /// the next request waits until [`decoded`](Self::decoded).
    pub(super) fn arrived(&mut self) -> Option<InFlight> {
        let inflight = self.answered()?;
        self.slot = Slot::Decoding;
        Some(inflight)
    }

    /// The answer taken by [`arrived`](Self::arrived) has been decoded: the slot is
    /// free again (unless something else already set it).
    pub(super) fn decoded(&mut self) {
        if matches!(self.slot, Slot::Decoding) {
            self.slot = Slot::Idle;
        }
    }

    /// True while an answer taken by [`arrived`](Self::arrived) is being decoded.
    pub(super) fn decoding(&self) -> bool {
        matches!(self.slot, Slot::Decoding)
    }

    /// The request out never got its answer and never will (its socket is gone).
    pub(super) fn lost(&mut self) {
        if matches!(self.slot, Slot::Out(_)) {
            self.slot = Slot::Idle;
        }
    }

    /// If the request out passed its deadline at `now`: it is dropped, the next
    /// deadline is longer, the next request backs off; returns its op.
    pub(super) fn expire(&mut self, now: Instant) -> Option<&'static str> {
        let op = match &self.slot {
            Slot::Out(inflight) if now >= inflight.deadline => inflight.op,
            _ => return None,
        };
        self.slot = Slot::Idle;
        self.timeout_factor = (self.timeout_factor * 2).min(MAX_TIMEOUT_FACTOR);
        self.back_off(now);
        Some(op)
    }

    /// The next request waits for the current backoff delay, which then doubles;
    /// returns the wait.
    pub(super) fn back_off(&mut self, now: Instant) -> Duration {
        let wait = self.backoff;
        self.wait_until(now + wait);
        self.backoff = (self.backoff * 2).min(self.backoff_max);
        wait
    }

    /// The next request waits until `until`.
    pub(super) fn wait_until(&mut self, until: Instant) {
        if !matches!(self.slot, Slot::Out(_) | Slot::Decoding) {
            self.slot = Slot::BackingOff { until };
        }
    }

    /// A good answer: the backoff starts small again.
    pub(super) fn reset_backoff(&mut self) {
        self.backoff = self.backoff_min;
    }

    /// The longest backoff.
    pub(super) fn backoff_max(&self) -> Duration {
        self.backoff_max
    }

    /// When something is due: the deadline of the request out, or the end of the
    /// backoff.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match &self.slot {
            Slot::Idle | Slot::Decoding => None,
            Slot::BackingOff { until } => Some(*until),
            Slot::Out(inflight) => Some(inflight.deadline),
        }
    }
}
