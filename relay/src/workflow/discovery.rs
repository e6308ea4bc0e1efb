//! Following what a directory announces: `--cylc-run DIR` (running Cylc 8 workflows,
//! by their `.service/contact` files) and `--discover DIR` (clonewire suites, by
//! the contact files `--contact-dir` writes). One mechanism serves both: a thread per
//! directory looks every second through a [`Discovery`] of its kind
//! ([`clonewire_zmq::discovery`]) and acts on what changed the same way.
//!
//! - A new contact file gets a link thread like any suite's, and every client already
//!   subscribed to its workflow is bound. A name already followed (a configured
//!   suite, or another directory's) is not followed twice; it is tried again while
//!   the file stays.
//! - A contact file that went (or now announces another run) shows its workflow as
//!   `stopped` for the linger time (`cylc_linger_secs`, `discover_linger_secs`),
//!   then `removed`; a new run replaces the link at once.
//! - A *stale* file (its process, on this host, is gone and nothing answers: the
//!   link is `stale`) is logged, counted in `clonewire_contact_files{kind="stale"}`,
//!   shown `stale` for the linger time, then `removed`, and not followed again until
//!   it changes. A file naming another host is followed while it is there (its
//!   process cannot be looked at from here).
//! - An unreadable file is logged once and counted as `unreadable`; nothing changes.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::{Schema, Seq, Topic};
use clonewire_cylc::contact::Contact;
use clonewire_suite::contact::SuiteContact;
use clonewire_zmq::discovery::{Announcement, Change, Discovery, Finder, Found, Process, SCAN_INTERVAL};
use clonewire_zmq::sockets::CurveKeyPair;

use crate::config::{Limits, SuiteConfig};
use crate::serve::metrics::{KindLabel, Metrics};
use crate::shared::Relay;
use crate::workflow::link::WorkflowLink;
use crate::workflow::upstream::clonewire::ClonewireUpstream;
use crate::workflow::upstream::cylc::CylcUpstream;
use crate::workflow::upstream::{Upstream, UpstreamError, UpstreamEvent};

/// What every link a directory's thread starts needs.
#[derive(Clone)]
pub(crate) struct LinkContext {
    /// The relay's limits.
    pub limits: Limits,
    /// The relay's CURVE key pair, for CURVE suites.
    pub curve_keys: Option<CurveKeyPair>,
    /// The relay's metrics.
    pub metrics: Arc<Metrics>,
    /// How long a workflow whose file went (or is stale) stays listed.
    pub linger: Duration,
}

/// A kind of contact the relay can follow.
pub(crate) trait Followable: Announcement + Send + 'static {
    /// What the logs call one.
    const KIND: &'static str;

    /// Where it answers requests, for the logs.
    fn endpoint(&self) -> String;

    /// Starts a link thread following `found`; its workflow shows `stopped` once
    /// `vanished` is set.
    fn open(
        found: &Found<Self>,
        context: &LinkContext,
        vanished: Arc<AtomicBool>,
    ) -> std::io::Result<WorkflowLink>;
}

impl Followable for Contact {
    const KIND: &'static str = "cylc workflow";

    fn endpoint(&self) -> String {
        self.req_endpoint()
    }

    fn open(
        found: &Found<Contact>,
        context: &LinkContext,
        vanished: Arc<AtomicBool>,
    ) -> std::io::Result<WorkflowLink> {
        let run_dir = found.path.clone();
        let limits = context.limits.clone();
        WorkflowLink::spawn_upstream(&found.id, &context.limits, context.metrics.clone(), move || {
            CylcUpstream::open(&run_dir, &limits).map(|u| Announced::new(u, vanished.clone()))
        })
    }
}

impl Followable for SuiteContact {
    const KIND: &'static str = "suite";

    fn endpoint(&self) -> String {
        self.rep_endpoint.clone()
    }

    fn open(
        found: &Found<SuiteContact>,
        context: &LinkContext,
        vanished: Arc<AtomicBool>,
    ) -> std::io::Result<WorkflowLink> {
        let suite = SuiteConfig {
            server_key: found.contact.curve_public_key.clone(),
            ..SuiteConfig::new(
                &found.id,
                &found.contact.pub_endpoint,
                &found.contact.rep_endpoint,
            )
        };
        let config = ClonewireUpstream::config(&suite, &context.limits, context.curve_keys.as_ref())?;
        WorkflowLink::spawn_upstream(&found.id, &context.limits, context.metrics.clone(), move || {
            ClonewireUpstream::connect(config.clone()).map(|u| Announced::new(u, vanished.clone()))
        })
    }
}

