//! A clonewire suite as an [`Upstream`]: a [`Follower`] (join, apply, verify, repair
//! over ZeroMQ), its events translated for the link thread, and the workflow state
//! derived from goodbyes, silence, `busy` answers and repairs.

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::{Schema, Seq, Topic};
use clonewire_suite::{FollowEvent, Follower, FollowerConfig, GapFound, Rung};
use clonewire_zmq::sockets::{CurveClient, CurveKeyPair, CurvePublicKey};

use super::{ChangeKind, Problem, Upstream, UpstreamError, UpstreamEvent};
use crate::config::{Limits, SuiteConfig};

/// How long a suite that answered `busy` is shown as busy past its retry delay.
const BUSY_GRACE: Duration = Duration::from_millis(500);

/// A clonewire suite followed over its PUB and REP sockets.
pub struct ClonewireUpstream {
    follower: Follower,
    /// Events translated but not handed out yet (one follower event may give two).
    ready: VecDeque<UpstreamEvent>,
    /// The suite said goodbye (until a new epoch).
    bye: bool,
    /// The suite answered `busy`; shown as busy until then.
    busy_until: Option<Instant>,
    /// When the suite's stream was last read. Silence is judged up to then, not up to
    /// now, so a link thread kept busy by its own backlog never calls a suite stale.
    polled: Instant,
}

impl ClonewireUpstream {
    /// How the relay follows `suite`: no topic until some client wants one, the
    /// relay's request deadline and queue and intake limits, and CURVE when the suite has a key
    /// (with the relay's keys, else a fresh pair).
    pub fn config(
        suite: &SuiteConfig,
        limits: &Limits,
        curve_keys: Option<&CurveKeyPair>,
    ) -> std::io::Result<FollowerConfig> {
        let mut config = FollowerConfig::new(&suite.pub_endpoint, &suite.rep_endpoint);
        config.machine.topics = Some(Vec::new());
        config.machine.retry.request_timeout = Duration::from_millis(limits.suite_request_timeout_ms);
        config.machine.max_queued = limits.suite_max_queued;
        config.machine.max_queued_bytes = limits.suite_max_queued_bytes;
        config.intake_bytes = limits.suite_intake_bytes;
        if let Some(key) = &suite.server_key {
            let server_key = CurvePublicKey::parse(key).map_err(std::io::Error::other)?;
            config.curve = Some(match curve_keys {
                Some(keys) => CurveClient {
                    server_key,
                    keys: keys.clone(),
                },
                None => CurveClient::ephemeral(server_key).map_err(std::io::Error::other)?,
            });
        }
        Ok(config)
    }

    /// Opens the sockets; joining happens as events are asked for.
    pub fn connect(config: FollowerConfig) -> Result<ClonewireUpstream, clonewire_suite::Error> {
        Ok(ClonewireUpstream {
            follower: Follower::connect(config)?,
            ready: VecDeque::new(),
            bye: false,
            busy_until: None,
            polled: Instant::now(),
        })
    }

