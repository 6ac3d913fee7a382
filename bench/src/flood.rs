//! `flood` (issue 6): a flood from one socket must not delay another
//! session's deliveries. Session B (`r0`) has N subscribers and a steady
//! publisher; its publish→deliver latency is measured twice, quiet and while
//! one socket in session A floods the bridge with `chat.send` as fast as it
//! can, reconnecting whenever the bridge closes it (4029). The bridge runs
//! with its default per-connection limits (only the per-IP cap is lifted).
//!
//! The flooder is a child process (`meno-load flood-worker`) at nice 19 on
//! the load CPU, so its tight loop does not take CPU from the measuring
//! clients (which would show up as latency that is not the target's).

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::load::{PublishPath, Stats};
use crate::scenario::{self, Sweep};
use crate::target::Target;
use crate::wsclient;

/// Settings of the flood scenario.
#[derive(Debug, Clone)]
pub struct Flood {
    /// Subscribers of session B.
    pub subscribers: usize,
    /// Publish rate into session B, messages per second.
    pub rate: f64,
    /// Length of each of the two runs.
    pub length: Duration,
    /// How B's messages enter.
    pub path: PublishPath,
    /// Source address of the flooder.
    pub flood_source: Ipv4Addr,
}

/// Runs one measured window and adds the target's CPU share to its record.
async fn measured(
    target: &Target,
    publisher: &mut crate::load::Publisher,
    stats: &Stats,
    subscribers: usize,
    settings: &Flood,
    next_index: &mut u64,
) -> Value {
    let cpu_before = target.cpu_seconds();
    let started = Instant::now();
    let step = scenario::step(
        target,
        publisher,
        stats,
        1,
        subscribers as u64,
        settings.rate,
        settings.length,
        next_index,
    )
    .await;
    let wall = started.elapsed().as_secs_f64();
    let cpu = target.cpu_seconds() - cpu_before;
    let mut record = step.record;
    record["window_s"] = json!(wall);
    record["target_cpu_pct"] = json!(cpu / wall * 100.0);
    record
}

/// The flood scenario: quiet run, then the same run under a flood.
pub async fn flood(target: &Target, settings: &Flood) -> anyhow::Result<Value> {
    // Client-path publishers stay under the default 20 msg/s each.
    let publishers = ((settings.rate / 10.0).ceil() as usize).clamp(1, settings.subscribers);
    let sweep = Sweep {
        rooms: 1,
        per_room: settings.subscribers,
        rates: vec![settings.rate],
        step: settings.length,
        path: settings.path,
        publishers_per_room: publishers,
        sources: 8,
        connect_concurrency: 64,
        stop_at_saturation: false,
    };
    let stats = Stats::new(settings.subscribers);
    let subscribers = scenario::connect_all(target, &sweep, &stats, 0).await?;
    let mut publisher = scenario::publisher_for(target, &sweep, &subscribers).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut next_index = 1_000_000u64;
    let quiet = measured(
        target,
        &mut publisher,
        &stats,
        settings.subscribers,
        settings,
        &mut next_index,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let edge = target.edges[0];
    let mut child = Command::new("nice")
        .arg("-n")
        .arg("19")
        .arg(std::env::current_exe()?)
        .arg("flood-worker")
        .arg("--edge")
        .arg(edge.to_string())
        .arg("--source")
        .arg(settings.flood_source.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the flood worker")?;
    // Wait until it has flooded for a moment.
    let mut stdout = std::io::BufReader::new(child.stdout.take().context("worker stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let flooded = measured(
        target,
        &mut publisher,
        &stats,
        settings.subscribers,
        settings,
        &mut next_index,
    )
    .await;
    drop(child.stdin.take());
    let mut report = String::new();
    stdout.read_to_string(&mut report)?;
    let _ = child.wait();
    let flooder: Value = serde_json::from_str(report.trim()).unwrap_or_else(
        |err| json!({"error": format!("unreadable worker report: {err}: {report}")}),
    );
    let closed = subscribers
        .iter()
        .filter(|s| s.closed_with.lock().expect("closed").is_some())
        .count();
    for subscriber in &subscribers {
        subscriber.task.abort();
    }
    let p99 = |record: &Value| record["latency_us"]["p99"].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "subscribers": settings.subscribers,
        "rate": settings.rate,
        "publish": format!("{:?}", settings.path).to_lowercase(),
        "publishers": if settings.path == PublishPath::Ws { publishers } else { 1 },
        "quiet": quiet,
        "flooded": flooded,
        "p99_ratio": p99(&flooded) / p99(&quiet),
        "b_subscribers_closed": closed,
        "flooder": flooder,
    }))
}