/// Starts the thread watching `finder`'s directory; it stops when the relay shuts
/// down.
pub(crate) fn spawn<F>(relay: Arc<Relay>, finder: F, context: LinkContext) -> std::io::Result<JoinHandle<()>>
where
    F: Finder + Send + 'static,
    F::Contact: Followable,
{
    std::thread::Builder::new()
        .name(format!("discovery {}", finder.root().display()))
        .spawn(move || Watcher::new(&relay, Discovery::new(finder), context).run())
}

/// A workflow this thread follows.
struct Followed {
    /// Its contact file.
    path: PathBuf,
    /// The process the file names.
    process: Option<Process>,
    /// Set when the file went: the workflow shows `stopped`.
    vanished: Arc<AtomicBool>,
}

/// One directory's thread.
struct Watcher<'a, F: Finder> {
    relay: &'a Relay,
    discovery: Discovery<F>,
    context: LinkContext,
    /// The workflows this thread added, by id (others are configured suites or
    /// another directory's).
    ours: BTreeMap<String, Followed>,
    /// Workflows whose file went or is stale, and since when: removed after linger.
    gone: BTreeMap<String, Instant>,
    /// Stale contact files, not followed again until they change or go.
    stale: BTreeSet<PathBuf>,
    /// Files whose workflow id is taken by a workflow followed otherwise: tried again
    /// every look.
    waiting: BTreeMap<PathBuf, Found<F::Contact>>,
    /// What this thread last added to the `contact_files` gauges.
    counted: BTreeMap<&'static str, i64>,
}

