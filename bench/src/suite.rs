//! One simulated suite (`clonewire-sim`) in its own process, as the benchmarks start
//! it: on loopback ports of its choosing, which it prints on its first line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use serde_json::Value;

use crate::process::{each_line, sibling, Proc};

/// Lines of a suite's output kept for its reader at most; later ones are dropped.
const LINES_KEPT: usize = 64;

/// A running `clonewire-sim`, stopped when dropped.
pub struct Suite {
    name: String,
    pub_endpoint: String,
    rep_endpoint: String,
    proc: Proc,
    lines: mpsc::Receiver<String>,
}

impl Suite {
    /// Starts the suite `name` with about `tasks` live tasks publishing `rate` deltas
    /// per second, its choices played from `seed`; returns once it has said where it
    /// publishes and answers.
    pub fn start(name: &str, tasks: usize, rate: f64, seed: u64) -> Result<Suite, String> {
        Suite::start_with(name, tasks, rate, seed, &[])
    }

    /// [`Suite::start`] with more of `clonewire-sim`'s flags.
    pub fn start_with(
        name: &str,
        tasks: usize,
        rate: f64,
        seed: u64,
        more: &[&str],
    ) -> Result<Suite, String> {
        let mut proc = Proc::spawn(
            name,
            Command::new(sibling("clonewire-sim")?)
                .args([
                    "--name",
                    name,
                    "--pub",
                    "tcp://127.0.0.1:0",
                    "--rep",
                    "tcp://127.0.0.1:0",
                ])
                .args(["--tasks", &tasks.to_string(), "--rate", &rate.to_string()])
                .args(["--seed", &seed.to_string()])
                .args(more)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )?;
        let mut line = String::new();
        let mut stdout = BufReader::new(proc.stdout().ok_or("no stdout")?);
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let (tx, lines) = mpsc::sync_channel(LINES_KEPT);
        each_line(stdout, move |line| {
            !matches!(tx.try_send(line), Err(mpsc::TrySendError::Disconnected(_)))
        });
        let info: Value = serde_json::from_str(&line).map_err(|e| format!("{name}: {e}: {line:?}"))?;
        let endpoint = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(pub_endpoint), Some(rep_endpoint)) = (endpoint("pub"), endpoint("rep")) else {
            return Err(format!("{name} printed no endpoints: {line:?}"));
        };
        Ok(Suite {
            name: name.to_owned(),
            pub_endpoint,
            rep_endpoint,
            proc,
            lines,
        })
    }

    /// The lines it has printed after its first (its endpoints) since the last call;
    /// while 64 wait unread, later ones are dropped.
    pub fn new_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The relay's `--suite` argument for it: `name=PUB,REP`.
    pub fn flag(&self) -> String {
        format!("{}={},{}", self.name, self.pub_endpoint, self.rep_endpoint)
    }

    /// Sends one request to the suite's REP socket: (reply, bytes, milliseconds).
    pub fn request(&self, ctx: &zmq::Context, body: &str) -> Result<(Value, usize, f64), String> {
        let req = ctx.socket(zmq::REQ).map_err(|e| e.to_string())?;
        let _ = req.set_linger(0);
        let _ = req.set_rcvtimeo(60_000);
        req.connect(&self.rep_endpoint).map_err(|e| e.to_string())?;
        let started = Instant::now();
        req.send(body.as_bytes(), 0).map_err(|e| e.to_string())?;
        let reply = req
            .recv_bytes(0)
            .map_err(|e| format!("{}: {body}: {e}", self.name))?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let value = serde_json::from_slice(&reply).map_err(|e| e.to_string())?;
        Ok((value, reply.len(), ms))
    }
}
