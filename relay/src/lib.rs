//! The clonewire relay: follows many workflows (clonewire suites, Cylc 8 workflows,
//! other relays) and serves projected, verified deltas to clients over websockets.
//!
//! The modules, by role:
//!
//! - [`config`] (public): settings from TOML and flags, with every limit;
//!   `shared`: the state the threads and connections share (links, registry, clients).
//! - `workflow`: the side that follows workflows.
//!   - `link`: one thread per workflow ([`LinkStatus`]): its upstream's replicas and
//!     its `views`, so apply → verify → project → queue happens in order;
//!   - `upstream`: what a link follows (a clonewire suite through its follower, a
//!     running Cylc 8 workflow, or a workflow of an upper relay), one `Upstream` trait;
//!   - `views`: per workflow, each distinct subscription's projection, hash and
//!     label, and bridging a client from what it holds to what it should hold;
//!   - `registry` (interned subscriptions), `history` (bounded per-topic history for
//!     resume), `threads` (the threads to wait for), `wake` (waking a link thread);
//!   - how links are found: `discovery` (contact files in `--cylc-run` and
//!     `--discover` folders) and `upper_list` (the workflows an upper relay lists, for
//!     `--follow-relay`).
//! - `clients`: the websocket side.
//!   - `listener`: the accept loop, with handshake timeouts and connection caps;
//!   - `session`: one websocket client (reader and writer);
//!   - `outbox`: each client's bounded send queue; a client behind lags at O(1) per
//!     delta and is bridged by one delta per topic when it drains;
//!   - `auth`: tokens and the Origin allow-list for `/ws`, and what a token may see;
//!   - `compress`: large frames deflated once for the clients that asked.
//! - `serve`: running it: `http` (the page, `/ws`, `/healthz`, `/metrics`),
//!   `metrics`, `demo` (simulated suites for `--demo`).
//!
//! [`start`] binds and runs a relay in the background; [`run`] runs one until a
//! shutdown future completes.

mod clients;
pub mod config;
mod serve;
mod shared;
mod workflow;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The longest [`Running::shutdown`] takes: clients are closed and their connections
/// waited for, then every thread; whatever still runs then is logged and left.
pub const SHUTDOWN_WITHIN: Duration = Duration::from_millis(1500);

use clonewire_suite::SimHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The link thread's building blocks (views, outboxes, interned subscriptions), for
/// the relay's own benchmarks only: not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::clients::outbox::Outbox;
    pub use crate::clients::ClientId;
    pub use crate::serve::metrics::OutboxCounters;
    pub use crate::workflow::history::HistoryLimit;
    pub use crate::workflow::registry::Registry;
    pub use crate::workflow::views::{ReplicaSource, SubscriptionViews};
}

pub use config::Config;
pub use workflow::link::LinkStatus;

/// Why the relay could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A socket or thread could not be opened.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The demo suites could not start.
    #[error("demo suites: {0}")]
    Demo(#[from] clonewire_suite::Error),
}

/// A relay serving in the background.
pub struct Running {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    relay: Arc<shared::Relay>,
    sims: Vec<SimHandle>,
}

impl Running {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The status of the workflow followed under this name, if any.
    pub fn status(&self, workflow: &str) -> Option<LinkStatus> {
        self.relay.link(workflow).map(|link| link.status())
    }

    /// Every followed workflow's name and status.
    pub fn statuses(&self) -> Vec<(String, LinkStatus)> {
        self.relay
            .links()
            .map(|link| (link.id.to_string(), link.status()))
            .collect()
    }

