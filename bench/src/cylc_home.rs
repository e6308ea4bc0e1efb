//! A throwaway Cylc home for the benchmarks: its own `HOME` (so nothing touches a
//! real `~/cylc-run`), a `global.cylc` naming the venv's `cylc` for jobs, and `cylc`
//! commands run in it; workflows written into its run directory and their schedulers
//! started there, waited for through their contact files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{wait_for, Proc};

/// How long a scheduler (or any other child in a Cylc home) has to stop after SIGTERM:
/// a scheduler shuts down within seconds.
pub const GRACE: Duration = Duration::from_secs(10);

/// A Cylc home in a scratch directory.
#[derive(Clone, Debug)]
pub struct CylcHome {
    home: PathBuf,
    venv: PathBuf,
}

impl CylcHome {
    /// Makes `home` a Cylc home whose jobs and commands use the venv `venv`.
    pub fn new(home: &Path, venv: &Path) -> Result<CylcHome, String> {
        let io = |e: std::io::Error| format!("{}: {e}", home.display());
        std::fs::create_dir_all(home.join("conf")).map_err(io)?;
        std::fs::write(
            home.join("conf/global.cylc"),
            format!(
                "[platforms]\n    [[localhost]]\n        cylc path = {}\n",
                venv.join("bin").display()
            ),
        )
        .map_err(io)?;
        Ok(CylcHome {
            home: home.to_owned(),
            venv: venv.to_owned(),
        })
    }

    /// `HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `HOME/cylc-run`.
    pub fn run_dir(&self) -> PathBuf {
        self.home.join("cylc-run")
    }

    /// A `cylc` command in this home (the venv's `bin` first on `PATH`, since the
    /// scheduler runs `cylc jobs-submit` itself).
    pub fn cylc(&self) -> Command {
        let mut cmd = Command::new(self.venv.join("bin/cylc"));
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("HOME", &self.home)
            .env("CYLC_CONF_PATH", self.home.join("conf"))
            .env("PATH", format!("{}:{path}", self.venv.join("bin").display()))
            .env_remove("CYLC_WORKFLOW_ID")
            .stdin(Stdio::null());
        cmd
    }

    /// Writes `flow` as workflow `name` and starts its scheduler in simulation mode
    /// (paused if asked), logging to `log`; returns once it is started, not yet
    /// publishing (see [`CylcHome::wait_publishing`]).
    pub fn play(&self, name: &str, flow: &str, paused: bool, log: &Path) -> Result<Proc, String> {
        let io = |e: std::io::Error| e.to_string();
        let dir = self.run_dir().join(name);
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::write(dir.join("flow.cylc"), flow).map_err(io)?;
        let log = std::fs::File::create(log).map_err(io)?;
        let mut cmd = self.cylc();
        cmd.args(["play", "--no-detach", "--mode=simulation"]);
        if paused {
            cmd.arg("--pause");
        }
        cmd.arg(name).stdout(log.try_clone().map_err(io)?).stderr(log);
        Proc::spawn(&format!("scheduler {name}"), &mut cmd).map(|p| p.with_grace(GRACE))
    }

    /// Waits (up to two minutes) until workflow `name` publishes, and returns its
    /// owner as its contact file names it.
    pub fn wait_publishing(&self, name: &str) -> Result<String, String> {
        let dir = self.run_dir().join(name);
        wait_for(
            &format!("scheduler {name}"),
            Duration::from_secs(120),
            Duration::from_millis(200),
            || contact(&dir).is_ok_and(|c| c.contains_key("CYLC_WORKFLOW_PUBLISH_PORT")),
        )?;
        Ok(contact(&dir)?
            .get("CYLC_WORKFLOW_OWNER")
            .cloned()
            .unwrap_or_else(|| "root".to_owned()))
    }
}

/// `KEY=value` lines of a workflow's `.service/contact` file.
pub fn contact(run_dir: &Path) -> Result<HashMap<String, String>, String> {
    let path = run_dir.join(".service/contact");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}
