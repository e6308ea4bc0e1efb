//! ZeroMQ socket setup in one place, so every socket gets deliberate limits:
//! high-water marks (bounded queues), linger 0 (closing never waits on a dead peer)
//! and, for requests, a maximum message size; and CURVE (encryption and server
//! authentication) when a suite has a key.

use crate::Error;

/// Messages a PUB socket queues per subscriber before it drops (ZeroMQ's PUB never
/// blocks; a subscriber that falls this far behind sees a gap and repairs it).
pub const PUB_HWM: i32 = 10_000;
/// Messages a SUB socket queues before the publisher starts dropping for it. Kept
/// short: a follower reads its SUB socket promptly into its own intake, which is
/// bounded in bytes (a message count is no bound when one message may be megabytes).
pub const SUB_HWM: i32 = 100;
/// REQ/REP queues: one request is in flight per connection, so a few is plenty.
pub const REQREP_HWM: i32 = 16;
/// The largest request the REP socket accepts; bigger ones are dropped by ZeroMQ.
pub const MAX_REQUEST_BYTES: i64 = 1 << 20;

/// A CURVE secret key (Z85, 40 characters): a suite's server key, or a follower's
/// client key. Never printed: its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct CurveSecretKey(pub String);

impl std::fmt::Debug for CurveSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CurveSecretKey(..)")
    }
}

impl CurveSecretKey {
    /// Reads a secret key file: the Z85 key, surrounding whitespace ignored. On Unix
    /// a file that group or others may read is refused, like ssh does.
    pub fn from_file(path: &std::path::Path) -> Result<CurveSecretKey, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("CURVE secret key file {}: {e}", path.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| Error::Config(format!("CURVE secret key file {}: {e}", path.display())))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(Error::Config(format!(
                    "CURVE secret key file {} may be read by group or others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                )));
            }
        }
        let key = CurveSecretKey(text.trim().to_owned());
        z85_key(&key.0)
            .map_err(|why| Error::Config(format!("CURVE secret key file {}: {why}", path.display())))?;
        Ok(key)
    }

    /// The matching public key (CURVE's keys are X25519: the public key is the
    /// secret one times the curve's base point).
    pub fn public_key(&self) -> Result<CurvePublicKey, Error> {
        let bytes: [u8; 32] = z85_key(&self.0)
            .map_err(Error::Config)?
            .try_into()
            .map_err(|_| Error::Config("a CURVE key is 32 bytes".into()))?;
        let public = curve25519_dalek::MontgomeryPoint::mul_base_clamped(bytes);
        zmq::z85_encode(public.as_bytes())
            .map(CurvePublicKey)
            .map_err(|e| Error::Config(format!("cannot encode a CURVE key: {e}")))
    }
}

/// A CURVE public key (Z85, 40 characters). Not secret: a follower needs the suite's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurvePublicKey(pub String);

impl CurvePublicKey {
    /// Checks that `text` (surrounding whitespace ignored) is a Z85 key.
    pub fn parse(text: &str) -> Result<CurvePublicKey, String> {
        let key = text.trim();
        z85_key(key)?;
        Ok(CurvePublicKey(key.to_owned()))
    }

    /// Reads a list of public keys: one per line, as the line's first word (the rest
    /// of the line, e.g. a name, is ignored). Blank lines and lines starting with `# `
    /// are comments (`#` is a Z85 character, but a space never is). Errors name the
    /// line.
    pub fn list_from_file(path: &std::path::Path) -> Result<Vec<CurvePublicKey>, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("CURVE key list {}: {e}", path.display())))?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line == "#" || line.starts_with("# ") {
                continue;
            }
            let word = line.split_whitespace().next().unwrap_or_default();
            let key = CurvePublicKey::parse(word).map_err(|why| {
                Error::Config(format!("CURVE key list {}:{}: {why}", path.display(), n + 1))
            })?;
            keys.push(key);
        }
        Ok(keys)
    }
}

/// A CURVE key pair.
#[derive(Clone, Debug)]
pub struct CurveKeyPair {
    /// The public half, given to peers.
    pub public: CurvePublicKey,
    /// The secret half, kept by its owner.
    pub secret: CurveSecretKey,
}

impl CurveKeyPair {
    /// Reads a pair as `clonewire-tap --generate-keys FILE` writes it: the secret key
    /// from FILE (which only its owner may read) and the public key from FILE.pub.
    pub fn from_file(path: &std::path::Path) -> Result<CurveKeyPair, Error> {
        let secret = CurveSecretKey::from_file(path)?;
        let mut public_path = path.as_os_str().to_owned();
        public_path.push(".pub");
        let public_path = std::path::PathBuf::from(public_path);
        let text = std::fs::read_to_string(&public_path)
            .map_err(|e| Error::Config(format!("CURVE public key file {}: {e}", public_path.display())))?;
        let public = CurvePublicKey::parse(&text).map_err(|why| {
            Error::Config(format!("CURVE public key file {}: {why}", public_path.display()))
        })?;
        Ok(CurveKeyPair { public, secret })
    }

    /// A fresh random pair from libzmq. Fails when libzmq was built without CURVE.
    pub fn generate() -> Result<CurveKeyPair, Error> {
        require_curve()?;
        let pair = zmq::CurveKeyPair::new().map_err(|e| Error::zmq("generate a CURVE key pair", e))?;
        let encode = |bytes: &[u8]| {
            zmq::z85_encode(bytes).map_err(|e| Error::Config(format!("cannot encode a CURVE key: {e}")))
        };
        Ok(CurveKeyPair {
            public: CurvePublicKey(encode(&pair.public_key)?),
            secret: CurveSecretKey(encode(&pair.secret_key)?),
        })
    }
}

