//! A suite's publishing side: the store, the PUB socket, heartbeats and goodbye.
//!
//! [`Publisher::publish`] applies a merge patch to the store, and if any leaf changed
//! sends `[topic, {"epoch", "seq", "hash", "time", "patch"}]`. The same delta goes,
//! through a bounded channel, to the [responder](crate::responder) thread, which
//! keeps its own copy of the store and the replay history. So answering a request,
//! however large (a snapshot of 100 000 tasks), never holds a lock the publisher
//! needs: the price is a second copy of the store, kept up to date in O(changed
//! leaves) per delta. Should that channel ever fill, the responder copies the store
//! once under the lock and carries on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use clonewire_core::protocol::encode;
use clonewire_core::protocol::suite::{Bye, Delta, Heartbeat, PubMessage, TopicState};
use clonewire_core::{Changes, Document, Hash, Schema, Seq};
use serde_json::Value;

use crate::answer::ServedState;
use crate::commands::Commands;
use crate::contact::{ContactFile, SuiteContact};
use crate::epoch::new_epoch;
use crate::error::Error;
use crate::held::{Held, HeldCounters};
use crate::history::{History, HistoryLimits, Record};
use crate::responder::Responder;
use crate::shared::{Feed, PubState, Shared};
use clonewire_zmq::sockets::{self, CurvePublicKey, CurveSecretKey};
use clonewire_zmq::unix_ms;
use clonewire_zmq::zap::ZapHandler;

/// Deltas that may wait for the responder thread before it must copy the store afresh...
const FEED_CAPACITY: usize = 16_384;
/// ...or bytes of them ([`Record::held_bytes`]), whichever comes first.
const FEED_MAX_BYTES: usize = 16 << 20;
/// How long the goodbye may take to leave before the PUB socket is closed anyway.
const BYE_LINGER_MS: i32 = 250;

/// How to run a publisher.
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    /// The suite's name, reported by `hello`.
    pub name: String,
    /// Where the PUB socket binds, e.g. `tcp://127.0.0.1:0` (any free port).
    pub pub_endpoint: String,
    /// Where the REP socket binds.
    pub rep_endpoint: String,
    /// Interval between `_hb` heartbeats.
    pub heartbeat_ms: u64,
    /// Which objects are keyed collections, reported by `hello`.
    pub schema: Schema,
    /// How much history each topic keeps for `replay`.
    pub history: HistoryLimits,
    /// Messages queued per subscriber before ZeroMQ drops (see [`sockets::PUB_HWM`]).
    pub pub_hwm: i32,
    /// The `retry_ms` hint in `busy` replies.
    pub busy_retry_ms: u64,
    /// The CURVE server secret key: when set, the PUB and REP sockets only talk to
    /// peers that know the matching public key, and all traffic is encrypted.
    pub curve_secret_key: Option<CurveSecretKey>,
    /// With a secret key: when set, only followers whose CURVE public key is listed are
    /// admitted (checked at the handshake by a ZAP handler); when `None`, any follower
    /// that knows the suite's public key is.
    pub curve_allowed_clients: Option<Vec<CurvePublicKey>>,
    /// Announce the suite in this directory with a contact file (see
    /// [`crate::contact`]) once its sockets are bound; it is removed on shutdown.
    /// Relays started with `--discover DIR` follow every suite announced there.
    pub contact_dir: Option<PathBuf>,
    /// What the suite does with commands (docs/protocol.md, Commands); `None`: it takes
    /// none, and answers `command` requests `unsupported`.
    pub commands: Option<Commands>,
}

impl PublisherConfig {
    /// Defaults: both sockets on free ports of 127.0.0.1, a heartbeat every second.
    pub fn new(name: impl Into<String>) -> PublisherConfig {
        PublisherConfig {
            name: name.into(),
            pub_endpoint: "tcp://127.0.0.1:0".into(),
            rep_endpoint: "tcp://127.0.0.1:0".into(),
            heartbeat_ms: 1000,
            schema: Schema::default(),
            history: HistoryLimits::default(),
            pub_hwm: sockets::PUB_HWM,
            busy_retry_ms: 500,
            curve_secret_key: None,
            curve_allowed_clients: None,
            contact_dir: None,
            commands: None,
        }
    }
}

