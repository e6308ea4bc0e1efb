//! A synthetic burst shaped like a real one (cylc-flow 8.5.4, simulation mode, tasks
//! released behind a gate): every task proxy changes state, outputs and
//! prerequisites and gains a job; every job is added; the family and the workflow
//! update their totals. Shared by the benches of `clonewire-cylc` and
//! `clonewire-relay` (included with `#[path]`).

use std::collections::HashMap;

use clonewire_cylc::proto::{
    AllDeltas, FpDeltas, JDeltas, PbCondition, PbEdge, PbEntireWorkflow, PbFamilyProxy, PbJob, PbOutput,
    PbPrerequisite, PbRuntime, PbTaskProxy, PbWorkflow, TpDeltas, WDeltas,
};
use prost::Message;

const W: &str = "~user/burst//";
const OUTPUTS: [&str; 6] = [
    "expired",
    "failed",
    "started",
    "submit-failed",
    "submitted",
    "succeeded",
];

fn runtime(platform: &str) -> PbRuntime {
    PbRuntime {
        platform: Some(platform.into()),
        script: Some(String::new()),
        completion: Some("succeeded".into()),
        directives: Some("[]".into()),
        environment: Some("[]".into()),
        outputs: Some("[]".into()),
        run_mode: Some("simulation".into()),
        execution_polling_intervals: Some(String::new()),
        execution_retry_delays: Some(String::new()),
        execution_time_limit: Some(String::new()),
        submission_polling_intervals: Some(String::new()),
        submission_retry_delays: Some(String::new()),
        ..Default::default()
    }
}

fn outputs(time: f64, satisfied: &[&str]) -> HashMap<String, PbOutput> {
    OUTPUTS
        .iter()
        .map(|label| {
            let output = PbOutput {
                label: Some((*label).into()),
                message: Some((*label).into()),
                satisfied: Some(satisfied.contains(label)),
                time: Some(time),
            };
            ((*label).to_owned(), output)
        })
        .collect()
}

fn prerequisite(satisfied: bool) -> PbPrerequisite {
    PbPrerequisite {
        expression: Some("0".into()),
        conditions: vec![PbCondition {
            task_proxy: Some("1/gate".into()),
            expr_alias: Some("0".into()),
            req_state: Some("succeeded".into()),
            satisfied: Some(satisfied),
            message: Some(
                if satisfied {
                    "satisfied naturally"
                } else {
                    "unsatisfied"
                }
                .into(),
            ),
        }],
        cycle_points: vec!["1".into()],
        satisfied: Some(satisfied),
    }
}

