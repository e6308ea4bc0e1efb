//! HTTP on one port: `/` and static files (the page), `/ws` (clients), `/healthz`
//! and `/metrics`.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRef, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use rust_embed::RustEmbed;
use serde_json::json;

use crate::auth::Auth;
use crate::listener::ConnGuard;
use crate::relay::Relay;

/// The page, built into the binary (`--www` serves a folder instead).
#[derive(RustEmbed)]
#[folder = "../www/"]
#[allow_missing = true]
struct Page;

/// The npm module's build (`npm run build`), served under `/pkg/` for the page.
#[derive(RustEmbed)]
#[folder = "../dist/"]
#[allow_missing = true]
struct Package;

/// What the handlers share.
#[derive(Clone)]
struct App {
    relay: Arc<Relay>,
    auth: Arc<Auth>,
}

impl FromRef<App> for Arc<Relay> {
    fn from_ref(app: &App) -> Arc<Relay> {
        app.relay.clone()
    }
}

impl FromRef<App> for Arc<Auth> {
    fn from_ref(app: &App) -> Arc<Auth> {
        app.auth.clone()
    }
}

/// The router for a relay; `auth` guards `/ws` and what `/healthz` names.
pub fn router(relay: Arc<Relay>, auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(get(static_file))
        .with_state(App { relay, auth })
}

/// Origin and token are checked before anything else, so a refused request learns
/// nothing (not even whether it was a well-formed upgrade).
async fn websocket(
    State(relay): State<Arc<Relay>>,
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    uri: Uri,
    peer: Option<Extension<ConnGuard>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let grant = match auth.check_websocket(&headers, uri.query()) {
        Ok(grant) => grant,
        Err(refusal) => {
            tracing::debug!(?refusal, "websocket refused");
            return refusal.into_response();
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let limits = &relay.config().limits;
    if relay.client_count() >= limits.max_clients {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many clients").into_response();
    }
    upgrade
        .max_message_size(limits.max_client_message_bytes)
        .max_frame_size(limits.max_client_message_bytes)
        .write_buffer_size(64 * 1024)
        // A snapshot can be many MiB and must fit whole: a smaller cap fails the send
        // and drops the client. Memory stays bounded by the outbox; the writer sends
        // one frame at a time and waits for it to flush.
        .max_write_buffer_size(usize::MAX)
        .on_upgrade(move |socket| async move {
            // The session counts against its address's connection cap while it lasts.
            let _peer = peer;
            crate::session::serve(relay, socket, grant).await
        })
}

/// With tokens required, workflows are named only to a request whose token may see
/// them (liveness probes without one still get `"status": "ok"`).
async fn healthz(
    State(relay): State<Arc<Relay>>,
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let access = if auth.requires_token() {
        auth.check_token(&headers, uri.query()).ok().map(|g| g.access)
    } else {
        Some(crate::auth::Access::All)
    };
    let Some(access) = access else {
        return Json(json!({"status": "ok"})).into_response();
    };
    let workflows: serde_json::Map<String, serde_json::Value> = relay
        .links()
        .filter(|l| access.allows(&l.id))
        .map(|l| {
            let s = l.status();
            (l.id.to_string(), json!({"state": s.state.as_str(), "epoch": s.epoch, "topics": s.topics, "clients": s.clients}))
        })
        .collect();
    Json(json!({"status": "ok", "clients": relay.client_count(), "workflows": workflows})).into_response()
}

async fn metrics(State(relay): State<Arc<Relay>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        relay.metrics_text(),
    )
        .into_response()
}

async fn static_file(State(relay): State<Arc<Relay>>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_owned()
    };
    let Some(safe) = safe_path(&path) else {
        return (StatusCode::BAD_REQUEST, "bad path").into_response();
    };
    if let Some(dir) = &relay.config().www {
        if let Ok(bytes) = tokio::fs::read(dir.join(&safe)).await {
            return file(&path, bytes);
        }
    }
    if let Some(found) = Page::get(&path) {
        return file(&path, found.data.into_owned());
    }
    if let Some(rest) = path.strip_prefix("pkg/") {
        if let Some(found) = Package::get(rest) {
            return file(&path, found.data.into_owned());
        }
    }
    (StatusCode::NOT_FOUND, "not found").into_response()
}

fn file(path: &str, bytes: Vec<u8>) -> Response {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    (
        [
            (header::CONTENT_TYPE, mime.as_ref().to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        Body::from(bytes),
    )
        .into_response()
}

/// A relative path with no `..`, root or prefix components.
fn safe_path(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_owned())
}