/// What one publish did.
#[derive(Clone, Debug)]
pub struct Published {
    /// The delta's seq.
    pub seq: Seq,
    /// The topic hash after it.
    pub hash: Hash,
    /// The size of the body sent (or that would have been sent).
    pub bytes: usize,
    /// The changed leaves.
    pub changes: Changes,
    /// False when the delta was applied and recorded but deliberately not sent.
    pub sent: bool,
}

/// A running publisher: PUB and REP sockets bound, heartbeat and responder threads up.
/// Dropping it sends `_bye` and stops the threads.
pub struct Publisher {
    shared: Arc<Shared>,
    pub_endpoint: String,
    rep_endpoint: String,
    stop_heartbeat: Option<SyncSender<()>>,
    threads: Vec<JoinHandle<()>>,
    /// The allow-list's handler, when there is one; stopped after the sockets close.
    zap: Option<ZapHandler>,
    /// The suite's contact file, when it announces itself; removed first on shutdown.
    contact: Option<ContactFile>,
}

impl Publisher {
    /// Binds both sockets and starts the heartbeat and responder threads.
    pub fn start(config: PublisherConfig) -> Result<Publisher, Error> {
        if config.heartbeat_ms == 0 {
            return Err(Error::config("heartbeat_ms must be at least 1"));
        }
        if config.curve_allowed_clients.is_some() && config.curve_secret_key.is_none() {
            return Err(Error::config(
                "an allow-list of CURVE clients needs the suite's CURVE secret key",
            ));
        }
        let ctx = zmq::Context::new();
        // Bound before the sockets, so no handshake happens without it.
        let zap = match &config.curve_allowed_clients {
            Some(allowed) => Some(ZapHandler::start(&ctx, allowed, &config.name)?),
            None => None,
        };
        let pub_socket = sockets::socket(&ctx, zmq::PUB, config.pub_hwm)?;
        let rep_socket = sockets::socket(&ctx, zmq::REP, sockets::REQREP_HWM)?;
        if let Some(key) = &config.curve_secret_key {
            sockets::curve_server(&pub_socket, key)?;
            sockets::curve_server(&rep_socket, key)?;
        }
        let pub_endpoint = sockets::bind(&pub_socket, &config.pub_endpoint)?;
        rep_socket
            .set_maxmsgsize(sockets::MAX_REQUEST_BYTES)
            .map_err(|e| Error::zmq("set max request size", e))?;
        let rep_endpoint = sockets::bind(&rep_socket, &config.rep_endpoint)?;

        let epoch = new_epoch();
        let (feed_tx, feed_rx) = mpsc::sync_channel(FEED_CAPACITY);
        let shared = Arc::new(Shared {
            state: Mutex::new(PubState {
                socket: pub_socket,
                epoch: epoch.clone(),
                document: Document::new(),
                seqs: BTreeMap::new(),
                feed: feed_tx,
                feed_lost: false,
                stopped: false,
            }),
            busy: AtomicBool::new(false),
            resync: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            held: HeldCounters::default(),
        });
        let replica = ServedState {
            name: config.name.clone(),
            heartbeat_ms: config.heartbeat_ms,
            schema: config.schema.clone(),
            epoch,
            document: Document::new(),
            seqs: Default::default(),
            history: History::new(config.history),
            commands: config.commands.clone(),
        };
        let responder = Responder::new(
            rep_socket,
            feed_rx,
            Arc::clone(&shared),
            replica,
            config.busy_retry_ms,
        );
        let (stop_tx, stop_rx) = mpsc::sync_channel(1);
        let mut threads = Vec::new();
        threads.push(
            std::thread::Builder::new()
                .name(format!("{}-rep", config.name))
                .spawn(move || responder.run())?,
        );
        let beat = Arc::clone(&shared);
        let interval = Duration::from_millis(config.heartbeat_ms);
        threads.push(
            std::thread::Builder::new()
                .name(format!("{}-hb", config.name))
                .spawn(move || heartbeat_loop(&beat, interval, &stop_rx))?,
        );
        let curve = config.curve_secret_key.is_some();
        let allowed_clients = config.curve_allowed_clients.as_ref().map(Vec::len);
        tracing::info!(name = %config.name, %pub_endpoint, %rep_endpoint, curve, ?allowed_clients, "publisher started");
        let mut publisher = Publisher {
            shared,
            pub_endpoint,
            rep_endpoint,
            stop_heartbeat: Some(stop_tx),
            threads,
            zap,
            contact: None,
        };
        // Announced once everything is up, so a relay that reads it finds a suite; on
        // an error the publisher drops, stopping its threads.
        if let Some(dir) = &config.contact_dir {
            let key = config
                .curve_secret_key
                .as_ref()
                .map(CurveSecretKey::public_key)
                .transpose()?;
            let contact = SuiteContact::for_this_process(
                &config.name,
                &publisher.pub_endpoint,
                &publisher.rep_endpoint,
                key.as_ref(),
            );
            publisher.contact = Some(ContactFile::write(dir, contact)?);
        }
        Ok(publisher)
    }