    /// Turns a follower event into what the link thread needs.
    fn translate(&mut self, event: FollowEvent) {
        let out = &mut self.ready;
        match event {
            FollowEvent::Delta {
                topic,
                seq,
                changes,
                time,
                ..
            } => out.push_back(UpstreamEvent::Changed {
                topic,
                prev: seq.prev().unwrap_or_default(),
                seq,
                changes,
                time,
                kind: ChangeKind::Delta,
            }),
            FollowEvent::Reset {
                topic,
                prev,
                seq,
                changes,
            } => out.push_back(UpstreamEvent::Changed {
                topic,
                prev,
                seq,
                changes,
                time: None,
                kind: ChangeKind::Reset,
            }),
            FollowEvent::Mismatch {
                topic,
                seq,
                expected,
                got,
                changes,
            } => {
                out.push_back(UpstreamEvent::Problem {
                    kind: Problem::Mismatch,
                    detail: format!(
                        "hash mismatch in {topic} at {seq} (expected {expected}, got {got}); repairing"
                    ),
                });
                out.push_back(UpstreamEvent::Changed {
                    topic,
                    prev: seq.prev().unwrap_or_default(),
                    seq,
                    changes,
                    time: None,
                    kind: ChangeKind::Unverified,
                });
            }
            FollowEvent::Joined { name, epoch, topics } => out.push_back(UpstreamEvent::Joined {
                detail: format!("suite {name}, epoch {epoch}, {topics} topics"),
            }),
            FollowEvent::NewEpoch { epoch } => {
                self.bye = false;
                out.push_back(UpstreamEvent::NewEpoch { epoch });
            }
            FollowEvent::Bye { epoch } => {
                self.bye = true;
                out.push_back(UpstreamEvent::Notice {
                    detail: format!("suite said goodbye (epoch {epoch})"),
                });
            }
            FollowEvent::Repaired { topic, seq, rung } => out.push_back(UpstreamEvent::Repaired {
                topic,
                seq,
                how: match rung {
                    Rung::Replay => "replay",
                    Rung::Hashes => "hashes",
                    Rung::Snapshot => "snapshot",
                },
            }),
            FollowEvent::Gap {
                topic,
                have,
                seen,
                found,
            } => out.push_back(UpstreamEvent::Problem {
                kind: Problem::Gap,
                detail: format!(
                    "gap in {topic}: have {have}, saw {seen}{}",
                    if found == GapFound::ByHeartbeat {
                        " in a heartbeat"
                    } else {
                        ""
                    }
                ),
            }),
            FollowEvent::Busy { op, retry_in } => {
                self.busy_until = Some(Instant::now() + retry_in + BUSY_GRACE);
                out.push_back(UpstreamEvent::Problem {
                    kind: Problem::Busy,
                    detail: format!("suite busy ({op}); retry in {retry_in:?}"),
                });
            }
            FollowEvent::Timeout { op } => out.push_back(UpstreamEvent::Problem {
                kind: Problem::Timeout,
                detail: format!("{op} request timed out; socket reopened"),
            }),
            FollowEvent::Refused { op, code, message } => out.push_back(UpstreamEvent::Problem {
                kind: Problem::Refused,
                detail: format!("suite refused {op} ({code:?}): {message}"),
            }),
            FollowEvent::Malformed { reason } => out.push_back(UpstreamEvent::Problem {
                kind: Problem::Malformed,
                detail: format!("malformed message from suite: {reason}"),
            }),
            FollowEvent::Stale { silent_for } => out.push_back(UpstreamEvent::Notice {
                detail: format!("suite silent for {silent_for:?}"),
            }),
        }
    }
}

impl Upstream for ClonewireUpstream {
    fn next_event(
        &mut self,
        max_wait: Duration,
        wake: BorrowedFd<'_>,
    ) -> Result<Option<UpstreamEvent>, UpstreamError> {
        if self.ready.is_empty() {
            let event = self.follower.next_event_or_wake(max_wait, Some(wake));
            self.polled = Instant::now();
            if let Some(event) = event? {
                self.translate(event);
            }
        }
        Ok(self.ready.pop_front())
    }

    fn has_pending_events(&self) -> bool {
        !self.ready.is_empty() || self.follower.has_pending_events()
    }

    fn state(&self, now: Instant) -> WorkflowState {
        let silent = self
            .polled
            .min(now)
            .saturating_duration_since(self.follower.last_heard());
        if self.bye {
            WorkflowState::Stopped
        } else if silent > self.follower.heartbeat_interval() * 3 {
            WorkflowState::Stale
        } else if self.busy_until.is_some_and(|t| now < t) {
            WorkflowState::Busy
        } else if !self.follower.is_synced() {
            WorkflowState::Syncing
        } else {
            WorkflowState::Live
        }
    }

    fn epoch(&self) -> Option<&str> {
        self.follower.epoch()
    }

    fn schema(&self) -> &Schema {
        self.follower.schema()
    }

    fn topic(&self, name: &str) -> Option<(&Topic, Seq)> {
        self.follower.topic(name).zip(self.follower.seq(name))
    }

    fn topic_names(&self) -> Vec<String> {
        self.follower
            .topics()
            .map(|(name, _, _)| name.to_owned())
            .collect()
    }

    fn set_topics(&mut self, topics: Option<BTreeSet<String>>) -> Result<(), UpstreamError> {
        Ok(self.follower.set_topics(topics)?)
    }
}
