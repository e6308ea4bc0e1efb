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

use std::time::{Duration, Instant};

use clonewire_cylc::CylcStore;

#[path = "support/workload.rs"]
mod workload;
use workload::workload;

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
