//! The cost of a burst: decode one `all` message, apply it to the replica as Cylc
//! does (checksums included), and map it to per-topic changes and patch text, for a
//! release of 100 and of 1,000 tasks.
//!
//! The burst is synthetic but shaped like a real one (cylc-flow 8.5.4, simulation
//! mode, tasks released behind a gate): every task proxy changes state, outputs,
//! prerequisites and gains a job; every job is added; the family and the workflow
//! update their totals. `cargo bench -p clonewire-cylc --bench burst`.
//!
//! Set `CYLC_BURST_DIR` to a capture (`entire-before.pb` and `all.frames`, as in
//! `tests/fixtures/README.md`) to time its messages as well.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clonewire_cylc::proto::{
    AllDeltas, FpDeltas, JDeltas, PbCondition, PbEdge, PbEntireWorkflow, PbFamilyProxy, PbJob, PbOutput,
    PbPrerequisite, PbRuntime, PbTaskProxy, PbWorkflow, TpDeltas, WDeltas,
};
use clonewire_cylc::CylcStore;
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
fn workload(n: usize, rounds: usize) -> (PbEntireWorkflow, Vec<Vec<u8>>) {
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

/// This thread's CPU time so far (`CLOCK_THREAD_CPUTIME_ID`), so figures hold on a
/// shared machine where the thread waits for a core; `None` where it cannot be read.
fn cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call's duration.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (status == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

/// A stopwatch for wall time and this thread's CPU time.
struct Stopwatch {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }

    /// (wall, CPU) since the start; CPU is the wall time where it cannot be read.
    fn stop(&self) -> (Duration, Duration) {
        let wall = self.wall.elapsed();
        let cpu = match (self.cpu, cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall,
        };
        (wall, cpu)
    }
}

/// The median of some durations.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The mean of some durations (for CPU times, which some kernels count in ticks of
/// a few ms: the mean over a run is still right where one batch's figure is not).
fn mean(times: Vec<Duration>) -> Duration {
    times.iter().sum::<Duration>() / times.len().max(1) as u32
}

/// What one run of batches cost: wall time, the median batch; CPU time, the mean.
struct Figures {
    /// Decode + apply + map: wall and CPU.
    apply: (Duration, Duration),
    /// Writing every topic's patch text: wall and CPU.
    text: (Duration, Duration),
    /// The whole path, dropping the batch's changes included: wall and CPU.
    total: (Duration, Duration),
    leaves: usize,
    bytes: usize,
}

/// Times decode + apply + map, then the patch text, of each batch in turn on one
/// replica (so it stays warm, as a relay's does).
fn time_batches(base: &CylcStore, batches: &[Vec<u8>]) -> Figures {
    let mut store = base.clone();
    let mut times: [Vec<Duration>; 6] = Default::default();
    let (mut leaves, mut bytes) = (0, 0);
    for batch in batches {
        let whole = Stopwatch::start();
        let watch = Stopwatch::start();
        let applied = store.apply_bytes(batch).expect("the burst applies");
        let apply = watch.stop();
        let watch = Stopwatch::start();
        let (mut l, mut b) = (0, 0);
        for (_, changes) in &applied.topics {
            l += changes.len();
            b += changes.patch_text().len();
        }
        let text = watch.stop();
        drop(applied);
        let total = whole.stop();
        for (i, d) in [apply.0, apply.1, text.0, text.1, total.0, total.1]
            .into_iter()
            .enumerate()
        {
            times[i].push(d);
        }
        (leaves, bytes) = (l, b);
    }
    let [a0, a1, t0, t1, w0, w1] = times;
    let (a0, t0, w0) = (median(a0), median(t0), median(w0));
    let (a1, t1, w1) = (mean(a1), mean(t1), mean(w1));
    Figures {
        apply: (a0, a1),
        text: (t0, t1),
        total: (w0, w1),
        leaves,
        bytes,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(label: &str, base: &CylcStore, batches: &[Vec<u8>]) {
    let size = batches[0].len();
    let decode = median(
        batches
            .iter()
            .map(|batch| {
                let watch = Stopwatch::start();
                std::hint::black_box(clonewire_cylc::store::decode_all_deltas(batch).expect("decodes"));
                watch.stop().0
            })
            .collect(),
    );
    let f = time_batches(base, batches);
    println!(
        "{label:<28} {:>6.1} KiB {:>8.2} {:>8.2} {:>7.2} {:>8.2} {:>7.2} {:>8.2} {:>8.2} {:>7} {:>8.1}",
        size as f64 / 1024.0,
        ms(f.apply.1),
        ms(f.apply.0),
        ms(decode),
        ms(f.text.1),
        ms(f.text.0),
        ms(f.total.1),
        ms(f.total.0),
        f.leaves,
        f.bytes as f64 / 1024.0,
    );
}

fn main() {
    println!("a run of batches applied in turn to one replica: ms of this thread's CPU time (mean of the");
    println!("batches) and \"wall\" time (median; a shared machine inflates it); \"decode\" is wall time;");
    println!("\"all\" is the whole path, dropping the changes included");
    println!(
        "{:<28} {:>10} {:>8} {:>8} {:>7} {:>8} {:>7} {:>8} {:>8} {:>7} {:>8}",
        "batch", "in", "apply", "wall", "decode", "text", "wall", "all", "wall", "leaves", "KiB out"
    );
    let only_big = std::env::var("CYLC_BENCH_ONLY_1000").is_ok();
    for (n, rounds) in [(100, 41), (1_000, 15)] {
        if only_big && n < 1_000 {
            continue;
        }
        let (snapshot, bursts) = workload(n, rounds);
        let store = CylcStore::from_entire_workflow(&snapshot).expect("the workload loads");
        report(&format!("{n}-task burst (synthetic)"), &store, &bursts);
    }
    if !only_big {
        // One task changing in a 1,000- and a 10,000-task workflow: the cost follows
        // the change, not the workflow.
        let (_, ones) = workload(1, 101);
        for (n, label) in [
            (1_000, "1 task of 1,000 (synthetic)"),
            (10_000, "1 task of 10,000 (synthetic)"),
        ] {
            let (snapshot, _) = workload(n, 0);
            let store = CylcStore::from_entire_workflow(&snapshot).expect("the workload loads");
            report(label, &store, &ones);
        }
    }

    if let Ok(dir) = std::env::var("CYLC_BURST_DIR") {
        let read = |name: &str| std::fs::read(format!("{dir}/{name}")).expect("the capture reads");
        let store =
            CylcStore::from_entire_workflow_bytes(&read("entire-before.pb")).expect("the capture loads");
        let raw = read("all.frames");
        let mut rest = raw.as_slice();
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let Some(frame) = rest.get(4..4 + len) else { break };
            report("captured frame", &store, &[frame.to_vec()]);
            rest = &rest[4 + len..];
        }
    }
}
