//! The table `clonewire-bench-cylc` prints: both sides side by side per workload.

use super::clients::Side;
use super::run::{Cell, Workload};
use super::{Group, Report};

impl Cell {
    /// A cell of a side that cannot run, with the reason.
    pub fn skipped(workload: &'static str, side: Side, clients: usize, why: &str) -> Cell {
        Cell {
            workload,
            side,
            clients,
            report: Err(format!("SKIPPED ({why})")),
            late: None,
            cpu: (0.0, 0.0),
            sched_cpu: 0.0,
            rss: 0.0,
            floor: (0, 0),
            client_cpu: 0.0,
            load: 0.0,
            browser: None,
        }
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Uis => "cylc-uiserver",
        Side::Relay => "clonewire-relay",
    }
}

fn secs(ms: f64) -> String {
    format!("{:.2}", ms / 1000.0)
}

/// p50 / p99 / max, and the share of batches (times clients) the clients had not
/// received by the end of the window (or whose changes a server merged away), which
/// the percentiles leave out: with many, the percentiles are lower bounds.
fn lat(g: Option<&Group>) -> String {
    match g {
        Some(g) if g.matched > 0 => {
            let missed = if g.missed > 0 {
                format!(
                    " ({:.0}% unmatched)",
                    100.0 * g.missed as f64 / (g.matched + g.missed) as f64
                )
            } else {
                String::new()
            };
            format!(
                "{} / {} / {}{missed}",
                secs(g.latency.p50),
                secs(g.latency.p99),
                secs(g.latency.max)
            )
        }
        Some(g) if g.missed > 0 => "none matched".into(),
        _ => "–".into(),
    }
}

fn added(g: Option<&Group>) -> String {
    match g {
        Some(g) if g.matched > 0 => format!("{} / {}", secs(g.added.p50), secs(g.added.p99)),
        _ => "–".into(),
    }
}

fn floor(g: Option<&Group>) -> String {
    match g {
        Some(g) if g.matched > 0 => secs(g.floor.p99),
        _ => "–".into(),
    }
}

fn late(r: Option<&Report>) -> String {
    match r {
        Some(r) if r.joined > 0 => format!(
            "{} s, {} tasks, {:.1} MB",
            secs(r.join_ms.max),
            r.join_tasks,
            r.join_bytes / 1e6
        ),
        _ => "–".into(),
    }
}

/// The header of the main table.
pub const HEADER: &str = "| workload | C | side | latency s | floor p99 s | added s | bursts: latency s | bursts: added s | batches (max MB) | bytes/client MB | server CPU s/s avg (peak 5 s) | peak RSS MiB | new client holds the workflow | scheduler CPU s/s | client process CPU s/s | load avg |";

/// One cell's row of the main table.
pub fn row(w: &Workload, c: &Cell) -> String {
    let main = w
        .flows
        .iter()
        .rev()
        .find(|f| Some(f.name) != w.watch)
        .map_or(w.name, |f| f.name);
    let head = format!("| {} | {} | {} |", w.name, c.clients, side_name(c.side));
    let r = match &c.report {
        Ok(r) => r,
        Err(e) => return format!("{head} {e} | | | | | | | | | | | | |"),
    };
    let all = r.groups.get(&format!("{main}:all"));
    let burst = r.groups.get(&format!("{main}:burst"));
    let failed = if r.failed > 0 {
        format!(" ({} failed)", r.failed)
    } else {
        String::new()
    };
    format!(
        "{head} {}{failed} | {} | {} | {} | {} | {} ({:.1}) | {:.1} | {:.3} ({:.2}) | {:.0} | {} | {:.2} | {:.3} | {:.1} |",
        lat(all),
        floor(all),
        added(all),
        lat(burst),
        added(burst),
        c.floor.0,
        c.floor.1 as f64 / 1e6,
        r.bytes_per_client / 1e6,
        c.cpu.0,
        c.cpu.1,
        c.rss,
        late(c.late.as_ref()),
        c.sched_cpu,
        c.client_cpu,
        c.load,
    )
}

/// Prints the tables.
pub fn print(workloads: &[Workload], cells: &[Cell]) {
    println!();
    println!("Latency: scheduler delta `time` to client receipt, p50 / p99 / max, seconds, over");
    println!("batches x clients; floor: the raw ZeroMQ subscriber's p99; added: client receipt");
    println!(
        "minus the floor's, p50 / p99. Bursts: batches with >= {} changes.",
        super::BURST_CHANGES
    );
    println!();
    println!("{HEADER}");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for w in workloads {
        for c in cells.iter().filter(|c| c.workload == w.name) {
            println!("{}", row(w, c));
        }
    }
    for w in workloads.iter().filter(|w| w.watch.is_some()) {
        let Some(small) = w.watch else { continue };
        let rows: Vec<&Cell> = cells.iter().filter(|c| c.workload == w.name).collect();
        if rows.is_empty() {
            continue;
        }
        println!();
        println!(
            "Isolation: the small workflow `{small}` before and during the bursts, latency p50 / p99 / max s"
        );
        println!();
        println!("| C | side | before | during | during p99 / before p99 |");
        println!("|---|---|---|---|---|");
        for c in rows {
            let Ok(r) = &c.report else {
                let e = c.report.as_ref().err().cloned().unwrap_or_default();
                println!("| {} | {} | {e} | | |", c.clients, side_name(c.side));
                continue;
            };
            let before = r.groups.get(&format!("{small}:before"));
            let during = r.groups.get(&format!("{small}:during"));
            let ratio = match (before, during) {
                (Some(b), Some(d)) if b.latency.p99 > 0.0 => format!("{:.1}x", d.latency.p99 / b.latency.p99),
                _ => "–".into(),
            };
            println!(
                "| {} | {} | {} | {} | {ratio} |",
                c.clients,
                side_name(c.side),
                lat(before),
                lat(during)
            );
        }
    }
}
