//! The relay's settings: a TOML file (`--config`), overridden by flags. Every limit has
//! a sane default, and an invalid setting is an error before anything starts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clonewire_core::SubscriptionLimits;
use serde::{Deserialize, Serialize};

use crate::workflow::upstream::upper::RelayUrl;

/// Everything the relay needs to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address for HTTP and websockets (`/`, `/ws`, `/healthz`, `/metrics`).
    pub listen: SocketAddr,
    /// The suites to follow.
    #[serde(rename = "suite")]
    pub suites: Vec<SuiteConfig>,
    /// Also run simulated suites in-process and follow them.
    pub demo: bool,
    /// How many simulated suites `demo` starts.
    pub demo_suites: usize,
    /// Serve the page from this folder instead of the copy built into the binary.
    pub www: Option<PathBuf>,
    /// The relay's name in `hello` messages.
    pub name: String,
    /// Limits on clients, queues, history and requests.
    pub limits: Limits,
    /// Who may open `/ws` and which workflows they see (open when absent).
    pub auth: AuthConfig,
    /// The relay's own CURVE key pair for CURVE suites (this file holds the secret key,
    /// mode 0600; FILE.pub the public one), so that suites admitting only listed
    /// followers can list the relay. An ephemeral pair is used when absent.
    pub curve_key_file: Option<PathBuf>,
    /// Follow every running Cylc 8 workflow under this run directory (e.g.
    /// `~/cylc-run`); each workflow's id is its path relative to it (`demo/run1`).
    pub cylc_run: Option<PathBuf>,
    /// How long a Cylc workflow that stopped stays listed (as `stopped`) before it
    /// is `removed`.
    pub cylc_linger_secs: u64,
    /// Follow every clonewire suite that announces itself with a contact file in
    /// these folders (`clonewire-sim --contact-dir DIR`; see docs/discovery.md).
    pub discover: Vec<PathBuf>,
    /// How long a discovered suite whose contact file went (or is stale) stays
    /// listed (as `stopped`, or `stale`) before it is `removed`.
    pub discover_linger_secs: u64,
    /// Other relays to follow as a client (relay tiers): every workflow each lists,
    /// as `ws://host:port/ws` (a `?token=...` is sent on).
    #[serde(rename = "follow_relay")]
    pub follow_relays: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            suites: Vec::new(),
            demo: false,
            demo_suites: 3,
            www: None,
            name: "clonewire-relay".into(),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            curve_key_file: None,
            cylc_run: None,
            cylc_linger_secs: 60,
            discover: Vec::new(),
            discover_linger_secs: 60,
            follow_relays: Vec::new(),
        }
    }
}

impl Config {
    /// The relay's CURVE key pair from `curve_key_file`, if set; an unreadable, public
    /// or malformed file is a config error.
    pub fn curve_keys(&self) -> Result<Option<clonewire_zmq::sockets::CurveKeyPair>, ConfigError> {
        self.curve_key_file
            .as_deref()
            .map(clonewire_zmq::sockets::CurveKeyPair::from_file)
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("curve_key_file: {e}")))
    }
}

/// One suite to follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteConfig {
    /// The workflow id clients see.
    pub name: String,
    /// The suite's PUB endpoint, e.g. `tcp://127.0.0.1:5556`.
    #[serde(rename = "pub")]
    pub pub_endpoint: String,
    /// The suite's REP endpoint.
    #[serde(rename = "rep")]
    pub rep_endpoint: String,
    /// The suite's CURVE public key (Z85): links to it are encrypted and only a suite
    /// holding the matching secret key is followed. Absent: plain links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_key: Option<String>,
}

impl SuiteConfig {
    /// A suite followed over plain (unencrypted) links.
    pub fn new(
        name: impl Into<String>,
        pub_endpoint: impl Into<String>,
        rep_endpoint: impl Into<String>,
    ) -> SuiteConfig {
        SuiteConfig {
            name: name.into(),
            pub_endpoint: pub_endpoint.into(),
            rep_endpoint: rep_endpoint.into(),
            server_key: None,
        }
    }

