//! `--demo`: simulated suites in this process, so one command shows live data.

use std::time::Duration;

use clonewire_suite::{SimConfig, SimHandle, Simulator};

use crate::config::SuiteConfig;

/// Names and sizes of the demo workflows.
const DEMO: [(&str, usize, f64); 4] = [
    ("demo", 200, 20.0),
    ("nightly", 400, 10.0),
    ("ensemble", 120, 5.0),
    ("archive", 60, 2.0),
];

/// Starts `count` simulators on ephemeral loopback ports; returns them and the suite
/// configs that follow them.
pub fn start(count: usize) -> Result<(Vec<SimHandle>, Vec<SuiteConfig>), clonewire_suite::Error> {
    let mut sims = Vec::new();
    let mut suites = Vec::new();
    for i in 0..count {
        let (name, tasks, rate) = DEMO[i % DEMO.len()];
        let name = if i < DEMO.len() {
            name.to_owned()
        } else {
            format!("{name}-{i}")
        };
        let mut config = SimConfig::new(&name);
        config.tasks = tasks;
        config.rate = rate;
        config.seed = 1 + i as u64;
        if i == 2 {
            // One demo suite has a slow config reload now and then, to show `busy`.
            config.busy_every = Some(Duration::from_secs(45));
            config.busy_for = Duration::from_secs(5);
        }
        let sim = Simulator::start(config)?;
        suites.push(SuiteConfig::new(
            name.clone(),
            sim.pub_endpoint(),
            sim.rep_endpoint(),
        ));
        sims.push(sim);
    }
    Ok((sims, suites))
}
