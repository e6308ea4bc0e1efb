//! Real Cylc schedulers for tests: a throwaway HOME and global config, small
//! workflows written on the spot and run with `cylc play --mode=simulation`.
//!
//! Cylc comes from the venv `scripts/test.sh` makes (`ensure_cylc`): the one named
//! by `CLONEWIRE_CYLC_VENV`, else `target/cylc-venv`. Without it the tests fail and
//! say how to make it.

#![allow(dead_code)] // Each test file uses a part.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clonewire_cylc::link::{DataStore, StoreOutcome};
use clonewire_cylc::Kind;

/// The venv that holds `bin/cylc`.
pub fn cylc_venv() -> PathBuf {
    let venv = match std::env::var_os("CLONEWIRE_CYLC_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cylc-venv"),
    };
    let cylc = venv.join("bin/cylc");
    assert!(
        cylc.exists(),
        "cylc-flow is not installed at {}: run scripts/test.sh once (its ensure_cylc makes the venv), \
         or set CLONEWIRE_CYLC_VENV to a venv with cylc-flow 8.5.4",
        venv.display()
    );
    venv
}

/// A throwaway Cylc installation: HOME, `global.cylc` and `~/cylc-run`. Dropping it
/// stops every workflow it started and removes it.
pub struct Sandbox {
    root: PathBuf,
    venv: PathBuf,
    started: Vec<String>,
}

impl Sandbox {
    /// A new, empty sandbox.
    pub fn new() -> Sandbox {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let venv = cylc_venv();
        let root = std::env::temp_dir().join(format!(
            "clonewire-cylc-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("home/cylc-run")).unwrap();
        std::fs::create_dir_all(root.join("conf")).unwrap();
        // Without `cylc path`, simulated jobs still need `cylc` on the PATH of a
        // login shell, which the throwaway HOME does not give.
        std::fs::write(
            root.join("conf/global.cylc"),
            format!(
                "[platforms]\n    [[localhost]]\n        cylc path = {}\n",
                venv.join("bin").display()
            ),
        )
        .unwrap();
        Sandbox {
            root,
            venv,
            started: Vec::new(),
        }
    }

    /// `~/cylc-run`, the directory the tests discover workflows in.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("home/cylc-run")
    }

    /// Runs `cylc ARGS` in the sandbox, failing the test if it fails.
    pub fn cylc(&self, args: &[&str]) -> String {
        let output = Command::new(self.venv.join("bin/cylc"))
            .args(args)
            .env("HOME", self.root.join("home"))
            .env("CYLC_CONF_PATH", self.root.join("conf"))
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "cylc {args:?} failed:\n{text}");
        text
    }

    /// Writes `flow` as the workflow `id` (a run directory, as `cylc install` would
    /// make, without its rsync) and plays it in simulation mode. Returns its run
    /// directory once its contact file exists.
    pub fn play(&mut self, id: &str, flow: &str) -> PathBuf {
        let dir = self.run_dir().join(id);
        self.install(id, flow);
        self.cylc(&["play", "--mode=simulation", id]);
        self.started.push(id.to_owned());
        let contact = dir.join(".service/contact");
        wait_for(Duration::from_secs(30), || contact.exists(), "the contact file");
        dir
    }

