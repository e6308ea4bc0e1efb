//! Real Cylc schedulers for tests (this crate's and the relay's): a throwaway HOME
//! and global config, small workflows written on the spot and run with
//! `cylc play --mode=simulation`. Behind the `testing` feature; never in a build
//! that ships.
//!
//! Cylc comes from the venv `scripts/test.sh` makes (`ensure_cylc`): the one named
//! by `CLONEWIRE_CYLC_VENV`, else `target/cylc-venv`. Without it the tests fail and
//! say how to make it; they are not skipped.
//!
//! Everything here panics on failure: it is a test's failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The venv that holds `bin/cylc`: `CLONEWIRE_CYLC_VENV`, else `target/cylc-venv`.
/// Panics, saying how to make it, when it has no `bin/cylc`.
pub fn cylc_venv() -> PathBuf {
    let venv = match std::env::var_os("CLONEWIRE_CYLC_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cylc-venv"),
    };
    checked_venv(venv)
}

/// `venv` if it holds `bin/cylc`; otherwise the test fails (never skips) and says
/// how to make it.
fn checked_venv(venv: PathBuf) -> PathBuf {
    assert!(
        venv.join("bin/cylc").exists(),
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

impl Default for Sandbox {
    fn default() -> Sandbox {
        Sandbox::new()
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

/// The scheduler's own `pb_entire_workflow` reply for the workflow at `run`, asked
/// with the workflow's keys on a socket of our own.
pub fn entire_workflow(run: &Path) -> Vec<u8> {
    use crate::contact::Contact;
    use crate::request::LinkRequest;
    let contact = Contact::load(run).unwrap();
    let curve = crate::keys::workflow_client(&run.join(".service")).unwrap();
    let ctx = zmq::Context::new();
    let req = clonewire_zmq::sockets::socket(&ctx, zmq::REQ, 4).unwrap();
    clonewire_zmq::sockets::curve_client(&req, &curve).unwrap();
    req.connect(&contact.req_endpoint()).unwrap();
    req.send(LinkRequest::EntireWorkflow.encode("test"), 0).unwrap();
    assert_eq!(
        req.poll(zmq::POLLIN, 20_000).unwrap(),
        1,
        "the scheduler did not answer pb_entire_workflow"
    );
    req.recv_bytes(0).unwrap()
}

/// Replaces the workflow's client key pair (`.service/client.key_secret`) with a new
/// one the scheduler does not know; returns the original text, to put back.
pub fn swap_in_a_foreign_client_key(run: &Path) -> String {
    let path = run.join(".service/client.key_secret");
    let original = std::fs::read_to_string(&path).unwrap();
    let keys = clonewire_zmq::sockets::CurveKeyPair::generate().unwrap();
    std::fs::write(
        &path,
        format!(
            "#   ZeroMQ CURVE **Secret** Certificate\nmetadata\ncurve\n    public-key = \"{}\"\n    secret-key = \"{}\"\n",
            keys.public.0, keys.secret.0
        ),
    )
    .unwrap();
    original
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "cylc-flow is not installed at")]
    fn a_missing_venv_fails_the_test_and_says_how_to_make_it() {
        checked_venv(std::env::temp_dir().join("clonewire-no-such-venv"));
    }
}
