//! A running Cylc 8 workflow as an [`Upstream`]: the Cylc link of
//! [`clonewire_cylc`] (its contact file and keys, CurveZMQ, join, checksums and
//! re-fetches) filling a [`CylcReplica`] of the scheduler's store, whose seven topics
//! (`workflow`, `tasks`, `taskProxies`, `families`, `familyProxies`, `jobs`,
//! `edges`) are what clients see (see `docs/cylc.md`).
//!
//! The scheduler always sends every change of its store in one `all` stream, so
//! every topic is followed all the time: [`Upstream::set_topics`] changes nothing.

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::{Schema, Seq, Topic};
use clonewire_cylc::contact::{Contact, CONTACT_FILE, SERVICE_DIR};
use clonewire_cylc::driver::{Driver, DriverError};
use clonewire_cylc::link::{LinkEvent, LinkState};
use clonewire_cylc::model::seq_for_time;
use clonewire_cylc::replica::CylcReplica;
use clonewire_cylc::{Applied, Kind};

use super::{ChangeKind, Problem, Upstream, UpstreamError, UpstreamEvent};
use crate::config::Limits;

/// One ZeroMQ context (and its I/O thread) for every link of the process.
fn context() -> &'static zmq::Context {
    clonewire_zmq::sockets::shared_context()
}

/// A Cylc workflow followed through its scheduler's PUB and REP sockets.
pub struct CylcUpstream {
    driver: Driver<CylcReplica>,
    /// The contact file: the workflow runs while it exists.
    contact_file: PathBuf,
    epoch: String,
    schema: Schema,
    /// Each topic's seq, in [`Kind::APPLY_ORDER`].
    seqs: [Seq; 7],
    joined: bool,
    /// Events translated but not handed out yet.
    ready: VecDeque<UpstreamEvent>,
}

impl CylcUpstream {
    /// Follows the workflow whose run directory is `run_dir`: reads its contact file
    /// and keys, subscribes and starts joining. The epoch is the run's UUID.
    pub fn open(run_dir: &Path, limits: &Limits) -> Result<CylcUpstream, DriverError> {
        let contact = Contact::load(run_dir)?;
        let timeout = Duration::from_millis(limits.suite_request_timeout_ms);
        let queued = limits.suite_max_queued_bytes;
        let driver = Driver::open(context(), run_dir, CylcReplica::new(), |config| {
            config.retry.request_timeout = timeout;
            config.max_queued_bytes = queued;
        })?;
        let epoch = if contact.uuid.is_empty() {
            format!("{}:{}", contact.host, contact.port)
        } else {
            contact.uuid.clone()
        };
        Ok(CylcUpstream {
            driver,
            contact_file: run_dir.join(SERVICE_DIR).join(CONTACT_FILE),
            epoch,
            schema: clonewire_cylc::schema(),
            seqs: [Seq::ZERO; 7],
            joined: false,
            ready: VecDeque::new(),
        })
    }

    fn slot(kind: Kind) -> usize {
        Kind::APPLY_ORDER
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default()
    }

    /// Turns what a payload changed into `Changed` events, numbering each topic's
    /// change from the scheduler's time (whole microseconds) when it moves forward.
    fn changed(&mut self, applied: Applied, kind: ChangeKind) {
        let time = applied.time;
        let derived = time.and_then(seq_for_time);
        for (topic, changes) in applied.topics {
            let Some(slot) = Kind::APPLY_ORDER.iter().position(|k| k.topic() == topic) else {
                continue;
            };
            let prev = self.seqs[slot];
            let seq = derived.filter(|s| *s > prev).unwrap_or(prev.next());
            self.seqs[slot] = seq;
            self.ready.push_back(UpstreamEvent::Changed {
                topic: topic.to_owned(),
                prev,
                seq,
                changes,
                time: time.map(|t| t * 1000.0),
                kind,
            });
        }
    }

