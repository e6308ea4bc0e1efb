//! A thin ZeroMQ driver for one [`Link`]: a SUB socket on the scheduler's PUB port
//! (topics `all` and `shutdown`) and a REQ socket on its REP port, both CURVE
//! clients with the workflow's own keys. Each call to [`Driver::step`] waits for at
//! most the time given, so whoever runs it (one thread per workflow) is never
//! stuck on a busy or dead scheduler.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clonewire_zmq::discovery::host_name;
use clonewire_zmq::sockets::{self, CurveClient};

use crate::contact::{Contact, ContactError, SERVICE_DIR};
use crate::keys::{self, KeyError};
use crate::link::{DataStore, Handshake, Link, LinkConfig, LinkEvent, Transmit};
use crate::request::{ALL_TOPIC, SHUTDOWN_TOPIC};

/// Published messages handled per step before events are handed out.
const SUB_BATCH: usize = 256;
/// Messages the SUB socket queues before the scheduler drops for us. Cylc's
/// messages can be megabytes (a 1,000-task burst is ~1.35 MB), so few.
const CYLC_SUB_HWM: i32 = 1_000;
/// The largest message accepted from a scheduler; bigger ones cut the connection
/// (ZeroMQ's own limit), and the link repairs what it missed.
const MAX_MESSAGE_BYTES: i64 = 256 << 20;

/// Why a driver could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The contact file is missing or bad.
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// The workflow's keys are missing or bad.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A socket could not be made or used.
    #[error(transparent)]
    Socket(#[from] clonewire_zmq::Error),
}

/// The sockets of one link, and the link.
pub struct Driver<S: DataStore> {
    ctx: zmq::Context,
    curve: CurveClient,
    req_endpoint: String,
    sub: zmq::Socket,
    req: Req,
    link: Link<S>,
}

/// The REQ socket and the monitor that reports its CURVE handshakes (a scheduler
/// that refuses our key says so at once, though it never answers).
struct Req {
    socket: zmq::Socket,
    monitor: zmq::Socket,
}

impl<S: DataStore> std::fmt::Debug for Driver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("req_endpoint", &self.req_endpoint)
            .finish()
    }
}

impl<S: DataStore> Driver<S> {
    /// Follows the workflow whose run directory is `run_dir`: reads its contact file
    /// and keys, then connects. `tune` may change the link's settings (deadlines,
    /// queue size) before it starts.
    pub fn open(
        ctx: &zmq::Context,
        run_dir: &Path,
        store: S,
        tune: impl FnOnce(&mut LinkConfig),
    ) -> Result<Driver<S>, DriverError> {
        let contact = Contact::load(run_dir)?;
        let curve = keys::workflow_client(&run_dir.join(SERVICE_DIR))?;
        let mut config = LinkConfig::new(contact.req_endpoint(), host_name());
        tune(&mut config);
        Driver::connect(ctx, &contact, curve, config, store)
    }

    /// Subscribes to `contact`'s PUB socket first, then opens the REQ socket: the
    /// link's first request is the snapshot, so no delta after it is missed.
    pub fn connect(
        ctx: &zmq::Context,
        contact: &Contact,
        curve: CurveClient,
        config: LinkConfig,
        store: S,
    ) -> Result<Driver<S>, DriverError> {
        let sub = sockets::socket(ctx, zmq::SUB, CYLC_SUB_HWM)?;
        sockets::curve_client(&sub, &curve)?;
        sub.set_maxmsgsize(MAX_MESSAGE_BYTES)
            .map_err(|e| clonewire_zmq::Error::zmq("set the SUB message size limit", e))?;
        for topic in [ALL_TOPIC, SHUTDOWN_TOPIC] {
            sub.set_subscribe(topic)
                .map_err(|e| clonewire_zmq::Error::zmq("subscribe", e))?;
        }
        let pub_endpoint = contact.pub_endpoint();
        sub.connect(&pub_endpoint)
            .map_err(|e| clonewire_zmq::Error::zmq(format!("connect {pub_endpoint}"), e))?;
        let req_endpoint = contact.req_endpoint();
        let req = open_req(ctx, &curve, &req_endpoint)?;
        Ok(Driver {
            ctx: ctx.clone(),
            curve,
            req_endpoint,
            sub,
            req,
            link: Link::new(config, store),
        })
    }

    /// The link (its state, store and counters).
    pub fn link(&self) -> &Link<S> {
        &self.link
    }

    /// The link, to take what changed out of its store.
    pub fn link_mut(&mut self) -> &mut Link<S> {
        &mut self.link
    }

    /// The next event of the link.
    pub fn poll_event(&mut self) -> Option<LinkEvent<S::Changes>> {
        self.link.poll_event()
    }

    /// Sends what the link wants sent, waits up to `max_wait` for a message, a
    /// reply or the link's next deadline, and hands the link what came. Returns
    /// early when something happened; take the events with
    /// [`poll_event`](Self::poll_event) after it.
    pub fn step(&mut self, max_wait: Duration) -> Result<(), DriverError> {
        self.step_or_wake(max_wait, None)
    }

