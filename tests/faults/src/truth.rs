//! The suite's truth: a [`Follower`] connected straight to a suite's own sockets (not
//! through the lossy forwarder), on its own thread. It follows every topic across
//! restarts and checks every suite hash; a checkpoint asks it for a copy.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use clonewire_core::{Schema, Topic};
use clonewire_suite::{Follower, FollowerConfig};

/// The suite's state as its follower holds it.
#[derive(Clone, Debug)]
pub struct Truth {
    /// Joined, and no topic awaits repair.
    pub synced: bool,
    /// The epoch followed.
    pub epoch: Option<String>,
    /// The suite's schema.
    pub schema: Schema,
    /// Every topic.
    pub topics: Vec<Topic>,
}

/// A follower on its own thread; stops when dropped.
pub struct TruthFollower {
    ask: Option<mpsc::SyncSender<mpsc::SyncSender<Truth>>>,
    thread: Option<JoinHandle<()>>,
}

impl TruthFollower {
    /// Follows the suite at `pub_endpoint`, `rep_endpoint`.
    pub fn start(pub_endpoint: &str, rep_endpoint: &str) -> Result<TruthFollower, String> {
        let mut config = FollowerConfig::new(pub_endpoint, rep_endpoint);
        config.machine.retry.request_timeout = Duration::from_millis(1000);
        config.machine.retry.backoff_max = Duration::from_millis(500);
        let mut follower = Follower::connect(config).map_err(|e| e.to_string())?;
        let (ask, asked) = mpsc::sync_channel::<mpsc::SyncSender<Truth>>(1);
        let thread = std::thread::Builder::new()
            .name("faults-truth".into())
            .spawn(move || loop {
                match asked.try_recv() {
                    Ok(reply) => {
                        let _ = reply.send(Truth {
                            synced: follower.is_synced() && follower.untrusted().is_empty(),
                            epoch: follower.epoch().map(str::to_owned),
                            schema: follower.schema().clone(),
                            topics: follower.topics().map(|(_, t, _)| t.clone()).collect(),
                        });
                    }
                    Err(mpsc::TryRecvError::Disconnected) => return,
                    Err(mpsc::TryRecvError::Empty) => {}
                }
                // Errors (a restarting suite) are retried by the follower itself.
                let _ = follower.next_event(Duration::from_millis(20));
            })
            .map_err(|e| e.to_string())?;
        Ok(TruthFollower {
            ask: Some(ask),
            thread: Some(thread),
        })
    }

    /// A copy of what the follower holds now.
    pub fn truth(&self) -> Option<Truth> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.ask.as_ref()?.send(tx).ok()?;
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }
}

impl Drop for TruthFollower {
    fn drop(&mut self) {
        self.ask.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