    fn translate(&mut self, event: LinkEvent<Applied>) {
        match event {
            LinkEvent::Snapshot(applied) => {
                self.changed(applied, ChangeKind::Reset);
                if !std::mem::replace(&mut self.joined, true) {
                    let store = self.driver.link().store().store();
                    self.ready.push_back(UpstreamEvent::Joined {
                        detail: format!(
                            "cylc workflow {}, run {}, {} task proxies",
                            store.workflow().id(),
                            self.epoch,
                            store.len(Kind::TaskProxies)
                        ),
                    });
                } else {
                    self.ready.push_back(UpstreamEvent::Notice {
                        detail: "took a new snapshot of the scheduler's store".into(),
                    });
                }
            }
            LinkEvent::Deltas(applied) => self.changed(applied, ChangeKind::Delta),
            LinkEvent::Refetched(kind, applied) => {
                self.changed(applied, ChangeKind::Reset);
                self.ready.push_back(UpstreamEvent::Repaired {
                    topic: kind.topic().to_owned(),
                    seq: self.seqs[Self::slot(kind)],
                    how: "refetch",
                });
            }
            LinkEvent::Mismatch(kinds) => {
                let names: Vec<&str> = kinds.iter().map(|k| k.cylc_name()).collect();
                self.ready.push_back(UpstreamEvent::Problem {
                    kind: Problem::Mismatch,
                    detail: format!("checksum mismatch in {}; re-fetching", names.join(", ")),
                });
            }
            LinkEvent::Problem(detail) => self.ready.push_back(UpstreamEvent::Problem {
                kind: Problem::Malformed,
                detail,
            }),
            LinkEvent::State(state) => match state {
                LinkState::NoAnswer { message } => self.ready.push_back(UpstreamEvent::Problem {
                    kind: Problem::Timeout,
                    detail: message,
                }),
                LinkState::Refused { message } => self.ready.push_back(UpstreamEvent::Problem {
                    kind: Problem::Refused,
                    detail: message,
                }),
                LinkState::Stopped { reason } => self.ready.push_back(UpstreamEvent::Notice {
                    detail: format!("the scheduler stopped: {reason}"),
                }),
                LinkState::Joining | LinkState::Live => {}
            },
        }
    }
}

impl Upstream for CylcUpstream {
    fn next_event(
        &mut self,
        max_wait: Duration,
        wake: BorrowedFd<'_>,
    ) -> Result<Option<UpstreamEvent>, UpstreamError> {
        if self.ready.is_empty() {
            self.driver.step_or_wake(max_wait, Some(wake))?;
            while let Some(event) = self.driver.poll_event() {
                self.translate(event);
            }
        }
        Ok(self.ready.pop_front())
    }

    fn has_pending_events(&self) -> bool {
        !self.ready.is_empty()
    }

    fn state(&self, _now: Instant) -> WorkflowState {
        // A scheduler removes its contact file as it stops; one killed outright
        // leaves it, and the link's idle probe finds it silent (stale).
        if !self.contact_file.exists() {
            return WorkflowState::Stopped;
        }
        match self.driver.link().state() {
            LinkState::Joining => WorkflowState::Syncing,
            LinkState::Live => WorkflowState::Live,
            LinkState::NoAnswer { .. } | LinkState::Refused { .. } => WorkflowState::Stale,
            LinkState::Stopped { .. } => WorkflowState::Stopped,
        }
    }

    fn epoch(&self) -> Option<&str> {
        Some(&self.epoch)
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn topic(&self, name: &str) -> Option<(&Topic, Seq)> {
        let kind = Kind::APPLY_ORDER.into_iter().find(|k| k.topic() == name)?;
        // Nothing to show before the first snapshot: an empty replica is not the
        // workflow's data (a client gets the topic when the link joins).
        let replica = self.driver.link().store();
        if !replica.is_loaded() {
            return None;
        }
        let store = replica.store();
        Some((store.topic(kind), self.seqs[Self::slot(kind)]))
    }

    fn topic_names(&self) -> Vec<String> {
        Kind::APPLY_ORDER.iter().map(|k| k.topic().to_owned()).collect()
    }

    fn set_topics(&mut self, _topics: Option<BTreeSet<String>>) -> Result<(), UpstreamError> {
        Ok(())
    }
}