    /// The endpoint the PUB socket is bound to (with the real port).
    pub fn pub_endpoint(&self) -> &str {
        &self.pub_endpoint
    }

    /// The endpoint the REP socket is bound to (with the real port).
    pub fn rep_endpoint(&self) -> &str {
        &self.rep_endpoint
    }

    /// The contact file announcing the suite, when it has one.
    pub fn contact_file(&self) -> Option<&std::path::Path> {
        self.contact.as_ref().map(ContactFile::path)
    }

    /// The current epoch.
    pub fn epoch(&self) -> String {
        self.shared.lock().epoch.clone()
    }

    /// A topic's latest seq and hash (seq 0 if never published this epoch).
    pub fn topic_state(&self, topic: &str) -> TopicState {
        let state = self.shared.lock();
        TopicState {
            seq: state.seqs.get(topic).copied().unwrap_or_default(),
            hash: state.document.topic(topic).map_or(Hash::EMPTY, |t| t.hash()),
        }
    }

    /// Applies `patch` (an RFC 7386 merge patch) to `topic` and publishes the delta.
    /// Returns `None`, sending nothing, when no leaf changed.
    pub fn publish(&self, topic: &str, patch: Value) -> Result<Option<Published>, Error> {
        self.apply(topic, patch, Delivery::Publish)
    }

    /// Applies and records a delta exactly like [`publish`](Self::publish) (its seq is
    /// used, heartbeats and `replay` know it) but does not send it: a lost message,
    /// for exercising a subscriber's repair.
    pub fn publish_unsent(&self, topic: &str, patch: Value) -> Result<Option<Published>, Error> {
        self.apply(topic, patch, Delivery::Withhold)
    }

    fn apply(&self, topic: &str, patch: Value, delivery: Delivery) -> Result<Option<Published>, Error> {
        if topic.is_empty() || topic.starts_with('_') {
            return Err(Error::config(format!(
                "topic {topic:?}: names are non-empty and may not start with '_'"
            )));
        }
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        if state.stopped {
            return Err(Error::Stopped);
        }
        let changes = state.document.apply(topic, &patch)?;
        if changes.is_empty() {
            return Ok(None);
        }

        let seq = {
            let seq = state.seqs.entry(topic.to_owned()).or_default();
            *seq = seq.next();
            *seq
        };
        let hash = state.document.topic(topic).map_or(Hash::EMPTY, |t| t.hash());
        // The patch is serialized once: the history keeps that text, and the body
        // embeds it.
        let record = Arc::new(Record::new(seq, hash, Some(unix_ms()), &patch));
        let body = encode(&Delta {
            epoch: state.epoch.clone(),
            seq,
            hash,
            time: record.time,
            patch: &*record.patch,
        });
        let bytes = body.len();
        if !state.feed_lost {
            self.feed(
                state,
                Feed::Delta {
                    topic: topic.to_owned(),
                    record,
                },
            );
        }
        if delivery == Delivery::Publish {
            if let Err(e) = state
                .socket
                .send_multipart([topic.as_bytes(), &body], zmq::DONTWAIT)
            {
                tracing::warn!(topic, %seq, error = %e, "could not send a delta");
            }
        }
        Ok(Some(Published {
            seq,
            hash,
            bytes,
            changes,
            sent: delivery == Delivery::Publish,
        }))
    }

