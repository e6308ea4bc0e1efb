//! Big snapshots without stalling the link thread. Projecting a topic for a view reads
//! the replica, so it happens on the link thread, but a big one is built a slice of
//! entries at a time between the workflow's events ([`Build`], over core's
//! [`SnapshotBuild`], which undoes what changed meanwhile so the result is the
//! projection at the view's label). Turning it into JSON text (and freeing it) goes to
//! a small pool of plain threads, away from both the link thread and the async
//! runtime's workers. So the workflow's deltas keep flowing to its other clients while
//! a big join is made. Clients get the snapshot's [`SnapshotFrame`] at once, in order;
//! their writer sends nothing queued after it until its text is there.
//!
//! The pool's queue is bounded in jobs; when it is full the text is written on the
//! calling thread, as small snapshots always are.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use clonewire_core::subscription::build::SnapshotBuild;
use clonewire_core::{Hash, Projection, Seq, Topic};
use serde_json::Value;

use super::frames::snapshot_text;
use crate::clients::outbox::SnapshotFrame;

/// Projections with at least this many entries at their top level are written by the
/// pool (a 1,000-task topic's projection, about 65 KB, stays on the calling thread).
pub(crate) const OFF_THREAD_ENTRIES: usize = 4_096;
/// Entries projected per turn of the link thread, over all builds (a few ms).
pub(crate) const SLICE: usize = 2_048;
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
                .spawn(move || {
                    // Snapshots wait for these threads; live deltas do not.
                    clonewire_zmq::background::lower_this_thread();
                    work(&rx)
                });
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

/// What a snapshot message says besides its value.
#[derive(Clone, Debug)]
pub(super) struct Head {
    pub workflow: String,
    pub epoch: String,
    pub topic: String,
    pub seq: Seq,
    pub hash: Hash,
}

/// The snapshot message of one topic as a frame: written here when small, else by the
/// pool (the frame is filled when it is done).
pub(super) fn snapshot_frame(head: Head, value: Value) -> Arc<SnapshotFrame> {
    let big = value.as_object().is_some_and(|m| m.len() >= OFF_THREAD_ENTRIES);
    if !big {
        let Head {
            workflow,
            epoch,
            topic,
            seq,
            hash,
        } = head;
        return SnapshotFrame::ready(snapshot_text(&workflow, &epoch, &topic, seq, hash, value));
    }
    let frame = SnapshotFrame::pending();
    write(frame.clone(), head, value);
    frame
}

/// Fills `frame` with the snapshot text, on the pool when it has room.
fn write(frame: Arc<SnapshotFrame>, head: Head, value: Value) {
    let job = Job {
        frame,
        write: Box::new(move || {
            snapshot_text(
                &head.workflow,
                &head.epoch,
                &head.topic,
                head.seq,
                head.hash,
                value,
            )
        }),
    };
    match pool() {
        Some(pool) => {
            if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) = pool.try_send(job) {
                job.frame.fill((job.write)());
            }
        }
        None => job.frame.fill((job.write)()),
    }
}

/// True when projecting `proj` on `replica` goes a slice at a time: its top level
/// visits every entry of a big collection.
pub(super) fn sliced(proj: &Projection, replica: &Topic) -> bool {
    let every = matches!(proj, Projection::All | Projection::Entries { every: Some(_), .. });
    every && replica.root().len() >= OFF_THREAD_ENTRIES
}

/// A big snapshot being projected a slice at a time on the link thread.
pub(super) struct Build {
    head: Head,
    proj: Projection,
    build: SnapshotBuild,
    frame: Arc<SnapshotFrame>,
}

impl Build {
    /// Starts projecting `replica` (at `head.seq`, whose projection hash is
    /// `head.hash`); the frame is filled once every slice is done.
    pub(super) fn start(head: Head, proj: &Projection, replica: &Topic) -> (Build, Arc<SnapshotFrame>) {
        let frame = SnapshotFrame::pending();
        let build = Build {
            head,
            proj: proj.clone(),
            build: SnapshotBuild::new(proj, replica),
            frame: frame.clone(),
        };
        (build, frame)
    }

    /// The topic it projects.
    pub(super) fn topic(&self) -> &str {
        &self.head.topic
    }

    /// The topic changed since the build started.
    pub(super) fn record(&mut self, changes: &clonewire_core::Changes) {
        self.build.record(changes);
    }

    /// Projects up to `budget` entries of `replica` (`None`: the topic is gone);
    /// returns the entries done, and whether the build is complete.
    pub(super) fn step(&mut self, replica: Option<&Topic>, budget: usize) -> (usize, bool) {
        let Some(replica) = replica else {
            return (0, true);
        };
        let before = self.build.remaining();
        let done = self.build.step(&self.proj, replica, budget);
        (before - self.build.remaining(), done)
    }

    /// Hands the projection to the pool to be written into the frame. A build cut
    /// short (its topic gone, a new epoch or schema) is written as it stands: the
    /// clients waiting on it get a newer snapshot behind it, or find its hash wrong
    /// and ask for one.
    pub(super) fn finish(self) {
        write(self.frame, self.head, self.build.finish());
    }
}