    /// Parses the `--suite NAME=PUB_ENDPOINT,REP_ENDPOINT[,SERVER_KEY]` form (Z85 has
    /// no commas).
    pub fn parse_flag(text: &str) -> Result<SuiteConfig, String> {
        let (name, endpoints) = text
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=PUB_ENDPOINT,REP_ENDPOINT, got {text:?}"))?;
        let mut parts = endpoints.split(',').map(str::trim);
        let (Some(pub_endpoint), Some(rep_endpoint)) = (parts.next(), parts.next()) else {
            return Err(format!(
                "expected two endpoints separated by a comma, got {endpoints:?}"
            ));
        };
        let server_key = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err(format!(
                "expected PUB_ENDPOINT,REP_ENDPOINT[,SERVER_KEY], got {endpoints:?}"
            ));
        }
        let suite = SuiteConfig {
            server_key,
            ..SuiteConfig::new(name.trim(), pub_endpoint, rep_endpoint)
        };
        suite.validate()?;
        Ok(suite)
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > 200 || self.name.chars().any(char::is_control) {
            return Err(format!(
                "suite name {:?} must be 1 to 200 printable characters",
                self.name
            ));
        }
        for endpoint in [&self.pub_endpoint, &self.rep_endpoint] {
            let known = ["tcp://", "ipc://", "inproc://"]
                .iter()
                .any(|s| endpoint.starts_with(s));
            if !known || endpoint.len() < 8 {
                return Err(format!(
                    "suite {:?}: endpoint {endpoint:?} must look like tcp://HOST:PORT or ipc://PATH",
                    self.name
                ));
            }
        }
        if let Some(key) = &self.server_key {
            clonewire_zmq::sockets::CurvePublicKey::parse(key)
                .map_err(|why| format!("suite {:?}: server_key: {why}", self.name))?;
        }
        Ok(())
    }
}

/// A secret read from the config: never printed, logged or serialized.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// Authentication and origin rules for `/ws` (the `[auth]` table); see
/// the `auth` module. Without a secret, `/ws` needs no token and every client sees
/// every workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The HMAC secret that signs client tokens (at least 32 bytes). Prefer
    /// `jwt_secret_file`, which keeps it out of the config.
    pub jwt_secret: Option<Secret>,
    /// A file holding the HMAC secret (one trailing newline is ignored); mode 0600.
    pub jwt_secret_file: Option<PathBuf>,
    /// Tokens must carry this `aud` claim, when set.
    pub audience: Option<String>,
    /// Tokens must carry this `iss` claim, when set.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Exact origins (`https://host[:port]`) whose pages may open `/ws`; any other
    /// `Origin` is refused with 403. Absent: any origin.
    pub allowed_origins: Option<Vec<String>>,
    /// With `allowed_origins`, also accept requests without an `Origin` header
    /// (non-browser clients; browsers always send one).
    pub allow_no_origin: bool,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            jwt_secret: None,
            jwt_secret_file: None,
            audience: None,
            issuer: None,
            leeway_secs: 30,
            allowed_origins: None,
            allow_no_origin: false,
        }
    }
}

/// The shortest HMAC secret accepted, in bytes (HS256's output size).
pub const MIN_SECRET_BYTES: usize = 32;

impl AuthConfig {
    /// True when `/ws` requires a token.
    pub fn requires_token(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_secret_file.is_some()
    }

    /// Checks the settings that need no file access.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.jwt_secret.is_some() && self.jwt_secret_file.is_some() {
            return Err(ConfigError::Invalid(
                "auth: give jwt_secret or jwt_secret_file, not both".into(),
            ));
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.expose().len() < MIN_SECRET_BYTES {
                return Err(ConfigError::Invalid(format!(
                    "auth.jwt_secret must be at least {} bytes",
                    MIN_SECRET_BYTES
                )));
            }
        }
        if self.leeway_secs > 600 {
            return Err(ConfigError::Invalid(
                "auth.leeway_secs must be at most 600".into(),
            ));
        }
        for origin in self.allowed_origins.iter().flatten() {
            check_origin(origin)?;
        }
        Ok(())
    }

    /// Checks the settings and returns the token secret, if any, reading
    /// `jwt_secret_file` now.
    pub fn secret(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        self.validate()?;
        Ok(match (&self.jwt_secret, &self.jwt_secret_file) {
            (Some(secret), _) => Some(secret.expose().as_bytes().to_vec()),
            (None, Some(path)) => Some(read_secret_file(path)?),
            (None, None) => None,
        })
    }
}

