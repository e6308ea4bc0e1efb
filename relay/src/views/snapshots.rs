//! Snapshot text written off the link thread. Projecting a topic for a view happens on
//! the link thread (it reads the replica), but turning a big projection into JSON text
//! (and freeing it) goes to a small pool of plain threads, away from both the link
//! thread and the async runtime's workers, so the workflow's deltas keep flowing to
//! its other clients meanwhile. Clients get the snapshot's [`SnapshotFrame`] at once,
//! in order; their writer sends nothing queued after it until its text is there.
//!
//! The pool's queue is bounded in jobs; when it is full the text is written on the
//! calling thread, as small snapshots always are.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use clonewire_core::{Hash, Seq};
use serde_json::Value;

use super::frames::snapshot_text;
use crate::outbox::SnapshotFrame;

/// Projections with at least this many entries at their top level are written by the
/// pool (a 1,000-task topic's projection, about 65 KB, stays on the calling thread).
pub(crate) const OFF_THREAD_ENTRIES: usize = 4_096;
/// Threads writing snapshots.
const WRITERS: usize = 2;
/// Snapshots waiting for a writer at most; past that they are written inline.
const QUEUE: usize = 32;

struct Job {
    frame: Arc<SnapshotFrame>,
    write: Box<dyn FnOnce() -> Arc<str> + Send>,
}

fn pool() -> Option<&'static SyncSender<Job>> {
    static POOL: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..WRITERS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("snapshot writer {i}"))
                .spawn(move || work(&rx));
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

/// Held by a test to keep the writers from finishing a snapshot.
#[cfg(test)]
pub(super) static HOLD: Mutex<()> = Mutex::new(());

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { return };
        #[cfg(test)]
        let _held = HOLD.lock().unwrap_or_else(|e| e.into_inner());
        job.frame.fill((job.write)());
    }
}

/// The snapshot message of one topic as a frame: written here when small, else by the
/// pool (the frame is filled when it is done).
pub(super) fn snapshot_frame(
    workflow: &str,
    epoch: &str,
    topic: &str,
    seq: Seq,
    hash: Hash,
    value: Value,
) -> Arc<SnapshotFrame> {
    let big = value.as_object().is_some_and(|m| m.len() >= OFF_THREAD_ENTRIES);
    let Some(pool) = pool().filter(|_| big) else {
        return SnapshotFrame::ready(snapshot_text(workflow, epoch, topic, seq, hash, value));
    };
    let frame = SnapshotFrame::pending();
    let (workflow, epoch, topic) = (workflow.to_owned(), epoch.to_owned(), topic.to_owned());
    let job = Job {
        frame: frame.clone(),
        write: Box::new(move || snapshot_text(&workflow, &epoch, &topic, seq, hash, value)),
    };
    match pool.try_send(job) {
        Ok(()) => frame,
        Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
            job.frame.fill((job.write)());
            job.frame
        }
    }
}
