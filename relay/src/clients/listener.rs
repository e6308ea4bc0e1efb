//! The relay's own accept loop, so that connections cost nothing until they prove
//! themselves:
//!
//! - a request's headers must arrive within `handshake_timeout_ms` (hyper's header
//!   read timeout, which also covers idle keep-alive connections);
//! - at most `max_handshakes` connections may be waiting for their first request, and
//!   never more than half of the descriptors the process may open less a reserve
//!   ([`handshake_cap`]); past that the oldest is closed, so a flood of half-open
//!   requests cannot lock out a client that sends its request at once;
//! - optionally at most `max_connections_per_ip` connections (websockets included)
//!   per peer address;
//! - when the process is out of file descriptors anyway (many clients), the oldest
//!   half-open connection is closed to free one; with none to close, accepting pauses
//!   briefly (no busy loop) while existing connections are served;
//! - when told to stop it closes every connection (websocket sessions included) and
//!   returns once each has ended: every one holds a [`ConnGuard`] until it does.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};

use crate::config::Limits;
use crate::serve::metrics::Metrics;

/// Raises the soft open-file limit to the hard one and returns the figure now in
/// force (`None`: unlimited). Each connection needs a descriptor, so a low default
/// (often 1,024) would cap the relay's clients.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let wanted = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, wanted) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// How many connections may wait for their first request at once: `max_handshakes`,
/// but at most half of the descriptors left after a reserve (a quarter of the limit,
/// at least 64) for the relay's own sockets and files.
pub fn handshake_cap(max_handshakes: usize, descriptor_limit: Option<u64>) -> usize {
    let Some(limit) = descriptor_limit.and_then(|l| usize::try_from(l).ok()) else {
        return max_handshakes;
    };
    let reserve = (limit / 4).max(64);
    max_handshakes.min(limit.saturating_sub(reserve) / 2).max(1)
}

/// Closes the connection that has waited longest for its first request; false when
/// none is waiting.
fn shed_oldest(shared: &Shared, metrics: &Metrics) -> bool {
    let oldest = shared
        .handshaking
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_first();
    match oldest {
        Some((_, evict)) => {
            evict.notify_one();
            metrics.handshakes_evicted.inc();
            true
        }
        None => false,
    }
}

/// Held by a connection for its life, and by its websocket session after an upgrade:
/// what counts it against its peer's per-address cap, and what [`serve`] waits for
/// when it stops.
#[derive(Clone)]
pub struct ConnGuard {
    _slot: Arc<PeerSlot>,
}

struct PeerSlot {
    ip: IpAddr,
    shared: Arc<Shared>,
    /// Dropped with the last guard of the connection: `serve` waits for every one.
    _open: mpsc::Sender<()>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut per_ip = self.shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// State shared by the accept loop and the connections.
#[derive(Default)]
struct Shared {
    /// Connections waiting for their first request, oldest first, with what closes them.
    handshaking: Mutex<BTreeMap<u64, Arc<Notify>>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    next: AtomicU64,
}

impl Shared {
    fn handshake_done(&self, id: u64) {
        self.handshaking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// Serves `app` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.handshake_timeout_ms))
        .max_buf_size(limits.max_request_header_bytes.max(8192));
    let http = Arc::new(http);
    let descriptors = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let max_handshakes = handshake_cap(limits.max_handshakes, descriptors);
    if max_handshakes < limits.max_handshakes {
        tracing::info!(
            max_handshakes,
            open_file_limit = descriptors,
            "half-open connections are capped below max_handshakes by the open-file limit"
        );
    }
    let mut last_complaint: Option<tokio::time::Instant> = None;
    // Never sent on: each connection holds a sender until it ends.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => {
                drop(listener);
                drop(open);
                // Every connection saw `stop` too and is closing.
                let _ = all_closed.recv().await;
                return Ok(());
            }
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Most likely out of descriptors: free one held by a half-open
                // connection; with none, the pending connections wait in the kernel's
                // backlog while the ones held are served and may free some.
                metrics.accept_errors.inc();
                let pause = if shed_oldest(&shared, &metrics) {
                    Duration::from_millis(5)
                } else {
                    if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "cannot accept connections; pausing");
                        last_complaint = Some(tokio::time::Instant::now());
                    }
                    Duration::from_millis(100)
                };
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let Some(guard) = admit(&shared, &limits, peer, &open) else {
            metrics.connections_refused.inc();
            drop(tcp);
            continue;
        };
        let id = shared.next.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        {
            let mut handshaking = shared.handshaking.lock().unwrap_or_else(|e| e.into_inner());
            while handshaking.len() >= max_handshakes {
                if let Some((_, oldest)) = handshaking.pop_first() {
                    oldest.notify_one();
                    metrics.handshakes_evicted.inc();
                }
            }
            handshaking.insert(id, evict.clone());
        }
        if let Some(bytes) = limits.client_send_buffer_bytes {
            if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(&tcp, bytes) {
                tracing::debug!(error = %e, "cannot set SO_SNDBUF");
            }
        }
        tokio::spawn(connection(
            tcp,
            app.clone(),
            http.clone(),
            shared.clone(),
            id,
            evict,
            guard,
            stop.clone(),
        ));
    }
}

