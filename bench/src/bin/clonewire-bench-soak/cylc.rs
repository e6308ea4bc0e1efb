//! One real Cylc workflow for the soak: the Cylc benchmark's steady workload (a
//! cycling workflow of 40 tasks a cycle, simulation mode), in a throwaway Cylc home,
//! followed by the relay through `--cylc-run`.

use std::path::Path;

use clonewire_bench::cylc_home::CylcHome;
use clonewire_bench::process::Proc;

/// The workflow: cycling hourly, 40 tasks a cycle, two cycles ahead at most.
const FLOW: &str = include_str!("../../../cylc/steady/flow.cylc");
/// Its name under `cylc-run`.
const NAME: &str = "soak";

/// A running workflow, stopped when dropped (with its scratch directory).
pub struct Workflow {
    home: CylcHome,
    scheduler: Option<Proc>,
    _scratch: Scratch,
}

impl Workflow {
    /// Starts the scheduler with the cylc-flow of `venv`; returns once it publishes.
    pub fn start(venv: &Path) -> Result<Workflow, String> {
        let scratch = Scratch::new()?;
        let home = CylcHome::new(&scratch.0.join("home"), venv)?;
        let scheduler = home.play(NAME, FLOW, false, &scratch.0.join("scheduler.log"))?;
        home.wait_publishing(NAME)?;
        Ok(Workflow {
            home,
            scheduler: Some(scheduler),
            _scratch: scratch,
        })
    }

    /// The relay's flags to follow it.
    pub fn relay_flags(&self) -> Vec<String> {
        vec!["--cylc-run".into(), self.home.run_dir().display().to_string()]
    }

    /// The scheduler's process id.
    pub fn pid(&self) -> u32 {
        self.scheduler.as_ref().map_or(0, Proc::pid)
    }
}

impl Drop for Workflow {
    fn drop(&mut self) {
        // The scheduler first: it still writes into the scratch directory.
        drop(self.scheduler.take());
    }
}

/// A scratch directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("clonewire-soak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