    /// Writes `flow` as the workflow `id` without playing it.
    pub fn install(&self, id: &str, flow: &str) -> PathBuf {
        let dir = self.run_dir().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("flow.cylc"), flow).unwrap();
        dir
    }

    /// `cylc stop --now ID`, waiting until its contact file is gone.
    pub fn stop(&mut self, id: &str) {
        self.cylc(&["stop", "--now", id]);
        let contact = self.run_dir().join(id).join(".service/contact");
        wait_for(
            Duration::from_secs(30),
            || !contact.exists(),
            "the contact file to go",
        );
        self.started.retain(|s| s != id);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.started) {
            let contact = self.run_dir().join(&id).join(".service/contact");
            let pid = std::fs::read_to_string(&contact).ok().and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("CYLC_WORKFLOW_PID=").map(str::to_owned))
            });
            let _ = Command::new(self.venv.join("bin/cylc"))
                .args(["stop", "--now", "--now", &id])
                .env("HOME", self.root.join("home"))
                .env("CYLC_CONF_PATH", self.root.join("conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while contact.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if let (true, Some(pid)) = (contact.exists(), pid) {
                // Only the scheduler this sandbox started, by its own pid.
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Waits until `done` holds, failing the test after `limit`.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A small cycling workflow: `foo => bar` each cycle, a few cycles ahead.
pub const SMALL_FLOW: &str = "\
[scheduling]
    cycling mode = integer
    initial cycle point = 1
    runahead limit = P2
    [[graph]]
        P1 = \"foo => bar\"
[runtime]
    [[root]]
        [[[simulation]]]
            default run length = PT1S
    [[foo]]
    [[bar]]
";

/// A store that keeps only what the link gives it, with a check that each
/// payload is well-formed protobuf and a list of the top-level fields seen.
#[derive(Default)]
pub struct WireStore {
    /// Top-level field numbers of the last snapshot.
    pub snapshot_fields: Vec<u64>,
    /// The last snapshot.
    pub snapshot: Vec<u8>,
    /// `all` batches applied.
    pub batches: usize,
    /// Re-fetch replies by type.
    pub replaced: Vec<Kind>,
}

impl DataStore for WireStore {
    type Error = String;
    /// The payload's size.
    type Changes = usize;

    fn load_snapshot(&mut self, payload: &[u8]) -> Result<usize, String> {
        self.snapshot_fields = top_level_fields(payload)?;
        self.snapshot = payload.to_vec();
        Ok(payload.len())
    }

    fn apply_deltas(&mut self, payload: &[u8]) -> Result<StoreOutcome<usize>, String> {
        top_level_fields(payload)?;
        self.batches += 1;
        Ok(StoreOutcome {
            changes: payload.len(),
            mismatched: Vec::new(),
        })
    }

    fn replace_elements(&mut self, kind: Kind, payload: &[u8]) -> Result<StoreOutcome<usize>, String> {
        top_level_fields(payload)?;
        self.replaced.push(kind);
        Ok(StoreOutcome {
            changes: payload.len(),
            mismatched: Vec::new(),
        })
    }
}

/// A protobuf field's value, as the wire has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire<'a> {
    /// A varint (ints, bools, enums).
    Varint(u64),
    /// Length-delimited: a string, bytes, or a nested message.
    Bytes(&'a [u8]),
    /// A fixed 32- or 64-bit value.
    Fixed,
}

/// The fields of a protobuf message's top level (number and value), or why it is
/// not one.
pub fn fields(mut bytes: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first().ok_or("truncated varint")?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (value, skip) = match key & 7 {
            0 => (Wire::Varint(varint(&mut bytes)?), 0),
            1 => (Wire::Fixed, 8),
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|e| e.to_string())?;
                (Wire::Bytes(bytes.get(..len).ok_or("truncated field")?), len)
            }
            5 => (Wire::Fixed, 4),
            other => return Err(format!("wire type {other}")),
        };
        bytes = bytes.get(skip..).ok_or("truncated field")?;
        out.push((key >> 3, value));
    }
    Ok(out)
}

/// The field numbers of a protobuf message's top level, or why it is not one.
pub fn top_level_fields(bytes: &[u8]) -> Result<Vec<u64>, String> {
    Ok(fields(bytes)?.into_iter().map(|(n, _)| n).collect())
}

/// The scheduler's own `pb_entire_workflow`, asked with the workflow's keys on a
/// socket of our own.
pub fn entire_workflow(run: &Path) -> Vec<u8> {
    use clonewire_cylc::contact::Contact;
    use clonewire_cylc::request::LinkRequest;
    let contact = Contact::load(run).unwrap();
    let curve = clonewire_cylc::keys::workflow_client(&run.join(".service")).unwrap();
    let ctx = zmq::Context::new();
    let req = clonewire_suite::sockets::socket(&ctx, zmq::REQ, 4).unwrap();
    clonewire_suite::sockets::curve_client(&req, &curve).unwrap();
    req.connect(&contact.req_endpoint()).unwrap();
    req.send(LinkRequest::EntireWorkflow.encode("test"), 0).unwrap();
    assert_eq!(
        req.poll(zmq::POLLIN, 20_000).unwrap(),
        1,
        "the scheduler did not answer"
    );
    req.recv_bytes(0).unwrap()
}
