//! `idle`: resident memory per idle connection, with the connections spread
//! over several load processes (20,000 open files per process here) and
//! source addresses (about 28,000 ports per source address); and `chat`:
//! acknowledged `chat.send` per second in a closed loop.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::load::{self, Dialect};
use crate::target::{Target, TargetKind};
use crate::wsclient;

/// Connections one load process opens at most (below its 20,000 files).
pub const PER_WORKER: usize = 17_000;

/// Settings of the idle scenario.
#[derive(Debug, Clone)]
pub struct Idle {
    /// Connections in all.
    pub connections: usize,
    /// Connections per room.
    pub room_size: usize,
    /// A room's connections all go to one server process.
    pub by_room: bool,
    /// CPU the load processes are pinned to.
    pub load_cpu: usize,
    /// How long to hold the connections before measuring.
    pub settle: Duration,
}

/// Opens the connections from worker processes, then measures RSS.
pub fn idle(target: &Target, idle: &Idle) -> anyhow::Result<Value> {
    std::thread::sleep(Duration::from_secs(1));
    let edge_before = target.edge_rss_kib();
    let total_before = target.total_rss_kib();
    let workers = idle.connections.div_ceil(PER_WORKER);
    let edges: Vec<String> = target.edges.iter().map(ToString::to_string).collect();
    let started = Instant::now();
    let mut children = Vec::new();
    for worker in 0..workers {
        let offset = worker * PER_WORKER;
        let count = PER_WORKER.min(idle.connections - offset);
        let child = Command::new("taskset")
            .arg("-c")
            .arg(idle.load_cpu.to_string())
            .arg(std::env::current_exe()?)
            .arg("idle-worker")
            .arg("--kind")
            .arg(target.kind.name())
            .arg("--edges")
            .arg(edges.join(","))
            .arg("--offset")
            .arg(offset.to_string())
            .arg("--count")
            .arg(count.to_string())
            .arg("--room-size")
            .arg(idle.room_size.to_string())
            .arg("--source-index")
            .arg(worker.to_string())
            .args(idle.by_room.then_some("--by-room"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting an idle worker")?;
        children.push(child);
    }
    let mut opened = 0usize;
    let mut failed = 0usize;
    for child in &mut children {
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let mut words = line.split_whitespace().skip(1);
        opened += words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        failed += words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(idle.settle);
    let edge_after = target.edge_rss_kib();
    let total_after = target.total_rss_kib();
    for mut child in children {
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
    }
    let per = |before: u64, after: u64| {
        if opened == 0 {
            f64::NAN
        } else {
            (after.saturating_sub(before)) as f64 / opened as f64
        }
    };
    let record = json!({
        "connections_requested": idle.connections,
        "connections_open": opened,
        "connections_failed": failed,
        "server_processes": target.edges.len(),
        "rooms_on_one_process": idle.by_room,
        "load_processes": workers,
        "connect_s": connect_seconds,
        "edge_rss_kib_before": edge_before,
        "edge_rss_kib_after": edge_after,
        "edge_kib_per_connection": per(edge_before, edge_after),
        "total_rss_kib_before": total_before,
        "total_rss_kib_after": total_after,
        "total_kib_per_connection": per(total_before, total_after),
    });
    crate::report::print_idle(target.kind.name(), &record);
    Ok(record)
}

/// The `idle-worker` subcommand: opens `count` connections, prints
/// `ready OPEN FAILED`, and holds them (answering pings) until stdin closes.
pub async fn worker(
    kind: TargetKind,
    edges: Vec<SocketAddr>,
    offset: usize,
    count: usize,
    room_size: usize,
    source_index: usize,
    by_room: bool,
) -> anyhow::Result<()> {
    let dialect = Dialect { kind };
    let stats = load::Stats::new(offset + count);
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let subscribers: Vec<_> = futures_util::stream::iter(offset..offset + count)
        .map(|id| {
            let stats = Arc::clone(&stats);
            let spread = if by_room { id / room_size.max(1) } else { id };
            let edge = edges[spread % edges.len()];
            // One source address per worker: at most PER_WORKER ports each.
            let source = load::source(source_index, 250);
            let room = format!("r{}", id / room_size.max(1));
            let failed = Arc::clone(&failed);
            let first_error = Arc::clone(&first_error);
            async move {
                match load::subscribe(edge, source, dialect, room, id, stats).await {
                    Ok(subscriber) => Some(subscriber),
                    Err(err) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .expect("error")
                            .get_or_insert(format!("{err:#}"));
                        None
                    }
                }
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let open = subscribers.iter().filter(|s| s.is_some()).count();
    if let Some(err) = first_error.lock().expect("error").as_ref() {
        eprintln!("idle worker {source_index}: first failure: {err}");
    }
    println!("ready {open} {}", failed.load(Ordering::Relaxed));
    std::io::stdout().flush()?;
    // Hold until the parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await?;
    drop(subscribers);
    Ok(())
}

/// `chat`: every socket sends `chat.send` and waits for its own message to
/// come back (the acknowledgement) before sending the next.
pub async fn chat(
    target: &Target,
    rooms: usize,
    per_room: usize,
    length: Duration,
) -> anyhow::Result<Value> {
    let dialect = Dialect { kind: target.kind };
    let acked = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("hdr"),
    ));
    let total = rooms * per_room;
    let go = Arc::new(tokio::sync::Barrier::new(total + 1));
    let deadline = Arc::new(Mutex::new(None::<Instant>));
    let mut tasks = Vec::new();
    for id in 0..total {
        let edge = target.edges[id % target.edges.len()];
        let room = format!("r{}", id / per_room);
        let path = dialect.path(&room, id);
        let (acked, histogram, go, deadline) = (
            Arc::clone(&acked),
            Arc::clone(&histogram),
            Arc::clone(&go),
            Arc::clone(&deadline),
        );
        tasks.push(tokio::spawn(async move {
            let connected = async {
                let mut ws = wsclient::connect(edge, load::source(id, 8), &path).await?;
                dialect.join(&mut ws, &room).await?;
                anyhow::Ok(ws)
            }
            .await;
            go.wait().await;
            let mut ws = connected?;
            let end = deadline.lock().expect("deadline").expect("set before go");
            let mut index = (id as u64) << 32;
            while Instant::now() < end {
                index += 1;
                let sent = load::now_ns();
                let text = dialect.chat_send(&room, index, &load::content(index));
                ws.send_text(text.as_bytes()).await?;
                let mut mine = false;
                while !mine {
                    ws.read_until(|message| {
                        load::scan(message, |_, seen| mine |= seen == index);
                        mine
                    })
                    .await?;
                }
                acked.fetch_add(1, Ordering::Relaxed);
                let micros = (load::now_ns() - sent) / 1000;
                let _ = histogram.lock().expect("hist").record(micros.max(1));
            }
            anyhow::Ok(())
        }));
    }
    // Connections are made while the tasks wait at the barrier.
    tokio::time::sleep(Duration::from_secs(1)).await;
    *deadline.lock().expect("deadline") = Some(Instant::now() + length);
    go.wait().await;
    let started = Instant::now();
    let cpu_before = target.cpu_seconds();
    let by_process_before = target.cpu_by_process();
    tokio::time::sleep(length).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = target.cpu_seconds() - cpu_before;
    let cpu_by_process = target.cpu_by_process_since(&by_process_before);
    let count = acked.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut failures = 0;
    for task in tasks {
        task.abort();
        if let Ok(Ok(Err(err))) = tokio::time::timeout(Duration::from_millis(10), task).await {
            failures += 1;
            if failures == 1 {
                eprintln!("  chat task failed: {err:#}");
            }
        }
    }
    let histogram = histogram.lock().expect("hist").clone();
    let record = json!({
        "sockets": total,
        "rooms": rooms,
        "acked": count,
        "acked_per_s": count as f64 / seconds,
        "deliveries_per_s": count as f64 * per_room as f64 / seconds,
        "cpu_s": cpu,
        "cpu_s_by_process": cpu_by_process,
        "failures": failures,
        "ack_latency_us": {
            "p50": histogram.value_at_quantile(0.5),
            "p99": histogram.value_at_quantile(0.99),
            "p999": histogram.value_at_quantile(0.999),
        },
    });
    crate::report::print_chat(target.kind.name(), &record);
    Ok(record)
}
