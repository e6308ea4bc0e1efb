//! HTTP on one port: `/` and static files (the page), `/ws` (clients), `/healthz`
//! and `/metrics`.
//!
//! The page comes from `dist/site/` (made by `npm run build`): every file beside its
//! brotli and gzip forms, compressed once at build time, and the module's files under
//! content-hashed names. A request gets the smallest form its `Accept-Encoding`
//! allows, a strong ETag per form (`If-None-Match` → 304), and `Cache-Control`:
//! `immutable` for hashed names, `no-cache` (revalidate) for the rest.
//!
//! A relay built without the `page` feature (or a debug build before `npm run build`)
//! has no page: `/` answers with a short page saying so and how to get one, and
//! every other missing file with a 404 that says the same (`relay/page_build.rs`).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRef, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
#[cfg(feature = "page")]
use rust_embed::RustEmbed;
use serde_json::json;

use crate::clients::auth::Auth;
use crate::clients::listener::ConnGuard;
use crate::shared::Relay;

/// The page and the module as served, precompressed and hashed (`npm run build`;
/// `--www` serves a folder instead). Embedded in release builds; debug builds read the
/// folder when asked.
#[cfg(feature = "page")]
#[derive(RustEmbed)]
#[folder = "../dist/site/"]
#[allow_missing = true]
struct Site;

/// A file of the built page.
#[cfg(feature = "page")]
fn site_get(path: &str) -> Option<rust_embed::EmbeddedFile> {
    Site::get(path)
}

/// A relay built without its page has none of its files.
#[cfg(not(feature = "page"))]
fn site_get(_path: &str) -> Option<rust_embed::EmbeddedFile> {
    None
}

/// Why a relay has no page, for what it answers instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoPage {
    /// Built without the `page` feature.
    Without,
    /// A debug build whose `dist/site/` is not built (yet).
    NotBuilt,
}

impl NoPage {
    /// Why this relay has no page, or `None` when it has one.
    fn now() -> Option<NoPage> {
        if !cfg!(feature = "page") {
            Some(NoPage::Without)
        } else if site_get("index.html").is_none() {
            Some(NoPage::NotBuilt)
        } else {
            None
        }
    }

    /// One sentence: why there is no page and how to get one.
    fn reason(self) -> &'static str {
        match self {
            NoPage::Without => {
                "This clonewire relay was built without its web page (--no-default-features), \
                 so it serves no page and no /pkg/ module files. To have the page, build the \
                 relay with it (at the repository's root: `npm ci && npm run build`, then \
                 `cargo install --path relay`), or give it a built page with --www DIR."
            }
            NoPage::NotBuilt => {
                "The page of this clonewire relay is not built yet (no dist/site/), so it \
                 serves no page and no /pkg/ module files. Run `npm ci && npm run build` at \
                 the repository's root, then reload (a debug build reads the page from there)."
            }
        }
    }

    /// `/` on a relay without its page: a page saying so (404, as there is none).
    fn index(self) -> Response {
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>clonewire relay: no page</title></head><body>\n\
             <h1>This relay has no page</h1>\n<p>{}</p>\n\
             <p>The relay itself works: clients connect to <code>/ws</code> (the npm module \
             <code>clonewire</code>), and <a href=\"/healthz\">/healthz</a> and \
             <a href=\"/metrics\">/metrics</a> answer.</p>\n</body></html>\n",
            self.reason().replace('&', "&amp;").replace('<', "&lt;")
        );
        (
            StatusCode::NOT_FOUND,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            html,
        )
            .into_response()
    }

    /// Any other file on a relay without its page: a 404 that says why.
    fn file(self, path: &str) -> Response {
        (
            StatusCode::NOT_FOUND,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            format!("not found: /{path}. {}\n", self.reason()),
        )
            .into_response()
    }
}

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
    if let (Some(no_page), None) = (NoPage::now(), &relay.config().www) {
        tracing::warn!("{}", no_page.reason());
    }
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
            crate::clients::session::serve(relay, socket, grant).await
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
        Some(crate::clients::auth::Access::All)
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

async fn static_file(State(relay): State<Arc<Relay>>, uri: Uri, headers: HeaderMap) -> Response {
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
    if let Some(response) = site_file(&path, &headers) {
        return response;
    }
    // Never a page whose module is missing without a word: say why and what to do.
    match NoPage::now() {
        Some(no_page) if path == "index.html" => no_page.index(),
        Some(no_page) => no_page.file(&path),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
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

/// A content coding the site holds files in, with the suffix of those files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Gzip => ".gz",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }
}

/// The codings an `Accept-Encoding` value allows, best first: brotli before gzip at
/// equal weight, none with `q=0`, `*` standing for any coding it does not name.
fn accepted_codings(accept: Option<&str>) -> Vec<Coding> {
    let (mut br, mut gzip, mut any) = (None, None, None);
    for item in accept.unwrap_or("").split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match name.as_str() {
            "br" => br = Some(q),
            "gzip" | "x-gzip" => gzip = Some(q),
            "*" => any = Some(q),
            _ => {}
        }
    }
    let br = br.or(any).unwrap_or(0.0);
    let gzip = gzip.or(any).unwrap_or(0.0);
    let mut codings: Vec<(f32, Coding)> = [(br, Coding::Brotli), (gzip, Coding::Gzip)]
        .into_iter()
        .filter(|(q, _)| *q > 0.0)
        .collect();
    // A stable sort keeps brotli first among equals.
    codings.sort_by(|a, b| b.0.total_cmp(&a.0));
    codings.into_iter().map(|(_, c)| c).collect()
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 asks
/// for this header, so `W/"x"` matches `"x"`).
fn none_match(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|value| {
        value
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    })
}

