//! Child processes for the campaign. Every child is held by a [`Proc`], which kills it
//! (SIGKILL) and reaps it when dropped, so nothing outlives a failed run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed with SIGKILL when dropped.
pub struct Proc {
    child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl Proc {
    /// Starts `command` with its stderr in `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> std::io::Result<Proc> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        Ok(Proc {
            child,
            name: name.to_owned(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads the first line the child prints on stdout.
    pub fn first_line(&mut self) -> std::io::Result<String> {
        let stdout = self
            .child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("stdout already taken"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        Ok(line)
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) with `kill(1)`.
    pub fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        // A stopped process still dies on SIGKILL.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// The resident set size of `pid` in bytes (`VmRSS` in `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The workspace's target folder for `profile` (`debug` or `release`).
pub fn target_dir(profile: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    target.join(profile)
}

/// Builds `clonewire-sim` and `clonewire-relay` for `profile` and returns their paths.
/// With `CLONEWIRE_BIN_DIR` set, uses the binaries already in that folder instead.
pub fn build_binaries(profile: &str) -> Result<(PathBuf, PathBuf), String> {
    if let Some(dir) = std::env::var_os("CLONEWIRE_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return Ok((dir.join("clonewire-sim"), dir.join("clonewire-relay")));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .args(["build", "-p", "clonewire-tools", "--bin", "clonewire-sim"])
        .args(["-p", "clonewire-relay", "--bin", "clonewire-relay"]);
    if profile == "release" {
        command.arg("--release");
    }
    let status = command.status().map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of the binaries failed: {status}"));
    }
    let dir = target_dir(profile);
    Ok((dir.join("clonewire-sim"), dir.join("clonewire-relay")))
}

/// A plain HTTP GET on loopback with short timeouts; the body, or `None`.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).ok()?;
    let text = String::from_utf8_lossy(&body).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}
