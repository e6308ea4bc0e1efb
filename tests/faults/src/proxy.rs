//! A lossy forwarder between one suite's PUB socket and the relay: XSUB connected to
//! the suite, XPUB bound for the relay, so the relay's subscriptions pass upstream
//! (the suite still filters by topic). While faults are on it drops, duplicates and
//! delays deltas and heartbeats; a delayed message arrives after later ones.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often each fault hits a message, while faults are on.
#[derive(Clone, Copy, Debug)]
pub struct LinkFaults {
    /// Fraction of messages dropped.
    pub drop: f64,
    /// Fraction of messages sent twice.
    pub duplicate: f64,
    /// Fraction of messages held back.
    pub delay: f64,
    /// The longest hold.
    pub max_delay: Duration,
}

/// What the forwarder did, by kind.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Messages forwarded.
    pub forwarded: AtomicU64,
    /// Deltas dropped.
    pub dropped_deltas: AtomicU64,
    /// Heartbeats dropped.
    pub dropped_heartbeats: AtomicU64,
    /// Messages duplicated.
    pub duplicated: AtomicU64,
    /// Messages delayed (and so reordered).
    pub delayed: AtomicU64,
}

/// A running forwarder; stops when dropped.
pub struct Proxy {
    /// Where the relay connects its SUB socket.
    pub endpoint: String,
    /// Faults apply while set.
    pub faults_on: Arc<AtomicBool>,
    /// Counters.
    pub stats: Arc<ProxyStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Connects to `upstream` (a suite's PUB endpoint) and binds 127.0.0.1 on a free port.
    pub fn start(upstream: &str, faults: LinkFaults, seed: u64) -> Result<Proxy, zmq::Error> {
        let ctx = zmq::Context::new();
        let xsub = ctx.socket(zmq::XSUB)?;
        xsub.set_linger(0)?;
        xsub.set_rcvhwm(100_000)?;
        xsub.connect(upstream)?;
        let xpub = ctx.socket(zmq::XPUB)?;
        xpub.set_linger(0)?;
        xpub.set_sndhwm(100_000)?;
        xpub.bind("tcp://127.0.0.1:0")?;
        let endpoint = xpub.get_last_endpoint()?.map_err(|_| zmq::Error::EINVAL)?;
        let faults_on = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ProxyStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (on, st, stopping) = (faults_on.clone(), stats.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("faults-proxy".into())
            .spawn(move || forward(&xsub, &xpub, faults, &on, &st, &stopping, seed))
            .map_err(|_| zmq::Error::EINVAL)?;
        Ok(Proxy {
            endpoint,
            faults_on,
            stats,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn forward(
    xsub: &zmq::Socket,
    xpub: &zmq::Socket,
    faults: LinkFaults,
    on: &AtomicBool,
    stats: &ProxyStats,
    stop: &AtomicBool,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut held: Vec<(Instant, Vec<Vec<u8>>)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut items = [xsub.as_poll_item(zmq::POLLIN), xpub.as_poll_item(zmq::POLLIN)];
        if zmq::poll(&mut items, 5).is_err() {
            return;
        }
        let faulty = on.load(Ordering::Relaxed);
        // Subscriptions go upstream untouched.
        while let Ok(parts) = xpub.recv_multipart(zmq::DONTWAIT) {
            let _ = xsub.send_multipart(parts, 0);
        }
        let mut budget = 10_000;
        while let Ok(parts) = xsub.recv_multipart(zmq::DONTWAIT) {
            budget -= 1;
            let kind = parts.first().map(Vec::as_slice);
            let bye = kind == Some(b"_bye".as_slice());
            if faulty && !bye {
                let roll = rng.f64();
                if roll < faults.drop {
                    if kind == Some(b"_hb".as_slice()) {
                        stats.dropped_heartbeats.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.dropped_deltas.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                if roll < faults.drop + faults.delay {
                    stats.delayed.fetch_add(1, Ordering::Relaxed);
                    let hold = faults.max_delay.mul_f64(rng.f64());
                    held.push((Instant::now() + hold, parts));
                    continue;
                }
                if roll < faults.drop + faults.delay + faults.duplicate {
                    stats.duplicated.fetch_add(1, Ordering::Relaxed);
                    let _ = xpub.send_multipart(parts.clone(), 0);
                }
            }
            stats.forwarded.fetch_add(1, Ordering::Relaxed);
            let _ = xpub.send_multipart(parts, 0);
            if budget == 0 {
                break;
            }
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = held.drain(..).partition(|(at, _)| *at <= now || !faulty);
        held = later;
        for (_, parts) in due {
            stats.forwarded.fetch_add(1, Ordering::Relaxed);
            let _ = xpub.send_multipart(parts, 0);
        }
    }
}