#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    join_failures: AtomicU64,
    frames_written: AtomicU64,
    rate_limited: AtomicU64,
    other_messages: AtomicU64,
    ended_without_close: AtomicU64,
}

async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_rate_limited(message: &[u8]) -> bool {
    memchr::memmem::find(message, b"\"RateLimited\"").is_some()
}

/// The flooder (`meno-load flood-worker`): floods until its stdin closes,
/// then prints its counts as JSON on stdout.
pub async fn worker(edge: SocketAddr, source: Option<Ipv4Addr>) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            stop.store(true, Ordering::SeqCst);
        }
    });
    let counters = Arc::new(Counters::default());
    let mut closes: BTreeMap<String, u64> = BTreeMap::new();
    let mut batch = Vec::new();
    for i in 0..64 {
        let text = format!(
            r#"{{"action":"chat.send","payload":{{"messageId":"f{i}","content":"flood"}}}}"#
        );
        batch.extend_from_slice(&wsclient::client_frame(0x1, text.as_bytes()));
    }
    let path = "/ws?sessionId=flood-a&participantId=flooder&name=flooder&role=student&client=web";
    let started = Instant::now();
    let mut announced = false;
    while !stop.load(Ordering::Relaxed) {
        counters.connects.fetch_add(1, Ordering::Relaxed);
        let Ok(mut ws) = wsclient::connect(edge, source, path).await else {
            counters.connect_failures.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let joined = tokio::time::timeout(
            Duration::from_secs(5),
            ws.read_until(|m| {
                if is_rate_limited(m) {
                    counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                memchr::memmem::find(m, b"\"presence.snapshot\"").is_some()
            }),
        )
        .await;
        if !matches!(joined, Ok(Ok(()))) {
            counters.join_failures.fetch_add(1, Ordering::Relaxed);
            let code = ws.close_code.map_or("none".to_owned(), |c| c.to_string());
            *closes.entry(format!("{code} (at join)")).or_default() += 1;
            continue;
        }
        if !announced {
            println!("flooding");
            announced = true;
        }
        let (mut reader, mut writer) = ws.split();
        let mut read_task = tokio::spawn({
            let counters = Arc::clone(&counters);
            async move {
                loop {
                    let open = reader.drain(|m| {
                        if is_rate_limited(m) {
                            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                        } else {
                            counters.other_messages.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    if !open {
                        return reader.close_code;
                    }
                    if !matches!(reader.fill().await, Ok(true)) {
                        return None;
                    }
                }
            }
        });
        let close = loop {
            if stop.load(Ordering::Relaxed) {
                read_task.abort();
                break None;
            }
            tokio::select! {
                written = writer.write_all(&batch) => {
                    if written.is_err() {
                        let ended = tokio::time::timeout(Duration::from_secs(2), &mut read_task).await;
                        break Some(ended.ok().and_then(Result::ok).flatten());
                    }
                    counters.frames_written.fetch_add(64, Ordering::Relaxed);
                }
                ended = &mut read_task => break Some(ended.ok().flatten()),
                () = stopped(&stop) => {
                    read_task.abort();
                    break None;
                }
            }
        };
        match close {
            Some(Some(code)) => *closes.entry(code.to_string()).or_default() += 1,
            Some(None) => {
                counters.ended_without_close.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
    }
    if !announced {
        println!("flooding");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let frames = get(&counters.frames_written);
    let closes_4029 = closes.get("4029").copied().unwrap_or(0);
    let report = json!({
        "elapsed_s": elapsed,
        "connects": get(&counters.connects),
        "connect_failures": get(&counters.connect_failures),
        "join_failures": get(&counters.join_failures),
        "frames_written": frames,
        "frames_per_s": frames as f64 / elapsed,
        "rate_limited_errors": get(&counters.rate_limited),
        "other_messages": get(&counters.other_messages),
        "closes_4029": closes_4029,
        "closes_by_code": closes,
        "ended_without_close": get(&counters.ended_without_close),
    });
    println!("{report}");
    Ok(())
}
