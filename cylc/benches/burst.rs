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

/// Times decode + apply + map of each batch in turn on one replica (so it stays
/// warm, as a relay's does); returns the median batch, its leaves and patch bytes.
fn time_batches(base: &CylcStore, batches: &[Vec<u8>]) -> (Duration, Duration, usize, usize) {
    let mut store = base.clone();
    let mut applying = Vec::with_capacity(batches.len());
    let mut printing = Vec::with_capacity(batches.len());
    let (mut leaves, mut bytes) = (0, 0);
    for batch in batches {
        let start = Instant::now();
        let applied = store.apply_bytes(batch).expect("the burst applies");
        applying.push(start.elapsed());
        let start = Instant::now();
        let (mut l, mut b) = (0, 0);
        for (_, changes) in &applied.topics {
            l += changes.len();
            b += changes.patch_text().len();
        }
        printing.push(start.elapsed());
        (leaves, bytes) = (l, b);
    }
    applying.sort();
    printing.sort();
    (
        applying[batches.len() / 2],
        printing[batches.len() / 2],
        leaves,
        bytes,
    )
}

fn report(label: &str, base: &CylcStore, batches: &[Vec<u8>]) {
    let size = batches[0].len();
    let mut decoding: Vec<Duration> = batches
        .iter()
        .map(|batch| {
            let start = Instant::now();
            std::hint::black_box(clonewire_cylc::store::decode_all_deltas(batch).expect("decodes"));
            start.elapsed()
        })
        .collect();
    decoding.sort();
    let decode = decoding[batches.len() / 2];
    let (apply, print, leaves, bytes) = time_batches(base, batches);
    println!(
        "{label:<28} {:>7.1} KiB in  {:>7.2} ms decode+apply+map (decode {:.2} ms)  {:>6.2} ms patch text  {:>6} leaves  {:>7.1} KiB of patches",
        size as f64 / 1024.0,
        apply.as_secs_f64() * 1e3,
        decode.as_secs_f64() * 1e3,
        print.as_secs_f64() * 1e3,
        leaves,
        bytes as f64 / 1024.0,
    );
}

fn main() {
    println!("median batch of a run of batches applied in turn to one replica");
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
        // One task changing in a 1,000-task workflow: the cost follows the change.
        let (snapshot, _) = workload(1_000, 0);
        let (_, ones) = workload(1, 101);
        let store = CylcStore::from_entire_workflow(&snapshot).expect("the workload loads");
        report("1 task of 1,000 (synthetic)", &store, &ones);
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
