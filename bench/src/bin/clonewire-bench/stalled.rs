//! The stalled-clients part: a reading client's rate and the relay's intake, alone
//! and then beside clients that subscribe and never read.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use clonewire_bench::process::free_port;
use clonewire_bench::suite::Suite;

use crate::{metric, run_clients, Bench};

/// Resident memory now in MiB (`VmRSS`).
fn rss_mib(pid: u32) -> Option<f64> {
    clonewire_bench::footprint(pid).map(|f| f.rss_mib)
}

/// A websocket client that subscribes to every workflow and never reads: a plain
/// socket with a 4 KiB receive buffer, the upgrade request and one masked frame.
fn stalled_client(addr: SocketAddr) -> Result<TcpStream, String> {
    use std::os::fd::AsRawFd;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let size: libc::c_int = 4096;
    // SAFETY: a valid socket descriptor and a pointer to a c_int of the given length.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::addr_of!(size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: c3RhbGxlZC1jbGllbnQtMDE=\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let payload = br#"{"type":"subscribe","query":"{ workflows { taskProxies } }"}"#;
    // A final text frame, masked (as clients must) with a zero key.
    let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    stream.write_all(&frame).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A reading client's rate and the relay's intake alone, then with five stalled
/// clients, against one relay following two busy suites.
pub(crate) fn stalled(bench: &Bench) -> Result<(), String> {
    let (tasks, rate) = if bench.args.quick {
        (2000, 500.0)
    } else {
        (2000, 2000.0)
    };
    let secs = bench
        .args
        .stalled_secs
        .unwrap_or(if bench.args.quick { 2.0 } else { 10.0 });
    println!("\n## Stalled clients: 2 suites x {rate} deltas/s ({tasks} tasks), 1 reading client, then 5 that never read\n");
    let suites = [
        Suite::start("busy0", tasks, rate, 11)?,
        Suite::start("busy1", tasks, rate, 12)?,
    ];
    let port = free_port()?;
    let relay = bench.start_relay(port, &suites)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let url = format!("ws://{addr}/ws");
    let window = |label: &str| -> Result<(f64, f64, f64, f64), String> {
        let before = metric(addr, "deltas_in").unwrap_or(0.0);
        let rss_before = rss_mib(relay.pid()).unwrap_or(0.0);
        let started = Instant::now();
        let run = run_clients(&url, 2, 1, 1, 1.0, secs, "relay", &[relay.pid()])?;
        let elapsed = started.elapsed().as_secs_f64();
        let intake = (metric(addr, "deltas_in").unwrap_or(0.0) - before) / elapsed;
        let reader = run.report.deltas as f64 / run.report.window_secs.max(1e-9);
        let rss_after = rss_mib(relay.pid()).unwrap_or(0.0);
        println!(
            "| {label} | {reader:.0} | {:.1} / {:.1} | {intake:.0} | {:.2} | {rss_before:.0} -> {rss_after:.0} |",
            run.report.latency_ms.p50,
            run.report.latency_ms.p99,
            run.cpu.first().copied().unwrap_or(0.0) / secs
        );
        Ok((reader, intake, rss_before, rss_after))
    };
    println!("| clients | reader deltas/s | reader latency p50 / p99 ms | relay deltas_in/s | relay CPU s/s | relay RSS MiB |");
    println!("|---|---|---|---|---|---|");
    let (alone, intake_alone, _, _) = window("1 reader")?;
    let stalled: Vec<TcpStream> = (0..5).map(|_| stalled_client(addr)).collect::<Result<_, _>>()?;
    // Let their socket buffers fill before measuring.
    std::thread::sleep(Duration::from_secs(if bench.args.quick { 1 } else { 2 }));
    let (crowded, intake_crowded, rss_before, rss_after) = window("1 reader + 5 stalled")?;
    drop(stalled);
    println!(
        "\nreader rate with 5 stalled clients / alone: {:.2} (goal >= 0.8); relay intake {:.2}x; \
         relay RSS {:+.0} MiB over the window (goal <= 100 MB over 60 s); skipped for stalled clients: {:.0}",
        crowded / alone.max(1e-9),
        intake_crowded / intake_alone.max(1e-9),
        rss_after - rss_before,
        metric(addr, "conflations").unwrap_or(0.0)
    );
    drop(relay);
    Ok(())
}