/// Reads a secret file: its bytes less one trailing newline, at least
/// [`MIN_SECRET_BYTES`] long.
fn read_secret_file(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    let mut bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::Invalid(format!(
            "auth.jwt_secret_file {}: the secret must be at least {MIN_SECRET_BYTES} bytes",
            path.display()
        )));
    }
    warn_if_readable_by_others(path);
    Ok(bytes)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "the token secret file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &std::path::Path) {}

/// An exact origin: `http://` or `https://`, a host, an optional port, no path.
fn check_origin(origin: &str) -> Result<(), ConfigError> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let ok = rest.is_some_and(|host| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
    });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "auth.allowed_origins: {origin:?} must be an exact origin like https://example.org or http://127.0.0.1:8080 (scheme, host, optional port; no path, no wildcard)"
        )))
    }
}

/// Limits; each bounds a queue, a buffer or a wait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most websocket clients at once; more are refused with 503.
    pub max_clients: usize,
    /// Largest websocket message a client may send, in bytes.
    pub max_client_message_bytes: usize,
    /// Queued bytes for one client before its (workflow, topic)s lag: their further
    /// deltas are not queued, and one bridging delta per topic goes out when the
    /// client drains.
    pub client_queue_soft_bytes: usize,
    /// Queued bytes for one client before its queued deltas are dropped too (their
    /// topics lag the same way); past it with control frames alone it is closed.
    pub client_queue_hard_bytes: usize,
    /// How long one send to a client may block before the client is disconnected.
    pub client_send_timeout_ms: u64,
    /// Malformed messages in a row from one client before it is disconnected.
    pub max_bad_client_messages: u32,
    /// Deltas kept per topic so reconnecting clients can resume without a snapshot.
    pub history_deltas: usize,
    /// Bytes of history kept per topic at most (an estimate of the changed leaves);
    /// the oldest steps go first, and a single step bigger than this is not kept.
    pub history_bytes: usize,
    /// Seconds of history kept per topic at most: a client away longer than this
    /// resumes with a snapshot.
    pub history_max_age_secs: u64,
    /// Seconds a topic no client wants stays followed before it is dropped.
    pub topic_linger_secs: u64,
    /// Deadline of one request to a suite.
    pub suite_request_timeout_ms: u64,
    /// Deltas a suite link queues per topic while repairing it.
    pub suite_max_queued: usize,
    /// The same bound in bytes, per topic.
    pub suite_max_queued_bytes: usize,
    /// Bytes of one suite's stream read but not yet handled; past it, messages are
    /// dropped and the topics repaired (replay, else snapshot), so a relay that falls
    /// behind a suite holds at most this much of its stream.
    pub suite_intake_bytes: usize,
    /// Commands waiting for one workflow's link thread.
    pub workflow_commands: usize,
    /// How long a connection may take to send a request's headers (its first one,
    /// and each later one on a kept-alive connection) before it is closed.
    pub handshake_timeout_ms: u64,
    /// Connections still waiting for their first request; past this the oldest of
    /// them is closed to admit a new one. The relay also keeps this under half of the
    /// descriptors it may open, less a reserve, so half-open requests cannot use up
    /// the descriptors its clients and suites need.
    pub max_handshakes: usize,
    /// Most connections (websockets included) from one IP address; absent: no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    /// Bytes buffered for one connection's request headers.
    pub max_request_header_bytes: usize,
    /// The kernel's send buffer per connection (`SO_SNDBUF`); absent: the kernel's
    /// default, which grows up to `net.ipv4.tcp_wmem`'s maximum per stalled client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_send_buffer_bytes: Option<usize>,
    /// `subscribe` and `resync` messages a connection may send per second, on
    /// average (a token bucket); more get a `rate_limited` error.
    pub client_requests_per_sec: u32,
    /// How many `subscribe` and `resync` messages a connection may send at once.
    pub client_request_burst: u32,
    /// Rate-limited messages in a row before the connection is closed (1008).
    pub max_rate_limited: u32,
    /// Frames of at least this many bytes go out deflated (binary frames) to clients
    /// that said in `subscribe` they can inflate them; smaller ones stay text.
    pub compress_min_bytes: usize,
    /// Limits on subscriptions.
    pub query: SubscriptionLimits,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_clients: 10_000,
            max_client_message_bytes: 256 * 1024,
            client_queue_soft_bytes: 1 << 20,
            client_queue_hard_bytes: 8 << 20,
            client_send_timeout_ms: 30_000,
            max_bad_client_messages: 50,
            history_deltas: 1_000,
            history_bytes: crate::workflow::history::HistoryLimit::DEFAULT_BYTES,
            history_max_age_secs: crate::workflow::history::HistoryLimit::DEFAULT_MAX_AGE_MS / 1000,
            topic_linger_secs: 10,
            suite_request_timeout_ms: 3_000,
            suite_max_queued: 10_000,
            suite_max_queued_bytes: 16 << 20,
            suite_intake_bytes: 64 << 20,
            workflow_commands: 4_096,
            handshake_timeout_ms: 10_000,
            max_handshakes: 1_024,
            max_connections_per_ip: None,
            max_request_header_bytes: 64 * 1024,
            client_send_buffer_bytes: None,
            client_requests_per_sec: 5,
            client_request_burst: 20,
            max_rate_limited: 200,
            compress_min_bytes: 16 * 1024,
            query: SubscriptionLimits::default(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A setting is out of range or inconsistent.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Everything [`validate`](Config::validate) checks, and the files the settings
    /// name: the token secret and the CURVE key are read now, so a missing or short
    /// one is a config error before anything starts.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.validate()?;
        self.auth.secret()?;
        self.curve_keys()?;
        Ok(())
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validated().map(|_| ())
    }

    /// [`validate`](Config::validate), keeping what it parsed: the upper relays'
    /// URLs, in order.
    pub(crate) fn validated(&self) -> Result<Vec<RelayUrl>, ConfigError> {
        let mut names = BTreeSet::new();
        for suite in &self.suites {
            suite.validate().map_err(ConfigError::Invalid)?;
            if !names.insert(&suite.name) {
                return Err(ConfigError::Invalid(format!(
                    "suite {:?} is given twice",
                    suite.name
                )));
            }
        }
        let l = &self.limits;
        let positive = [
            ("max_clients", l.max_clients as u64),
            ("max_client_message_bytes", l.max_client_message_bytes as u64),
            ("client_queue_soft_bytes", l.client_queue_soft_bytes as u64),
            ("client_send_timeout_ms", l.client_send_timeout_ms),
            ("history_deltas", l.history_deltas as u64),
            ("history_bytes", l.history_bytes as u64),
            ("history_max_age_secs", l.history_max_age_secs),
            ("suite_request_timeout_ms", l.suite_request_timeout_ms),
            ("suite_max_queued", l.suite_max_queued as u64),
            ("suite_max_queued_bytes", l.suite_max_queued_bytes as u64),
            ("suite_intake_bytes", l.suite_intake_bytes as u64),
            ("workflow_commands", l.workflow_commands as u64),
            ("handshake_timeout_ms", l.handshake_timeout_ms),
            ("max_handshakes", l.max_handshakes as u64),
            (
                "max_connections_per_ip",
                l.max_connections_per_ip.map_or(1, |n| n as u64),
            ),
            (
                "client_send_buffer_bytes",
                l.client_send_buffer_bytes.map_or(1, |n| n as u64),
            ),
            ("client_requests_per_sec", u64::from(l.client_requests_per_sec)),
            ("client_request_burst", u64::from(l.client_request_burst)),
            ("max_rate_limited", u64::from(l.max_rate_limited)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} must be greater than 0"
                )));
            }
        }
        if l.max_request_header_bytes < 8192 {
            return Err(ConfigError::Invalid(
                "limits.max_request_header_bytes must be at least 8192".into(),
            ));
        }
        if l.client_queue_hard_bytes <= l.client_queue_soft_bytes {
            return Err(ConfigError::Invalid(
                "limits.client_queue_hard_bytes must be greater than limits.client_queue_soft_bytes".into(),
            ));
        }
        self.auth.validate()?;
        if let Some(dir) = &self.cylc_run {
            if !dir.is_dir() {
                return Err(ConfigError::Invalid(format!(
                    "cylc_run {}: not a folder",
                    dir.display()
                )));
            }
        }
        for dir in &self.discover {
            if !dir.is_dir() {
                return Err(ConfigError::Invalid(format!(
                    "discover {}: not a folder",
                    dir.display()
                )));
            }
        }
        let mut upper = Vec::new();
        for url in &self.follow_relays {
            let parsed = RelayUrl::parse(url).map_err(ConfigError::Invalid)?;
            if upper.contains(&parsed) {
                return Err(ConfigError::Invalid(format!(
                    "follow_relay {url:?} is given twice"
                )));
            }
            upper.push(parsed);
        }
        if self.demo && self.demo_suites == 0 {
            return Err(ConfigError::Invalid(
                "demo_suites must be at least 1 with demo".into(),
            ));
        }
        Ok(upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_defaults_fill_the_rest() {
        let config = Config::from_toml(
            r#"
            listen = "127.0.0.1:9000"
            curve_key_file = "/etc/clonewire/relay.key"
            [[suite]]
            name = "a"
            pub = "tcp://127.0.0.1:5556"
            rep = "tcp://127.0.0.1:5557"
            [limits]
            client_queue_soft_bytes = 1000
            client_queue_hard_bytes = 5000
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(
            config.curve_key_file.as_deref(),
            Some(Path::new("/etc/clonewire/relay.key"))
        );
        assert_eq!(config.suites[0].pub_endpoint, "tcp://127.0.0.1:5556");
        assert_eq!(config.limits.client_queue_hard_bytes, 5000);
        assert_eq!(config.limits.history_deltas, Limits::default().history_deltas);
    }

    #[test]
    fn upper_relays_to_follow_are_ws_urls_given_once() {
        let config = Config::from_toml("follow_relay = [\"ws://127.0.0.1:9000/ws\"]").unwrap();
        assert_eq!(config.follow_relays, ["ws://127.0.0.1:9000/ws"]);
        let wss = Config::from_toml("follow_relay = [\"wss://core/ws\"]")
            .unwrap_err()
            .to_string();
        assert!(wss.contains("only ws://"), "{wss}");
        let twice = Config::from_toml("follow_relay = [\"ws://a/ws\", \"ws://a/ws\"]")
            .unwrap_err()
            .to_string();
        assert!(twice.contains("given twice"), "{twice}");
    }

    #[test]
    fn a_cylc_run_directory_is_a_setting_that_must_exist() {
        let dir = std::env::temp_dir();
        let text = format!(
            "cylc_run = {:?}\ncylc_linger_secs = 5\n",
            dir.display().to_string()
        );
        let config = Config::from_toml(&text).unwrap();
        assert_eq!(config.cylc_run.as_deref(), Some(dir.as_path()));
        assert_eq!(config.cylc_linger_secs, 5);
        assert_eq!(Config::default().cylc_linger_secs, 60);
        let missing = Config::from_toml("cylc_run = '/nonexistent/cylc-run'")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("cylc_run /nonexistent/cylc-run: not a folder"),
            "{missing}"
        );
    }

    #[test]
    fn discover_folders_are_settings_that_must_exist() {
        let dir = std::env::temp_dir();
        let text = format!(
            "discover = [{:?}]\ndiscover_linger_secs = 5\n",
            dir.display().to_string()
        );
        let config = Config::from_toml(&text).unwrap();
        assert_eq!(config.discover, [dir]);
        assert_eq!(config.discover_linger_secs, 5);
        assert_eq!(Config::default().discover_linger_secs, 60);
        let missing = Config::from_toml("discover = ['/nonexistent/suites']")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("discover /nonexistent/suites: not a folder"),
            "{missing}"
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let unknown = Config::from_toml("lisen = \"x\"").unwrap_err().to_string();
        assert!(unknown.contains("lisen"), "{unknown}");
        let limits = Config::from_toml("[limits]\nclient_queue_soft_bytes = 10\nclient_queue_hard_bytes = 5")
            .unwrap_err()
            .to_string();
        assert!(limits.contains("client_queue_hard_bytes"), "{limits}");
        for zero in [
            "handshake_timeout_ms",
            "max_handshakes",
            "max_connections_per_ip",
            "client_requests_per_sec",
            "client_request_burst",
            "max_rate_limited",
            "client_send_buffer_bytes",
        ] {
            let text = format!("[limits]\n{zero} = 0");
            let e = Config::from_toml(&text).unwrap_err().to_string();
            assert!(e.contains(zero), "{e}");
        }
        let e = Config::from_toml("[limits]\nmax_request_header_bytes = 100")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_request_header_bytes"), "{e}");
        let twice = "[[suite]]\nname='a'\npub='tcp://h:1'\nrep='tcp://h:2'\n".repeat(2);
        assert!(Config::from_toml(&twice)
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }

    #[test]
    fn the_suite_intake_is_bounded_in_bytes() {
        assert_eq!(Limits::default().suite_intake_bytes, 64 << 20);
        let config = Config::from_toml("[limits]\nsuite_intake_bytes = 1048576").unwrap();
        assert_eq!(config.limits.suite_intake_bytes, 1 << 20);
        let zero = Config::from_toml("[limits]\nsuite_intake_bytes = 0")
            .unwrap_err()
            .to_string();
        assert!(zero.contains("suite_intake_bytes"), "{zero}");
    }

    #[test]
    fn auth_settings_parse_and_are_checked() {
        let config = Config::from_toml(
            r#"
            [auth]
            jwt_secret_file = "/run/secrets/clonewire"
            allowed_origins = ["https://ops.example.org", "http://127.0.0.1:8080"]
            "#,
        )
        .unwrap();
        assert!(config.auth.requires_token());
        assert_eq!(config.auth.allowed_origins.as_ref().map(Vec::len), Some(2));
        let short = Config::from_toml("[auth]\njwt_secret = 'short'")
            .unwrap_err()
            .to_string();
        assert!(short.contains("32 bytes"), "{short}");
        assert!(!short.contains("short'"), "{short}");
        let both = "[auth]\njwt_secret = '0123456789abcdef0123456789abcdef'\njwt_secret_file = '/x'";
        assert!(Config::from_toml(both)
            .unwrap_err()
            .to_string()
            .contains("not both"));
        for bad in ["*", "https://a.example/", "a.example", "https://a.example/path"] {
            let text = format!("[auth]\nallowed_origins = [{bad:?}]");
            assert!(Config::from_toml(&text).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_secret_is_never_printed() {
        let config =
            Config::from_toml("[auth]\njwt_secret = 'a-very-long-secret-of-forty-bytes-or-so!'").unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("forty"), "{shown}");
        assert!(!toml::to_string(&config).unwrap_or_default().contains("forty"));
    }

    #[test]
    fn suite_flags_parse_or_explain() {
        let s = SuiteConfig::parse_flag("demo=tcp://127.0.0.1:1,tcp://127.0.0.1:2").unwrap();
        assert_eq!(
            (s.name.as_str(), s.rep_endpoint.as_str()),
            ("demo", "tcp://127.0.0.1:2")
        );
        assert!(SuiteConfig::parse_flag("demo").unwrap_err().contains("NAME="));
        assert!(SuiteConfig::parse_flag("demo=tcp://a:1")
            .unwrap_err()
            .contains("comma"));
        assert!(SuiteConfig::parse_flag("demo=http://a:1,tcp://b:2")
            .unwrap_err()
            .contains("tcp://"));
        let key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
        let s = SuiteConfig::parse_flag(&format!("demo=tcp://a:1,tcp://b:2,{key}")).unwrap();
        assert_eq!(s.server_key.as_deref(), Some(key));
        assert!(SuiteConfig::parse_flag("demo=tcp://a:1,tcp://b:2,short")
            .unwrap_err()
            .contains("server_key"));
    }
}
