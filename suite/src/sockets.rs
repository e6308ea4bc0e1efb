//! ZeroMQ socket setup in one place, so every socket gets deliberate limits:
//! high-water marks (bounded queues), linger 0 (closing never waits on a dead peer)
//! and, for requests, a maximum message size.

use crate::error::Error;

/// Messages a PUB socket queues per subscriber before it drops (ZeroMQ's PUB never
/// blocks; a subscriber that falls this far behind sees a gap and repairs it).
pub const PUB_HWM: i32 = 10_000;
/// Messages a SUB socket queues before the publisher starts dropping for it.
pub const SUB_HWM: i32 = 100_000;
/// REQ/REP queues: one request is in flight per connection, so a few is plenty.
pub const REQREP_HWM: i32 = 16;
/// The largest request the REP socket accepts; bigger ones are dropped by ZeroMQ.
pub const MAX_REQUEST_BYTES: i64 = 1 << 20;

/// A CURVE server secret key (Z85, 40 characters). A seam for encrypted links; a
/// later change will enable it on the PUB and REP sockets.
#[derive(Clone, PartialEq, Eq)]
pub struct CurveSecretKey(pub String);

impl std::fmt::Debug for CurveSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CurveSecretKey(..)")
    }
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