    /// What the publisher holds now: its store's size, its history and its feed.
    pub fn held(&self) -> Held {
        let leaves = self.shared.lock().document.leaf_count();
        self.shared.held.read(leaves)
    }

    /// Passes `item` to the responder, or, if its queue is full (in count or bytes),
    /// has it copy the store.
    fn feed(&self, state: &mut PubState, item: Feed) {
        if state.feed_lost {
            return;
        }
        let bytes = item.bytes();
        let queued = &self.shared.held.feed_bytes;
        if queued.load(Ordering::Relaxed) + bytes > FEED_MAX_BYTES {
            tracing::warn!("responder fell behind by {FEED_MAX_BYTES} bytes; it will copy the store afresh");
            state.feed_lost = true;
            self.shared.resync.store(true, Ordering::Release);
            return;
        }
        queued.fetch_add(bytes, Ordering::Relaxed);
        match state.feed.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                queued.fetch_sub(bytes, Ordering::Relaxed);
                tracing::warn!("responder fell behind; it will copy the store afresh");
                state.feed_lost = true;
                self.shared.resync.store(true, Ordering::Release);
            }
            Err(TrySendError::Disconnected(_)) => {
                queued.fetch_sub(bytes, Ordering::Relaxed);
                state.feed_lost = true;
            }
        }
    }

    /// Marks the suite busy (requests are answered `busy`) or not.
    pub fn set_busy(&self, busy: bool) {
        self.shared.busy.store(busy, Ordering::Release);
    }

    /// Starts a new epoch in place, as if the suite process had restarted: an empty
    /// store, seqs from 1 again, no history. Returns the new epoch.
    pub fn restart(&self) -> String {
        let mut state = self.shared.lock();
        state.epoch = new_epoch();
        state.document = Document::new();
        state.seqs.clear();
        let epoch = state.epoch.clone();
        self.feed(&mut state, Feed::Restart { epoch: epoch.clone() });
        tracing::info!(%epoch, "new epoch");
        epoch
    }

    /// Sends `_bye` and stops the threads. Publishing afterwards is an error.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // The file goes first: a relay that sees it gone expects the goodbye.
        drop(self.contact.take());
        {
            let mut state = self.shared.lock();
            if !state.stopped {
                state.stopped = true;
                let (topic, body) = PubMessage::Bye(Bye {
                    epoch: state.epoch.clone(),
                })
                .encode();
                if let Err(e) = state.socket.send_multipart([topic, body], zmq::DONTWAIT) {
                    tracing::warn!(error = %e, "could not send goodbye");
                }
                // Give the goodbye a bounded moment to leave when the socket closes.
                let _ = state.socket.set_linger(BYE_LINGER_MS);
            }
        }
        self.shared.stop.store(true, Ordering::Release);
        drop(self.stop_heartbeat.take());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a publisher thread panicked");
            }
        }
        drop(self.zap.take());
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `_hb` every `interval` until told to stop (or the sender is dropped).
fn heartbeat_loop(shared: &Shared, interval: Duration, stop: &Receiver<()>) {
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let state = shared.lock();
        if state.stopped {
            return;
        }
        let (topic, body) = PubMessage::Heartbeat(Heartbeat {
            epoch: state.epoch.clone(),
            time: Some(unix_ms()),
            seqs: state.seqs.clone(),
        })
        .encode();
        if let Err(e) = state.socket.send_multipart([topic, body], zmq::DONTWAIT) {
            tracing::warn!(error = %e, "could not send a heartbeat");
        }
    }
}

/// Whether an applied delta goes out on the PUB socket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Sent to subscribers.
    Publish,
    /// Recorded (seq, history, heartbeats) but not sent: a lost message.
    Withhold,
}
