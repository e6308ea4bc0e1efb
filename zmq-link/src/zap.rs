//! A ZAP handler (ZeroMQ RFC 27) that admits only listed CURVE clients. CURVE on its
//! own authenticates the suite to its followers; with an allow-list, a suite also
//! refuses every follower whose public key is not on it, at the handshake, before a
//! byte of its data is sent.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::sockets::{z85_key, CurvePublicKey};
use crate::Error;

/// Where libzmq asks for authentication decisions, per context.
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";
/// How often the handler looks at the stop flag while idle.
const POLL_MS: i64 = 100;

/// A ZAP handler bound in one context, answering on its own thread until dropped.
pub struct ZapHandler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ZapHandler {
    /// Binds the handler in `ctx` (before any CURVE socket of the context binds, so no
    /// handshake happens without it) and starts its thread.
    pub fn start(ctx: &zmq::Context, allowed: &[CurvePublicKey], name: &str) -> Result<ZapHandler, Error> {
        let mut keys = HashSet::new();
        for key in allowed {
            keys.insert(z85_key(&key.0).map_err(Error::Config)?);
        }
        let socket = ctx
            .socket(zmq::REP)
            .map_err(|e| Error::zmq("create the ZAP socket", e))?;
        socket.set_linger(0).map_err(|e| Error::zmq("set linger", e))?;
        socket
            .bind(ZAP_ENDPOINT)
            .map_err(|e| Error::zmq("bind the ZAP handler", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("{name}-zap"))
            .spawn(move || serve(&socket, &keys, &flag))?;
        Ok(ZapHandler {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ZapHandler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the ZAP handler panicked");
            }
        }
    }
}

fn serve(socket: &zmq::Socket, allowed: &HashSet<Vec<u8>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match socket.poll(zmq::POLLIN, POLL_MS) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "the ZAP handler stopped: every CURVE handshake now fails");
                return;
            }
        }
        let Ok(request) = socket.recv_multipart(0) else {
            continue;
        };
        let reply = decide(&request, allowed);
        if let Err(e) = socket.send_multipart(reply, 0) {
            tracing::warn!(error = %e, "could not answer a ZAP request");
        }
    }
}

/// The reply to one ZAP request: 200 for a CURVE client on the list, 400 otherwise.
fn decide(request: &[Vec<u8>], allowed: &HashSet<Vec<u8>>) -> Vec<Vec<u8>> {
    // Frames: version, request id, domain, address, identity, mechanism, credentials.
    let request_id = request.get(1).cloned().unwrap_or_default();
    let address = request.get(3).map(|a| String::from_utf8_lossy(a).into_owned());
    let (code, text): (&[u8], &[u8]) = match (request.first().map(Vec::as_slice), request.get(5)) {
        (Some(b"1.0"), Some(mechanism)) if mechanism.as_slice() == b"CURVE" => match request.get(6) {
            Some(key) if allowed.contains(key) => (b"200", b"OK"),
            _ => {
                tracing::warn!(peer = ?address, "refused a CURVE client whose key is not allowed");
                (b"400", b"client key not allowed")
            }
        },
        _ => {
            tracing::warn!(peer = ?address, "refused a peer that is not a CURVE client");
            (b"400", b"CURVE only")
        }
    };
    vec![
        b"1.0".to_vec(),
        request_id,
        code.to_vec(),
        text.to_vec(),
        Vec::new(),
        Vec::new(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(mechanism: &[u8], key: &[u8]) -> Vec<Vec<u8>> {
        vec![
            b"1.0".to_vec(),
            b"7".to_vec(),
            b"clonewire".to_vec(),
            b"127.0.0.1".to_vec(),
            Vec::new(),
            mechanism.to_vec(),
            key.to_vec(),
        ]
    }

    #[test]
    fn only_listed_curve_keys_are_admitted() {
        let allowed: HashSet<Vec<u8>> = [vec![1u8; 32]].into_iter().collect();
        let code = |r: &[Vec<u8>]| String::from_utf8(decide(r, &allowed)[2].clone()).unwrap();
        assert_eq!(code(&request(b"CURVE", &[1; 32])), "200");
        assert_eq!(code(&request(b"CURVE", &[2; 32])), "400");
        assert_eq!(code(&request(b"NULL", &[])), "400");
        assert_eq!(code(&[b"1.0".to_vec()]), "400", "a truncated request is refused");
        assert_eq!(
            decide(&request(b"CURVE", &[1; 32]), &allowed)[1],
            b"7",
            "the request id is echoed"
        );
    }
}