/// Names the build gave a content hash: `pkg/NAME.<16 hex digits>.EXT`. Such a file
/// never changes, so browsers may keep it for a year without asking again.
fn is_hashed(path: &str) -> bool {
    let Some(name) = path.strip_prefix("pkg/") else {
        return false;
    };
    let mut parts = name.rsplit('.');
    let (Some(_ext), Some(hash), Some(_stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A file of the built site in the best form the request accepts, or a 304 when its
/// `If-None-Match` names that form's ETag; `None` when the site has no such file.
fn site_file(path: &str, headers: &HeaderMap) -> Option<Response> {
    // The compressed forms are never addressed directly.
    if path.ends_with(".br") || path.ends_with(".gz") {
        return None;
    }
    let raw = site_get(path)?;
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    let has_forms = [Coding::Brotli, Coding::Gzip]
        .iter()
        .any(|c| site_get(&format!("{path}{}", c.suffix())).is_some());
    let chosen = accepted_codings(text(header::ACCEPT_ENCODING))
        .into_iter()
        .find_map(|c| site_get(&format!("{path}{}", c.suffix())).map(|f| (c, f)));
    let hash: String = raw.metadata.sha256_hash()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let etag = match &chosen {
        Some((coding, _)) => format!("\"{hash}-{}\"", coding.name()),
        None => format!("\"{hash}\""),
    };
    let cache = if is_hashed(path) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = if none_match(text(header::IF_NONE_MATCH), &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mime = mime_guess::from_path(path).first_or_octet_stream();
        let mut response = match &chosen {
            Some((_, form)) => Body::from(form.data.clone().into_owned()).into_response(),
            None => Body::from(raw.data.clone().into_owned()).into_response(),
        };
        if let Ok(value) = header::HeaderValue::from_str(mime.as_ref()) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        if let Some((coding, _)) = &chosen {
            response.headers_mut().insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static(coding.name()),
            );
        }
        response
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static(cache));
    if let Ok(value) = header::HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    if has_forms {
        h.insert(header::VARY, header::HeaderValue::from_static("accept-encoding"));
    }
    Some(response)
}

/// A relative path with no `..`, root or prefix components.
fn safe_path(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_owned())
}

/// The build script's decision about the page, tested with the relay's unit tests.
#[cfg(test)]
#[path = "../../page_build.rs"]
mod page_build;

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_relay_without_its_page_says_why_on_the_page_and_on_every_missing_file() {
        for no_page in [NoPage::Without, NoPage::NotBuilt] {
            let index = no_page.index();
            assert_eq!(index.status(), StatusCode::NOT_FOUND);
            assert_eq!(index.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
            let html = body_text(index).await;
            assert!(html.contains("This relay has no page"), "{html}");
            assert!(html.contains("npm ci &amp;&amp; npm run build"), "{html}");
            assert!(html.contains("/ws") && html.contains("/healthz"), "{html}");

            let file = no_page.file("pkg/index.0123456789abcdef.js");
            assert_eq!(file.status(), StatusCode::NOT_FOUND);
            let text = body_text(file).await;
            assert!(
                text.starts_with("not found: /pkg/index.0123456789abcdef.js. ")
                    && text.contains(no_page.reason()),
                "{text}"
            );
            assert!(
                text.contains("no /pkg/ module files") && text.contains("npm run build"),
                "{text}"
            );
        }
        assert!(NoPage::Without.reason().contains("--no-default-features"));
        assert!(NoPage::Without.reason().contains("--www DIR"));
    }

    #[test]
    fn accept_encoding_picks_brotli_then_gzip_and_honours_q_zero() {
        use Coding::{Brotli, Gzip};
        assert_eq!(accepted_codings(Some("gzip, deflate, br, zstd")), [Brotli, Gzip]);
        assert_eq!(accepted_codings(Some("gzip")), [Gzip]);
        assert_eq!(accepted_codings(Some("br;q=0.5, gzip;q=0.9")), [Gzip, Brotli]);
        assert_eq!(accepted_codings(Some("br;q=0, *")), [Gzip]);
        assert_eq!(accepted_codings(Some("identity")), []);
        assert_eq!(accepted_codings(Some("*;q=0")), []);
        assert_eq!(accepted_codings(None), []);
        assert_eq!(accepted_codings(Some(";;,,q=x")), []);
    }

    #[test]
    fn if_none_match_compares_weakly_and_knows_lists_and_star() {
        assert!(none_match(Some("\"a\""), "\"a\""));
        assert!(none_match(Some("W/\"a\""), "\"a\""));
        assert!(none_match(Some("\"b\", \"a\""), "\"a\""));
        assert!(none_match(Some("*"), "\"a\""));
        assert!(!none_match(Some("\"a-br\""), "\"a\""));
        assert!(!none_match(None, "\"a\""));
    }

    #[test]
    fn only_hashed_module_files_are_immutable() {
        assert!(is_hashed("pkg/clonewire_wasm_bg.0123456789abcdef.wasm"));
        assert!(is_hashed("pkg/index.0123456789abcdef.js"));
        assert!(!is_hashed("pkg/index.js"));
        assert!(!is_hashed("index.html"));
        assert!(!is_hashed("app.0123456789abcdef.js"));
        assert!(!is_hashed("pkg/index.0123456789abcdeg.js"));
    }
}
