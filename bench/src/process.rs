//! The benchmarks' child processes: a guard that stops its process when dropped (and
//! that the kernel kills if the benchmark dies), the sibling binaries they run, their
//! lines of output, free loopback ports and bounded waits for a server to be ready.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a dropped [`Proc`] has to exit after SIGTERM unless told otherwise.
const GRACE: Duration = Duration::from_millis(1500);

/// A child process that is stopped when dropped, and that the kernel kills if this
/// process dies, so no child outlives the benchmark.
///
/// Dropping it sends SIGTERM (a suite says goodbye, a scheduler shuts down), waits up
/// to its grace (1.5 s unless set with [`Proc::with_grace`]) and then kills it; with a
/// zero grace it is killed at once.
pub struct Proc {
    name: String,
    child: Child,
    grace: Duration,
}

impl Proc {
    /// Starts `command`; `name` names it in messages.
    pub fn spawn(name: &str, command: &mut Command) -> Result<Proc, String> {
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the
        // child when this process dies, so no child outlives the benchmark.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            grace: GRACE,
        })
    }

    /// The same process, given `grace` to exit after SIGTERM when dropped (zero: it
    /// is killed at once).
    pub fn with_grace(mut self, grace: Duration) -> Proc {
        self.grace = grace;
        self
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its standard output, once, when it was piped.
    pub fn stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Its standard output (once, when it was piped) as lines arriving on a channel,
    /// read on a thread of their own (see [`each_line`]).
    pub fn lines(&mut self) -> Option<mpsc::Receiver<String>> {
        let stdout = self.stdout()?;
        let (tx, rx) = mpsc::channel();
        each_line(stdout, move |line| tx.send(line).is_ok());
        Some(rx)
    }

    /// True once it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        if self.grace.is_zero() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        // SAFETY: kill(2) on our own child, which has not been reaped (it has not
        // exited), so its pid is still its own.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("  ({} did not stop on SIGTERM; killed)", self.name);
    }
}

/// Calls `line` with every line `from` gives, on a thread of its own, until `from`
/// ends or `line` returns false. Reading on a thread keeps a stuck child from
/// hanging the benchmark, which waits on what `line` passes on with a deadline.
pub fn each_line(from: impl Read + Send + 'static, mut line: impl FnMut(String) -> bool + Send + 'static) {
    std::thread::spawn(move || {
        for text in BufReader::new(from).lines().map_while(Result::ok) {
            if !line(text) {
                break;
            }
        }
    });
}

/// Where the sibling binary `name` is: the folder of this one, where cargo builds
/// every binary of the workspace; an error saying how to build it when it is missing.
pub fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it first with \
             cargo build --release -p clonewire-relay -p clonewire-tools -p clonewire-bench",
            path.display()
        ))
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Waits until `ready` holds, asking every `every`; an error naming `what` when it
/// still does not after `within`.
pub fn wait_for(
    what: &str,
    within: Duration,
    every: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(every);
    }
    Err(format!("{what} not ready after {} s", within.as_secs()))
}

/// Waits (up to 15 s) until something accepts connections on `addr`; `what` names
/// the server in the error.
pub fn wait_listening(addr: SocketAddr, what: &str) -> Result<(), String> {
    wait_for(what, Duration::from_secs(15), Duration::from_millis(50), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
    .map_err(|_| format!("{what} did not listen on {addr} within 15 s"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Stdio;

    fn sleeper(grace: Duration) -> Proc {
        Proc::spawn("sleep", Command::new("sleep").arg("60"))
            .expect("sleep starts")
            .with_grace(grace)
    }

    #[test]
    fn a_dropped_child_is_gone() {
        for grace in [GRACE, Duration::ZERO] {
            let proc = sleeper(grace);
            let pid = proc.pid();
            assert!(Path::new(&format!("/proc/{pid}")).exists());
            let started = Instant::now();
            drop(proc);
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "grace {grace:?}");
            // `sleep` dies on SIGTERM: no need to wait out the grace.
            assert!(started.elapsed() < GRACE);
        }
    }

    #[test]
    fn a_childs_lines_arrive_in_order() {
        let mut proc = Proc::spawn(
            "printf",
            Command::new("printf").arg("one\\ntwo\\n").stdout(Stdio::piped()),
        )
        .expect("printf starts");
        let lines = proc.lines().expect("stdout is piped");
        let got: Vec<String> = lines.iter().collect();
        assert_eq!(got, ["one", "two"]);
        assert!(proc.lines().is_none(), "stdout is taken once");
    }

    #[test]
    fn a_listening_server_is_found_and_a_free_port_is_free() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert_eq!(wait_listening(addr, "test"), Ok(()));
        let port = free_port().expect("a port");
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
        let err = wait_for("nothing", Duration::ZERO, Duration::ZERO, || false);
        assert_eq!(err, Err("nothing not ready after 0 s".to_owned()));
    }
}