    /// Closes every client with a close frame and waits for its connection to end,
    /// stops the workflow links (ZeroMQ linger 0), the discovery threads and the demo
    /// suites, and waits for every thread; returns once all are gone, or at
    /// [`SHUTDOWN_WITHIN`] at most, logging what was still running then.
    pub async fn shutdown(self) -> Result<(), Error> {
        let deadline = std::time::Instant::now() + SHUTDOWN_WITHIN;
        let _ = self.shutdown.send(true);
        let served = tokio::time::timeout_at(deadline.into(), self.task).await;
        if served.is_err() {
            tracing::warn!("shutdown: client connections still open at the deadline are dropped");
        }
        let relay = self.relay.clone();
        let sims = self.sims;
        let left = tokio::task::spawn_blocking(move || {
            let left = relay.stop_and_join(deadline);
            sims.into_iter().for_each(SimHandle::stop);
            left
        })
        .await
        .unwrap_or_default();
        if !left.is_empty() {
            tracing::warn!(threads = ?left, "shutdown: threads still running at the deadline");
        }
        match served {
            Ok(Ok(Err(e))) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Starts a relay: demo suites (if asked), one link per suite, and the HTTP server.
pub async fn start(mut config: Config) -> Result<Running, Error> {
    // The upper relays' URLs are parsed here, once.
    let upper = config.validated()?;
    match clients::listener::raise_open_file_limit() {
        Some(n) => tracing::info!(open_files = n, "open-file limit"),
        None => tracing::info!("open-file limit: unlimited"),
    }
    let auth = Arc::new(clients::auth::Auth::from_config(&config.auth)?);
    let metrics = Arc::new(serve::metrics::Metrics::new());
    let mut sims = Vec::new();
    if config.demo {
        let (started, suites) = serve::demo::start(config.demo_suites)?;
        sims = started;
        for suite in suites {
            if config.suites.iter().any(|s| s.name == suite.name) {
                return Err(config::ConfigError::Invalid(format!(
                    "suite {:?} clashes with a demo suite's name",
                    suite.name
                ))
                .into());
            }
            config.suites.push(suite);
        }
    }
    let curve_keys = config.curve_keys()?;
    let links = config
        .suites
        .iter()
        .map(|s| workflow::link::WorkflowLink::spawn(s, &config.limits, curve_keys.as_ref(), metrics.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (shutdown, signal) = watch::channel(false);
    let context = |linger_secs| workflow::discovery::LinkContext {
        limits: config.limits.clone(),
        curve_keys: curve_keys.clone(),
        metrics: metrics.clone(),
        linger: Duration::from_secs(linger_secs),
    };
    let cylc = config
        .cylc_run
        .clone()
        .map(|dir| (dir, context(config.cylc_linger_secs)));
    let suites = (config.discover.clone(), context(config.discover_linger_secs));
    let follow_limits = config.limits.clone();
    let relay = Arc::new(shared::Relay::new(config, links, metrics.clone(), signal.clone()));
    // The threads end by themselves when the relay shuts down, which waits for them.
    for url in upper {
        let name = format!("relay discovery {url}");
        let thread = workflow::upper_list::spawn(relay.clone(), url, follow_limits.clone(), metrics.clone())?;
        relay.track_thread(name, thread);
    }
    if let Some((dir, context)) = cylc {
        let name = format!("discovery {}", dir.display());
        let finder = clonewire_cylc::discovery::RunDir::new(dir);
        relay.track_thread(name, workflow::discovery::spawn(relay.clone(), finder, context)?);
    }
    let (dirs, context) = suites;
    for dir in dirs {
        let name = format!("discovery {}", dir.display());
        let finder = clonewire_suite::contact::ContactDir::new(dir);
        relay.track_thread(
            name,
            workflow::discovery::spawn(relay.clone(), finder, context.clone())?,
        );
    }
    let app = serve::http::router(relay.clone(), auth);
    let limits = relay.config().limits.clone();
    let task = tokio::spawn(clients::listener::serve(
        listener,
        app,
        limits,
        relay.metrics().clone(),
        signal,
    ));
    Ok(Running {
        addr,
        shutdown,
        task,
        relay,
        sims,
    })
}

/// Runs a relay until `shutdown` completes, then shuts it down gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let running = start(config).await?;
    tracing::info!(addr = %running.local_addr(), "listening: the page at http://{}/", running.local_addr());
    shutdown.await;
    tracing::info!("shutting down");
    running.shutdown().await
}
