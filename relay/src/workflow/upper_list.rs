//! `--follow-relay ws://host:port/ws`: one link per workflow of an upper relay, added
//! when the upper relay lists it and removed when it no longer does.
//!
//! A thread reads the upper relay's `/healthz` every [`SCAN_INTERVAL`] (with the URL's
//! query, so a `token` applies and only the workflows it may see are listed). A new
//! workflow gets a link thread like any suite's, following a
//! [`RelayUpstream`] over its own websocket, and every client already subscribed to
//! it is bound. A workflow the upper relay no longer lists is `removed` here too. The
//! states read are kept in a [`Directory`], which idle links (no client wants them,
//! so no websocket) report.
//!
//! A workflow whose id is already followed here (a suite, a Cylc workflow, or the same
//! workflow through another upper relay) is not followed again; a warning says so.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::WorkflowState;
use serde_json::Value;

use crate::config::Limits;
use crate::serve::metrics::Metrics;
use crate::shared::Relay;
use crate::workflow::link::WorkflowLink;
use crate::workflow::upstream::upper::{Directory, RelayUpstream, RelayUrl};

/// How often the upper relay's workflows are listed.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// A `/healthz` answer must come within this.
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest `/healthz` answer read.
const MAX_HEALTHZ_BYTES: u64 = 8 << 20;

/// Starts the discovery thread for the upper relay at `url`; it stops when the relay
/// shuts down.
pub(crate) fn spawn(
    relay: Arc<Relay>,
    url: RelayUrl,
    limits: Limits,
    metrics: Arc<Metrics>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("relay discovery {url}"))
        .spawn(move || run(&relay, &url, &limits, &metrics))
}

fn run(relay: &Relay, url: &RelayUrl, limits: &Limits, metrics: &Arc<Metrics>) {
    let shutdown = relay.shutdown_signal();
    let directory = Directory::default();
    // The links this thread added.
    let mut ours: BTreeSet<String> = BTreeSet::new();
    let mut warned: BTreeSet<String> = BTreeSet::new();
    let mut failing = false;
    while !*shutdown.borrow() {
        match list(url) {
            Ok(listed) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(upstream = %url, "upper relay answers again");
                }
                *directory.lock().unwrap_or_else(|e| e.into_inner()) = listed.clone();
                for id in listed.keys() {
                    if ours.contains(id) {
                        continue;
                    }
                    if relay.link(id).is_some() {
                        if warned.insert(id.clone()) {
                            tracing::warn!(workflow = %id, upstream = %url, "already followed here; not followed again through this relay");
                        }
                        continue;
                    }
                    tracing::info!(workflow = %id, upstream = %url, "following a workflow of an upper relay");
                    let (link_url, name, dir) = (url.clone(), id.clone(), directory.clone());
                    let spawned = WorkflowLink::spawn_upstream(id, limits, metrics.clone(), move || {
                        Ok::<_, std::convert::Infallible>(RelayUpstream::new(
                            link_url.clone(),
                            &name,
                            dir.clone(),
                        ))
                    });
                    match spawned {
                        Ok(link) => {
                            ours.insert(id.clone());
                            relay.add_link(link);
                        }
                        Err(e) => tracing::error!(workflow = %id, error = %e, "cannot start a link thread"),
                    }
                }
                let gone: Vec<String> = ours
                    .iter()
                    .filter(|id| !listed.contains_key(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    tracing::info!(workflow = %id, upstream = %url, "the upper relay no longer lists it");
                    relay.remove_link(&id);
                    ours.remove(&id);
                }
            }
            Err(e) => {
                // Links keep what they have and show `stale` while their own
                // connections fail; nothing is removed on an unanswered list.
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(upstream = %url, error = %e, "cannot list the upper relay's workflows; retrying");
                }
            }
        }
        let until = Instant::now() + SCAN_INTERVAL;
        while Instant::now() < until && !*shutdown.borrow() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The workflows the upper relay's `/healthz` lists, with their states.
fn list(url: &RelayUrl) -> Result<BTreeMap<String, WorkflowState>, String> {
    let (host, port) = url.host_port();
    let mut stream = url.tcp(HEALTHZ_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(HEALTHZ_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HEALTHZ_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    // HTTP/1.0: the answer is not chunked and ends when the connection closes.
    let host = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let request = format!("GET {} HTTP/1.0\r\nHost: {host}\r\n\r\n", url.healthz_path());
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_HEALTHZ_BYTES)
        .read_to_end(&mut answer)
        .map_err(|e| e.to_string())?;
    parse_healthz(&answer)
}

/// Reads a `/healthz` answer: status 200, then `{"workflows": {id: {"state": S}}}`.
fn parse_healthz(answer: &[u8]) -> Result<BTreeMap<String, WorkflowState>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let body_at = match response.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("a truncated answer".into()),
        Err(e) => return Err(format!("not an HTTP answer: {e}")),
    };
    if response.code != Some(200) {
        return Err(format!("/healthz answered {:?}", response.code));
    }
    let body: Value =
        serde_json::from_slice(&answer[body_at..]).map_err(|e| format!("/healthz body: {e}"))?;
    let Some(workflows) = body.get("workflows").and_then(Value::as_object) else {
        return Err("/healthz names no workflows (a token that may see them is needed)".into());
    };
    Ok(workflows
        .iter()
        .map(|(id, w)| {
            let state = w
                .get("state")
                .and_then(Value::as_str)
                .and_then(WorkflowState::from_name)
                .unwrap_or(WorkflowState::Stale);
            (id.clone(), state)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_answers_are_read_or_refused_clearly() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"status\":\"ok\",\"workflows\":{\"a\":{\"state\":\"live\"},\"b\":{\"state\":\"sleeping\"}}}";
        let listed = parse_healthz(ok).unwrap();
        assert_eq!(listed.get("a"), Some(&WorkflowState::Live));
        assert_eq!(listed.get("b"), Some(&WorkflowState::Stale));
        let no_token = b"HTTP/1.1 200 OK\r\n\r\n{\"status\":\"ok\"}";
        assert!(parse_healthz(no_token).unwrap_err().contains("token"));
        assert!(parse_healthz(b"HTTP/1.1 500 Oops\r\n\r\n").is_err());
        assert!(parse_healthz(b"HTTP/1.1 200 OK\r\n\r\nnot json").is_err());
        assert!(parse_healthz(b"garbage").is_err());
        assert!(parse_healthz(b"HTTP/1.1 200 OK\r\nx: y").is_err());
    }
}