/// A workflow of `n` tasks waiting behind `1/gate`, and `rounds` batches that each
/// submit a new job for every one of them (the first is the release).
pub fn workload(n: usize, rounds: usize) -> (PbEntireWorkflow, Vec<Vec<u8>>) {
    let t0 = 1_795_000_000.0;
    let name = |i: usize| format!("task_m{i:04}");
    let proxies: Vec<PbTaskProxy> = (0..n)
        .map(|i| {
            let id = format!("{W}1/{}", name(i));
            PbTaskProxy {
                stamp: Some(format!("{id}@{t0}")),
                task: Some(format!("{W}$namespace|{}", name(i))),
                state: Some("waiting".into()),
                cycle_point: Some("1".into()),
                depth: Some(2),
                job_submits: Some(0),
                outputs: outputs(t0, &[]),
                namespace: vec!["root".into(), "BURST".into(), name(i)],
                prerequisites: vec![prerequisite(false)],
                first_parent: Some(format!("{W}1/BURST")),
                name: Some(name(i)),
                is_held: Some(false),
                edges: vec![format!("{W}$edge|1/gate|1/{}", name(i))],
                ancestors: vec![format!("{W}1/BURST"), format!("{W}1/root")],
                flow_nums: Some("[1]".into()),
                is_queued: Some(true),
                is_runahead: Some(false),
                flow_wait: Some(false),
                runtime: Some(runtime("localhost")),
                graph_depth: Some(1),
                is_retry: Some(false),
                is_wallclock: Some(false),
                is_xtriggered: Some(false),
                id: Some(id),
                ..Default::default()
            }
        })
        .collect();
    let family = PbFamilyProxy {
        id: Some(format!("{W}1/BURST")),
        stamp: Some(format!("{W}1/BURST@{t0}")),
        state: Some("waiting".into()),
        child_tasks: proxies.iter().map(|p| p.id().to_owned()).collect(),
        state_totals: HashMap::from([("waiting".to_owned(), n as i32), ("running".to_owned(), 0)]),
        states: vec!["waiting".into()],
        ..Default::default()
    };
    let edges = (0..n)
        .map(|i| PbEdge {
            id: Some(format!("{W}$edge|1/gate|1/{}", name(i))),
            source: Some(format!("{W}1/gate")),
            target: Some(format!("{W}1/{}", name(i))),
            suicide: Some(false),
            cond: Some(false),
            ..Default::default()
        })
        .collect();
    let snapshot = PbEntireWorkflow {
        workflow: Some(PbWorkflow {
            id: Some("~user/burst".into()),
            stamp: Some(format!("~user/burst@{t0}")),
            status: Some("running".into()),
            state_totals: HashMap::from([("waiting".to_owned(), n as i32)]),
            ..Default::default()
        }),
        task_proxies: proxies.clone(),
        family_proxies: vec![family],
        edges,
        ..Default::default()
    };

    let burst = |round: usize| {
        let t1 = t0 + 20.0 + round as f64;
        let state = if round % 2 == 0 { "running" } else { "submitted" };
        let updated: Vec<PbTaskProxy> = proxies
            .iter()
            .map(|p| {
                let job = format!("{}/{:02}", p.id(), round + 1);
                PbTaskProxy {
                    id: p.id.clone(),
                    stamp: Some(format!("{}@{t1}", p.id())),
                    state: Some(state.into()),
                    job_submits: Some(round as i32 + 1),
                    is_queued: Some(false),
                    outputs: outputs(t1, &["submitted", "started"]),
                    prerequisites: vec![prerequisite(true)],
                    jobs: vec![job],
                    ..Default::default()
                }
            })
            .collect();
        let jobs: Vec<PbJob> = proxies
            .iter()
            .map(|p| {
                let id = format!("{}/{:02}", p.id(), round + 1);
                PbJob {
                    stamp: Some(format!("{id}@{t1}")),
                    submit_num: Some(round as i32 + 1),
                    state: Some("running".into()),
                    task_proxy: p.id.clone(),
                    submitted_time: Some("2026-11-28T06:41:18Z".into()),
                    started_time: Some("2026-11-28T06:41:18Z".into()),
                    job_runner_name: Some("simulation".into()),
                    platform: Some("simulation".into()),
                    job_log_dir: Some(format!(
                        "/home/user/cylc-run/burst/log/job/1/{}/{:02}",
                        p.name(),
                        round + 1
                    )),
                    name: p.name.clone(),
                    cycle_point: Some("1".into()),
                    runtime: Some(runtime("simulation")),
                    id: Some(id),
                    ..Default::default()
                }
            })
            .collect();
        AllDeltas {
            task_proxies: Some(TpDeltas {
                time: Some(t1),
                checksum: Some(0),
                updated,
                ..Default::default()
            }),
            jobs: Some(JDeltas {
                time: Some(t1),
                checksum: Some(0),
                added: jobs,
                ..Default::default()
            }),
            family_proxies: Some(FpDeltas {
                time: Some(t1),
                checksum: Some(0),
                updated: vec![PbFamilyProxy {
                    id: Some(format!("{W}1/BURST")),
                    stamp: Some(format!("{W}1/BURST@{t1}")),
                    state: Some("running".into()),
                    state_totals: HashMap::from([
                        ("waiting".to_owned(), 0),
                        ("running".to_owned(), n as i32),
                    ]),
                    states: vec!["running".into()],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            workflow: Some(WDeltas {
                time: Some(t1),
                updated: Some(PbWorkflow {
                    stamp: Some(format!("~user/burst@{t1}")),
                    states_updated: Some(true),
                    state_totals: HashMap::from([("running".to_owned(), n as i32)]),
                    states: vec!["running".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    };
    (snapshot, (0..rounds).map(burst).collect())
}