/// Counts a new connection against its address's cap; `None` when it is over.
fn admit(
    shared: &Arc<Shared>,
    limits: &Limits,
    peer: SocketAddr,
    open: &mpsc::Sender<()>,
) -> Option<ConnGuard> {
    let ip = peer.ip();
    let mut per_ip = shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
    let n = per_ip.entry(ip).or_insert(0);
    if limits.max_connections_per_ip.is_some_and(|max| *n >= max) {
        return None;
    }
    *n += 1;
    Some(ConnGuard {
        _slot: Arc::new(PeerSlot {
            ip,
            shared: shared.clone(),
            _open: open.clone(),
        }),
    })
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    tcp: TcpStream,
    app: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    shared: Arc<Shared>,
    id: u64,
    evict: Arc<Notify>,
    guard: ConnGuard,
    mut stop: watch::Receiver<bool>,
) {
    // Deltas are small frames that should leave at once, not wait for Nagle.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let service = {
        let shared = shared.clone();
        let guard = guard.clone();
        hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            // Its first request's headers are in: no longer a handshake.
            shared.handshake_done(id);
            request.extensions_mut().insert(guard.clone());
            let mut app = app.clone();
            async move {
                let response = tower_service::Service::call(&mut app, request.map(axum::body::Body::new));
                Ok::<_, Infallible>(response.await.unwrap_or_else(|never| match never {}))
            }
        })
    };
    let conn = http.serve_connection(TokioIo::new(tcp), service).with_upgrades();
    tokio::pin!(conn);
    let mut evicted = false;
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = evict.notified() => evicted = true,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
        }
    }
    if evicted {
        tracing::debug!("closed a connection still in its handshake to admit a newer one");
    }
    shared.handshake_done(id);
    drop(guard);
}

/// Completes once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Errors that concern one incoming connection only (the next accept may succeed).
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::handshake_cap;

    #[test]
    fn half_open_connections_get_at_most_half_of_the_descriptors_left_after_a_reserve() {
        assert_eq!(handshake_cap(1_024, None), 1_024);
        // 1,024 descriptors: 256 in reserve, half of the rest.
        assert_eq!(handshake_cap(1_024, Some(1_024)), 384);
        assert_eq!(handshake_cap(100, Some(1_024)), 100);
        assert_eq!(handshake_cap(1_024, Some(1 << 20)), 1_024);
        // A tiny limit still admits one at a time.
        assert_eq!(handshake_cap(1_024, Some(96)), 16);
        assert_eq!(handshake_cap(1_024, Some(10)), 1);
    }
}