    /// [`step`](Self::step) that also returns as soon as `wake` is readable: a thread
    /// that waits here when idle can be woken for other work.
    pub fn step_or_wake(
        &mut self,
        max_wait: Duration,
        wake: Option<BorrowedFd<'_>>,
    ) -> Result<(), DriverError> {
        self.flush()?;
        if self.link.is_stopped() {
            let mut items: Vec<zmq::PollItem<'_>> = wake
                .map(|fd| zmq::PollItem::from_fd(fd.as_raw_fd(), zmq::POLLIN))
                .into_iter()
                .collect();
            let millis = i64::try_from(max_wait.as_millis()).unwrap_or(i64::MAX);
            zmq::poll(&mut items, millis).map_err(|e| clonewire_zmq::Error::zmq("poll", e))?;
            return Ok(());
        }
        let now = Instant::now();
        let mut wait = max_wait;
        if let Some(at) = self.link.poll_timeout() {
            wait = wait.min(at.saturating_duration_since(now));
        }
        let (sub_ready, req_ready, monitor_ready) = {
            let mut items = vec![
                self.sub.as_poll_item(zmq::POLLIN),
                self.req.socket.as_poll_item(zmq::POLLIN),
                self.req.monitor.as_poll_item(zmq::POLLIN),
            ];
            if let Some(fd) = wake {
                items.push(zmq::PollItem::from_fd(fd.as_raw_fd(), zmq::POLLIN));
            }
            let millis = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            zmq::poll(&mut items, millis).map_err(|e| clonewire_zmq::Error::zmq("poll", e))?;
            (
                items[0].is_readable(),
                items[1].is_readable(),
                items[2].is_readable(),
            )
        };
        if monitor_ready {
            self.read_monitor();
        }
        if sub_ready {
            self.read_published()?;
        }
        if req_ready {
            match self.req.socket.recv_bytes(zmq::DONTWAIT) {
                Ok(reply) => {
                    // Cylc replies in one frame; drop any extra ones.
                    while self.req.socket.get_rcvmore().unwrap_or(false) {
                        let _ = self.req.socket.recv_bytes(zmq::DONTWAIT);
                    }
                    self.link.handle_reply(&reply, Instant::now());
                }
                Err(zmq::Error::EAGAIN) => {}
                Err(e) => return Err(clonewire_zmq::Error::zmq("receive a reply", e).into()),
            }
        }
        self.link.handle_timeout(Instant::now());
        self.flush()
    }

    /// Reads up to a batch of published messages without waiting.
    fn read_published(&mut self) -> Result<(), DriverError> {
        for _ in 0..SUB_BATCH {
            let frames = match self.sub.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => return Err(clonewire_zmq::Error::zmq("receive a published message", e).into()),
            };
            match &frames[..] {
                [topic, payload] => self.link.handle_published(topic, payload, Instant::now()),
                _ => tracing::debug!(
                    frames = frames.len(),
                    endpoint = %self.req_endpoint,
                    "ignored a published message that is not [topic, payload]"
                ),
            }
        }
        Ok(())
    }

    /// Hands the link the handshake outcomes the monitor reported.
    fn read_monitor(&mut self) {
        for _ in 0..SUB_BATCH {
            let Ok(frames) = self.req.monitor.recv_multipart(zmq::DONTWAIT) else {
                break;
            };
            // Frame 1: the event (u16) and its value (u32), little-endian.
            let Some(head) = frames.first().and_then(|f| f.get(..6)) else {
                continue;
            };
            let event = u16::from_le_bytes([head[0], head[1]]);
            let value = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
            let handshake = match zmq::SocketEvent::from_raw(event) {
                zmq::SocketEvent::HANDSHAKE_SUCCEEDED => Handshake::Succeeded,
                zmq::SocketEvent::HANDSHAKE_FAILED_AUTH => Handshake::Refused { status: value },
                zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL
                | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL => Handshake::Failed,
                _ => continue,
            };
            self.link.handle_handshake(handshake);
        }
    }

    /// Carries out the link's transmits.
    fn flush(&mut self) -> Result<(), DriverError> {
        while let Some(transmit) = self.link.poll_transmit(Instant::now()) {
            match transmit {
                Transmit::ReopenRequestSocket => {
                    self.req = open_req(&self.ctx, &self.curve, &self.req_endpoint)?;
                }
                Transmit::Send(frame) => {
                    // A fresh REQ socket queues the frame until it connects; if it
                    // cannot, the request's deadline reopens it.
                    if let Err(e) = self.req.socket.send(frame, zmq::DONTWAIT) {
                        tracing::debug!(endpoint = %self.req_endpoint, error = %e, "request not sent");
                    }
                }
            }
        }
        Ok(())
    }
}

/// A new REQ socket, a CURVE client connected to `endpoint`, with its monitor.
fn open_req(ctx: &zmq::Context, curve: &CurveClient, endpoint: &str) -> Result<Req, DriverError> {
    static MONITORS: AtomicU64 = AtomicU64::new(0);
    let zmq_err = |what: &str, e| clonewire_zmq::Error::zmq(what, e);
    let socket = sockets::socket(ctx, zmq::REQ, sockets::REQREP_HWM)?;
    sockets::curve_client(&socket, curve)?;
    socket
        .set_maxmsgsize(MAX_MESSAGE_BYTES)
        .map_err(|e| zmq_err("set the REQ message size limit", e))?;
    let monitor_endpoint = format!(
        "inproc://clonewire-cylc-req-monitor-{}",
        MONITORS.fetch_add(1, Ordering::Relaxed)
    );
    let events = zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32;
    socket
        .monitor(&monitor_endpoint, events)
        .map_err(|e| zmq_err("monitor the REQ socket", e))?;
    let monitor = sockets::socket(ctx, zmq::PAIR, sockets::REQREP_HWM)?;
    monitor
        .connect(&monitor_endpoint)
        .map_err(|e| zmq_err("connect the REQ monitor", e))?;
    socket
        .connect(endpoint)
        .map_err(|e| clonewire_zmq::Error::zmq(format!("connect {endpoint}"), e))?;
    Ok(Req { socket, monitor })
}
