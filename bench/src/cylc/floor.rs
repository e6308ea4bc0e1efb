//! The floor: a raw ZeroMQ subscriber to each scheduler's publisher, as
//! cylc-uiserver's own (`cylc/flow/network/subscriber.py`) but with nothing after
//! it. CurveZMQ with the workflow's client keys (`.service/client.key_secret`) and
//! the server's public key (`.service/server.key`), SUB topic `all`. Each batch is
//! written as one [`Batch`] JSON line with its receipt time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clonewire_bench::cylc_home::contact;
use clonewire_bench::now_ms;
use prost::Message;

use super::proto::AllDeltas;
use super::{key, Batch};

/// The Z85 text of `name = "..."` in a ZeroMQ certificate file, decoded.
fn cert_key(path: &Path, name: &str) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let z85 = text
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .ok_or_else(|| format!("{}: no {name}", path.display()))?;
    zmq::z85_decode(&z85).map_err(|e| format!("{}: bad {name}: {e}", path.display()))
}

/// A SUB socket connected to the scheduler of `run_dir`.
fn subscribe(ctx: &zmq::Context, run_dir: &Path) -> Result<(String, zmq::Socket), String> {
    let contact = contact(run_dir)?;
    let port = contact
        .get("CYLC_WORKFLOW_PUBLISH_PORT")
        .ok_or("the contact file has no publish port")?;
    let name = contact.get("CYLC_WORKFLOW_ID").cloned().unwrap_or_else(|| {
        run_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    });
    let service = run_dir.join(".service");
    let socket = ctx.socket(zmq::SUB).map_err(|e| e.to_string())?;
    let server = cert_key(&service.join("server.key"), "public-key")?;
    let public = cert_key(&service.join("client.key_secret"), "public-key")?;
    let secret = cert_key(&service.join("client.key_secret"), "secret-key")?;
    socket
        .set_curve_serverkey(&server)
        .and_then(|()| socket.set_curve_publickey(&public))
        .and_then(|()| socket.set_curve_secretkey(&secret))
        .map_err(|e| format!("curve keys: {e}"))?;
    socket.set_subscribe(b"all").map_err(|e| e.to_string())?;
    socket.set_rcvhwm(100_000).map_err(|e| e.to_string())?;
    socket
        .connect(&format!("tcp://127.0.0.1:{port}"))
        .map_err(|e| format!("connect: {e}"))?;
    Ok((name, socket))
}

/// Subscribes to every run dir and writes batches to `out` for `secs` seconds, or
/// until a file named as `out` with the extension `stop` appears, then
/// `{"end":true}`.
pub fn run(run_dirs: &[PathBuf], secs: f64, out: &Path) -> Result<(), String> {
    let ctx = zmq::Context::new();
    let mut sockets = Vec::new();
    for dir in run_dirs {
        sockets.push(subscribe(&ctx, dir)?);
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| e.to_string())?);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let stop = out.with_extension("stop");
    let mut seen = 0usize;
    while Instant::now() < deadline && !stop.exists() {
        let mut items: Vec<zmq::PollItem<'_>> =
            sockets.iter().map(|(_, s)| s.as_poll_item(zmq::POLLIN)).collect();
        if zmq::poll(&mut items, 200).is_err() {
            continue;
        }
        let ready: Vec<bool> = items.iter().map(|i| i.is_readable()).collect();
        for ((wf, socket), ready) in sockets.iter().zip(ready) {
            if !ready {
                continue;
            }
            while let Ok(parts) = socket.recv_multipart(zmq::DONTWAIT) {
                let recv = now_ms();
                let [topic, body] = parts.as_slice() else { continue };
                if topic.as_slice() != b"all" {
                    continue;
                }
                let Ok(deltas) = AllDeltas::decode(body.as_slice()) else {
                    continue;
                };
                let Some(time) = deltas.time_ms() else { continue };
                let batch = Batch {
                    wf: wf.clone(),
                    time,
                    recv,
                    bytes: body.len(),
                    keys: deltas.changes().map(|(id, state)| key(None, id, state)).collect(),
                };
                let line = serde_json::to_string(&batch).unwrap_or_default();
                let _ = writeln!(file, "{line}");
                seen += 1;
            }
            let _ = file.flush();
        }
    }
    let _ = writeln!(file, "{{\"end\":true,\"batches\":{seen}}}");
    file.flush().map_err(|e| e.to_string())
}