/// How a follower opens encrypted links to a CURVE suite.
#[derive(Clone, Debug)]
pub struct CurveClient {
    /// The suite's public key; a suite with another key is not talked to.
    pub server_key: CurvePublicKey,
    /// The follower's own pair: an ephemeral one, unless the suite admits only listed
    /// followers (see `PublisherConfig::curve_allowed_clients`).
    pub keys: CurveKeyPair,
}

impl CurveClient {
    /// Trusts `server_key` and uses a fresh ephemeral client pair.
    pub fn ephemeral(server_key: CurvePublicKey) -> Result<CurveClient, Error> {
        Ok(CurveClient {
            server_key,
            keys: CurveKeyPair::generate()?,
        })
    }
}

/// The Z85 alphabet (ZeroMQ RFC 32); libzmq's decoder does not check it.
const Z85: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// The 32 bytes of a Z85 key, or why it is not one.
pub(crate) fn z85_key(text: &str) -> Result<Vec<u8>, String> {
    if text.len() != 40 {
        return Err(format!("a CURVE key is 40 Z85 characters, got {}", text.len()));
    }
    if !text.chars().all(|c| Z85.contains(c)) {
        return Err("not a Z85-encoded CURVE key".to_owned());
    }
    match zmq::z85_decode(text) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => Err("not a Z85-encoded CURVE key".to_owned()),
    }
}

/// Fails unless this libzmq supports CURVE.
pub fn require_curve() -> Result<(), Error> {
    if zmq::has("curve") == Some(true) {
        Ok(())
    } else {
        Err(Error::Config(
            "this libzmq was built without CURVE support".into(),
        ))
    }
}

/// Makes `socket` a CURVE server with `secret` (before it binds): every peer must
/// know the matching public key, and traffic is encrypted.
pub fn curve_server(socket: &zmq::Socket, secret: &CurveSecretKey) -> Result<(), Error> {
    require_curve()?;
    let key = z85_key(&secret.0).map_err(Error::Config)?;
    socket
        .set_curve_server(true)
        .map_err(|e| Error::zmq("enable CURVE", e))?;
    socket
        .set_curve_secretkey(&key)
        .map_err(|e| Error::zmq("set the CURVE secret key", e))
}

/// Makes `socket` a CURVE client of the server `curve.server_key` (before it
/// connects).
pub fn curve_client(socket: &zmq::Socket, curve: &CurveClient) -> Result<(), Error> {
    require_curve()?;
    let server = z85_key(&curve.server_key.0).map_err(Error::Config)?;
    let public = z85_key(&curve.keys.public.0).map_err(Error::Config)?;
    let secret = z85_key(&curve.keys.secret.0).map_err(Error::Config)?;
    socket
        .set_curve_serverkey(&server)
        .map_err(|e| Error::zmq("set the CURVE server key", e))?;
    socket
        .set_curve_publickey(&public)
        .map_err(|e| Error::zmq("set the CURVE public key", e))?;
    socket
        .set_curve_secretkey(&secret)
        .map_err(|e| Error::zmq("set the CURVE secret key", e))
}

/// The process's ZeroMQ context for following: one I/O thread (and one reaper) for
/// every link, however many workflows a relay follows, instead of two threads a link.
/// It lives as long as the process.
pub fn shared_context() -> &'static zmq::Context {
    static CONTEXT: std::sync::OnceLock<zmq::Context> = std::sync::OnceLock::new();
    CONTEXT.get_or_init(zmq::Context::new)
}

/// Makes a socket of `kind` with linger 0 and the given high-water marks.
pub fn socket(ctx: &zmq::Context, kind: zmq::SocketType, hwm: i32) -> Result<zmq::Socket, Error> {
    let socket = ctx.socket(kind).map_err(|e| Error::zmq("create socket", e))?;
    socket.set_linger(0).map_err(|e| Error::zmq("set linger", e))?;
    socket
        .set_sndhwm(hwm)
        .map_err(|e| Error::zmq("set send high-water mark", e))?;
    socket
        .set_rcvhwm(hwm)
        .map_err(|e| Error::zmq("set receive high-water mark", e))?;
    Ok(socket)
}

/// Binds `socket` to `endpoint` and returns the endpoint actually bound (so
/// `tcp://127.0.0.1:0` reports the port the system chose).
pub fn bind(socket: &zmq::Socket, endpoint: &str) -> Result<String, Error> {
    socket
        .bind(endpoint)
        .map_err(|e| Error::zmq(format!("bind {endpoint}"), e))?;
    match socket.get_last_endpoint() {
        Ok(Ok(bound)) => Ok(bound),
        Ok(Err(_)) => Err(Error::Config(format!(
            "bound endpoint for {endpoint} is not UTF-8"
        ))),
        Err(e) => Err(Error::zmq("read the bound endpoint", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_follows_from_the_secret_key_as_libzmq_makes_them() {
        for _ in 0..4 {
            let pair = CurveKeyPair::generate().unwrap();
            assert_eq!(pair.secret.public_key().unwrap(), pair.public);
        }
        assert!(CurveSecretKey("short".into()).public_key().is_err());
    }
}