impl<'a, F> Watcher<'a, F>
where
    F: Finder,
    F::Contact: Followable,
{
    fn new(relay: &'a Relay, discovery: Discovery<F>, context: LinkContext) -> Self {
        Watcher {
            relay,
            discovery,
            context,
            ours: BTreeMap::new(),
            gone: BTreeMap::new(),
            stale: BTreeSet::new(),
            waiting: BTreeMap::new(),
            counted: BTreeMap::new(),
        }
    }

    fn run(mut self) {
        let shutdown = self.relay.shutdown_signal();
        tracing::info!(dir = %self.discovery.root().display(), "watching for {} contact files", F::Contact::KIND);
        while !*shutdown.borrow() {
            self.look();
            let until = Instant::now() + SCAN_INTERVAL;
            while Instant::now() < until && !*shutdown.borrow() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.count_files(true);
    }

    /// One look: what changed in the directory, stale files, lingering removals.
    fn look(&mut self) {
        for change in self.discovery.scan() {
            match change {
                Change::Added(found) => {
                    self.stale.remove(&found.path);
                    self.waiting.remove(&found.path);
                    self.follow(found);
                }
                Change::Removed { id, path } => {
                    self.stale.remove(&path);
                    self.waiting.remove(&path);
                    let Some(followed) = self.ours.get(&id).filter(|f| f.path == path) else {
                        continue;
                    };
                    tracing::info!(workflow = %id, path = %path.display(), "{} no longer announced: its contact file went", F::Contact::KIND);
                    followed.vanished.store(true, Ordering::Relaxed);
                    self.gone.entry(id).or_insert_with(Instant::now);
                }
                Change::Unreadable { path, why } => {
                    tracing::warn!(path = %path.display(), "contact file ignored: {why}; nothing changes until it reads well or goes");
                }
            }
        }
        let waiting: Vec<_> = self.waiting.values().cloned().collect();
        for found in waiting {
            self.follow(found);
        }
        self.find_stale();
        let now = Instant::now();
        let expired: Vec<String> = self
            .gone
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= self.context.linger)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.gone.remove(&id);
            self.ours.remove(&id);
            self.relay.remove_link(&id);
        }
        self.count_files(false);
    }

    /// Follows what `found` announces, unless its id is followed otherwise.
    fn follow(&mut self, found: Found<F::Contact>) {
        let id = found.id.clone();
        let taken = match self.ours.get(&id) {
            // Another of this directory's files, still announced.
            Some(other) => other.path != found.path && !self.gone.contains_key(&id),
            None => self.relay.link(&id).is_some(),
        };
        if taken {
            let path = found.path.clone();
            if self.waiting.insert(path.clone(), found).is_none() {
                tracing::warn!(workflow = %id, path = %path.display(), "a {} has the name of a workflow already followed; not followed while that one is", F::Contact::KIND);
            }
            return;
        }
        self.waiting.remove(&found.path);
        let vanished = Arc::new(AtomicBool::new(false));
        match F::Contact::open(&found, &self.context, vanished.clone()) {
            Ok(link) => {
                tracing::info!(workflow = %id, endpoint = %found.contact.endpoint(), path = %found.path.display(), "{} announced: following it", F::Contact::KIND);
                self.gone.remove(&id);
                self.ours.insert(
                    id,
                    Followed {
                        path: found.path,
                        process: found.contact.process(),
                        vanished,
                    },
                );
                self.relay.add_link(link);
            }
            Err(e) => tracing::error!(workflow = %id, error = %e, "cannot follow a {}", F::Contact::KIND),
        }
    }

    /// Marks the followed workflows whose process is gone and that do not answer.
    fn find_stale(&mut self) {
        for (id, followed) in &self.ours {
            if self.gone.contains_key(id) {
                continue;
            }
            let Some(process) = followed.process.as_ref().filter(|p| p.is_gone()) else {
                continue;
            };
            let silent = self
                .relay
                .link(id)
                .is_none_or(|link| link.status().state == WorkflowState::Stale);
            if silent {
                tracing::warn!(
                    workflow = %id,
                    path = %followed.path.display(),
                    "stale contact file: process {} on {} is gone and nothing answers; no longer followed (until the file changes)",
                    process.pid,
                    process.host
                );
                self.stale.insert(followed.path.clone());
                self.gone.insert(id.clone(), Instant::now());
            }
        }
    }

    /// Sets this thread's share of `clonewire_contact_files` (to zero when `leaving`).
    fn count_files(&mut self, leaving: bool) {
        let stale = self.stale.len() as i64;
        let followed = self.ours.len() as i64 - self.gone.len() as i64;
        let unreadable = self.discovery.unreadable().count() as i64;
        for (kind, n) in [
            ("followed", followed),
            ("stale", stale),
            ("unreadable", unreadable),
        ] {
            let n = if leaving { 0 } else { n };
            let before = self.counted.insert(kind, n).unwrap_or(0);
            self.context
                .metrics
                .contact_files
                .get_or_create(&KindLabel::of(kind))
                .inc_by(n - before);
        }
    }
}

/// An upstream announced by a contact file: `stopped` once the file went, whatever
/// the upstream says.
pub(crate) struct Announced<U> {
    upstream: U,
    vanished: Arc<AtomicBool>,
}

impl<U> Announced<U> {
    fn new(upstream: U, vanished: Arc<AtomicBool>) -> Announced<U> {
        Announced { upstream, vanished }
    }
}

impl<U: Upstream> Upstream for Announced<U> {
    fn next_event(
        &mut self,
        max_wait: Duration,
        wake: BorrowedFd<'_>,
    ) -> Result<Option<UpstreamEvent>, UpstreamError> {
        self.upstream.next_event(max_wait, wake)
    }

    fn has_pending_events(&self) -> bool {
        self.upstream.has_pending_events()
    }

    fn state(&self, now: Instant) -> WorkflowState {
        if self.vanished.load(Ordering::Relaxed) {
            WorkflowState::Stopped
        } else {
            self.upstream.state(now)
        }
    }

    fn epoch(&self) -> Option<&str> {
        self.upstream.epoch()
    }

    fn schema(&self) -> &Schema {
        self.upstream.schema()
    }

    fn topic(&self, name: &str) -> Option<(&Topic, Seq)> {
        self.upstream.topic(name)
    }

    fn topic_names(&self) -> Vec<String> {
        self.upstream.topic_names()
    }

    fn set_topics(&mut self, topics: Option<BTreeSet<String>>) -> Result<(), UpstreamError> {
        self.upstream.set_topics(topics)
    }
}
