//! HTTP on one port: `/` and static files (the page), `/ws` (clients), `/healthz`
//! and `/metrics`.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rust_embed::RustEmbed;
use serde_json::json;

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

/// The router for a relay.
pub fn router(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(get(static_file))
        .with_state(relay)
}

async fn websocket(State(relay): State<Arc<Relay>>, upgrade: WebSocketUpgrade) -> Response {
    let limits = &relay.config().limits;
    if relay.client_count() >= limits.max_clients {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many clients").into_response();
    }
    upgrade
        .max_message_size(limits.max_client_message_bytes)
        .max_frame_size(limits.max_client_message_bytes)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(1 << 20)
        .on_upgrade(move |socket| crate::session::serve(relay, socket))
}

async fn healthz(State(relay): State<Arc<Relay>>) -> Response {
    let workflows: serde_json::Map<String, serde_json::Value> = relay
        .links()
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
