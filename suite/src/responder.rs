//! The REP socket's thread. It owns a [`ServedState`], its copy of the store, fed with every delta
//! the publisher applies, so it answers any request (a snapshot of a large store
//! included) without holding the publisher's lock: publishing never waits for a
//! requester, and a slow or vanished requester only ever delays other requests.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use clonewire_core::Document;
use serde_json::Value;

use crate::answer::{self, ServedState};
use crate::shared::{Feed, Shared};

/// How often the thread wakes without requests, to apply deltas and check for stop.
const POLL_MS: i64 = 25;

pub(crate) struct Responder {
    socket: zmq::Socket,
    feed: Receiver<Feed>,
    shared: Arc<Shared>,
    replica: ServedState,
    busy_retry_ms: u64,
}

impl Responder {
    pub(crate) fn new(
        socket: zmq::Socket,
        feed: Receiver<Feed>,
        shared: Arc<Shared>,
        replica: ServedState,
        busy_retry_ms: u64,
    ) -> Responder {
        Responder {
            socket,
            feed,
            shared,
            replica,
            busy_retry_ms,
        }
    }

    pub(crate) fn run(mut self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            self.catch_up();
            match self.socket.poll(zmq::POLLIN, POLL_MS) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "REP socket poll failed; responder stops");
                    return;
                }
            }
            let frames = match self.socket.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "could not receive a request");
                    continue;
                }
            };
            // Answer from the newest state: everything published before the request.
            self.catch_up();
            let reply = if self.shared.busy.load(Ordering::Acquire) {
                answer::busy(self.busy_retry_ms)
            } else {
                match frames.as_slice() {
                    [request] => answer::answer(&self.replica, request),
                    _ => answer::bad_request(format!(
                        "a request is one frame of JSON, got {} frames",
                        frames.len()
                    )),
                }
            };
            if let Err(e) = self.socket.send(reply, zmq::DONTWAIT) {
                tracing::warn!(error = %e, "could not send a reply");
            }
        }
    }

    /// Applies every delta waiting in the feed, or copies the store afresh if the feed
    /// was lost (overflow or a new epoch).
    fn catch_up(&mut self) {
        if self.shared.resync.load(Ordering::Acquire) {
            self.resync();
        }
        let mut took = 0;
        while let Ok(feed) = self.feed.try_recv() {
            took += feed.bytes();
            match feed {
                Feed::Delta { topic, record } => {
                    // The publisher made this text from a patch it had just applied to
                    // the same state: neither step can fail.
                    let applied = serde_json::from_str::<Value>(record.patch.get())
                        .map_err(|e| e.to_string())
                        .and_then(|patch| {
                            (self.replica.document)
                                .apply(&topic, &patch)
                                .map_err(|e| e.to_string())
                        });
                    if let Err(error) = applied {
                        tracing::error!(%error, "replica refused a published patch");
                    }
                    self.replica.seqs.insert(topic.clone(), record.seq);
                    self.replica.history.push(&topic, record);
                }
                Feed::Restart { epoch } => {
                    self.replica.epoch = epoch;
                    self.replica.document = Document::new();
                    self.replica.seqs.clear();
                    self.replica.history.clear();
                }
            }
        }
        if took > 0 {
            self.shared.held.feed_bytes.fetch_sub(took, Ordering::Relaxed);
        }
        self.report_held();
    }

    /// Publishes the history's figures for [`crate::Publisher::held`].
    fn report_held(&self) {
        let held = &self.shared.held;
        held.history_bytes
            .store(self.replica.history.bytes(), Ordering::Relaxed);
        held.history_deltas
            .store(self.replica.history.deltas(), Ordering::Relaxed);
    }

    /// Copies the publisher's store under its lock. O(store), so only after the feed
    /// overflowed.
    fn resync(&mut self) {
        let mut state = self.shared.lock();
        while self.feed.try_recv().is_ok() {}
        // Under the lock nothing is fed: the queue is empty now.
        self.shared.held.feed_bytes.store(0, Ordering::Relaxed);
        self.replica.epoch = state.epoch.clone();
        self.replica.document = state.document.clone();
        self.replica.seqs = state.seqs.clone();
        self.replica.history.clear();
        state.feed_lost = false;
        self.shared.resync.store(false, Ordering::Release);
        self.report_held();
        tracing::debug!(epoch = %state.epoch, "responder copied the store");
    }
}
