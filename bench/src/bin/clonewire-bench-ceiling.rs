//! `clonewire-bench-ceiling`: the socket ceiling. A bare tokio-tungstenite server
//! that makes one frame per tick (a delta-shaped JSON text of one of the given sizes,
//! stamped with the current `time`) and sends it to every connected client, with no
//! work between: no store, no projection, no per-client state but a bounded queue.
//! A client that falls behind skips frames, as the relay's clients get conflated.
//! Exits after `--max-secs`.

use std::time::Duration;

use clap::Parser;
use clonewire_bench::now_ms;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Sends frames of given sizes at a given rate to every client.
#[derive(Parser, Debug)]
#[command(name = "clonewire-bench-ceiling")]
struct Args {
    /// Where to listen (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Frames per second sent to each client.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Frame sizes in bytes, used in turn (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "200")]
    sizes: Vec<usize>,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    max_secs: f64,
}

/// A delta-shaped frame of about `size` bytes with the current time.
fn frame(size: usize, seq: u64) -> Utf8Bytes {
    let head = format!(
        "{{\"type\":\"delta\",\"workflow\":\"w\",\"topic\":\"taskProxies\",\"seq\":{seq},\"time\":{:.3},\"patch\":{{\"p\":\"",
        now_ms()
    );
    let pad = size.saturating_sub(head.len() + 3);
    let mut text = String::with_capacity(head.len() + pad + 3);
    text.push_str(&head);
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str("\"}}");
    text.into()
}

async fn serve(stream: tokio::net::TcpStream, mut frames: broadcast::Receiver<Utf8Bytes>) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    // Reads (and ignores) what the client sends, so its subscribe is consumed.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = source.next().await {} });
    loop {
        let first = match frames.recv().await {
            Ok(f) => f,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if sink.feed(Message::Text(first)).await.is_err() {
            break;
        }
        // Whatever else is ready goes out in the same flush.
        let mut more = 0;
        while more < 64 {
            match frames.try_recv() {
                Ok(f) => {
                    if sink.feed(Message::Text(f)).await.is_err() {
                        break;
                    }
                    more += 1;
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    reader.abort();
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() || args.rate.is_nan() || args.rate <= 0.0 || args.sizes.is_empty() {
        eprintln!("error: --listen must be loopback, --rate positive, --sizes not empty");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return std::process::ExitCode::FAILURE;
            }
        };
        // About a second of frames per client before it skips (like a byte-bounded outbox).
        let (tx, _) = broadcast::channel::<Utf8Bytes>((args.rate as usize).clamp(64, 4096));
        let sender = tx.clone();
        let (rate, sizes) = (args.rate, args.sizes.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for seq in 0u64.. {
                tick.tick().await;
                let _ = sender.send(frame(sizes[seq as usize % sizes.len()], seq));
            }
        });
        let accept = async {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, tx.subscribe()));
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs_f64(args.max_secs), accept).await;
        std::process::ExitCode::SUCCESS
    })
}
