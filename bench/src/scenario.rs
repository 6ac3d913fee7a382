//! The scenarios: `fanout` and `rooms` (publish-rate sweeps), `slow` (one
//! subscriber stops reading), `idle` (memory per connection) and `chat`
//! (acknowledged `chat.send` per second, closed loop).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::load::{self, Dialect, PublishPath, Publisher, Stats, Subscriber};
use crate::target::Target;

/// Settings of a sweep (fanout, rooms, slow).
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Rooms (sessions / channels).
    pub rooms: usize,
    /// Subscribers per room.
    pub per_room: usize,
    /// Publish rates to try, messages per second in total.
    pub rates: Vec<f64>,
    /// Length of each step.
    pub step: Duration,
    /// How messages enter.
    pub path: PublishPath,
    /// Sockets per room that publish (client path).
    pub publishers_per_room: usize,
    /// Source addresses to spread connections over.
    pub sources: usize,
    /// Connections opened at once.
    pub connect_concurrency: usize,
    /// Stop after the first saturated step.
    pub stop_at_saturation: bool,
}

/// Opens every subscriber; returns them in id order.
pub async fn connect_all(
    target: &Target,
    sweep: &Sweep,
    stats: &Arc<Stats>,
    extra: usize,
) -> anyhow::Result<Vec<Subscriber>> {
    let dialect = Dialect { kind: target.kind };
    let total = sweep.rooms * sweep.per_room + extra;
    let edges = target.edges.clone();
    let started = Instant::now();
    let mut results: Vec<(usize, anyhow::Result<Subscriber>)> =
        futures_util::stream::iter(0..total)
            .map(|id| {
                let room = format!("r{}", (id / sweep.per_room).min(sweep.rooms - 1));
                let edge = edges[id % edges.len()];
                let stats = Arc::clone(stats);
                let source = load::source(id, sweep.sources);
                async move {
                    (
                        id,
                        load::subscribe(edge, source, dialect, room, id, stats).await,
                    )
                }
            })
            .buffer_unordered(sweep.connect_concurrency)
            .collect()
            .await;
    results.sort_by_key(|(id, _)| *id);
    let mut subscribers = Vec::with_capacity(total);
    for (id, result) in results {
        subscribers.push(result.with_context(|| format!("subscriber {id}"))?);
    }
    eprintln!(
        "  {} connections joined in {:.1} s",
        total,
        started.elapsed().as_secs_f64()
    );
    Ok(subscribers)
}

/// The publisher of `sweep.path` (client path: the first sockets of each room).
pub async fn publisher_for(
    target: &Target,
    sweep: &Sweep,
    subscribers: &[Subscriber],
) -> anyhow::Result<Publisher> {
    Ok(match sweep.path {
        PublishPath::Grpc => {
            let Some(grpc) = target.grpc else {
                bail!("--publish grpc needs the split target (the core's gRPC port)");
            };
            Publisher::grpc(grpc).await?
        }
        PublishPath::Http => Publisher::http(target.edges[0], 8),
        PublishPath::Ws => {
            let senders = (0..sweep.rooms)
                .map(|room| {
                    (0..sweep.publishers_per_room.clamp(1, sweep.per_room))
                        .map(|k| subscribers[room * sweep.per_room + k].outgoing.clone())
                        .collect()
                })
                .collect();
            Publisher::Ws {
                senders,
                next: vec![0; sweep.rooms],
                dialect: Dialect { kind: target.kind },
            }
        }
    })
}

/// One rate step's measurements.
#[derive(Debug, Clone)]
pub struct Step {
    /// The JSON record.
    pub record: Value,
    /// Whether the target could not keep up.
    pub saturated: bool,
}

/// Publishes at `rate` for `length`, waits for the deliveries, measures.
#[allow(clippy::too_many_arguments)]
pub async fn step(
    target: &Target,
    publisher: &mut Publisher,
    stats: &Stats,
    rooms: usize,
    receivers_per_message: u64,
    rate: f64,
    length: Duration,
    next_index: &mut u64,
) -> Step {
    let room_names: Vec<String> = (0..rooms).map(|room| format!("r{room}")).collect();
    let first = *next_index;
    stats.reset_window(first);
    let errors_before = publisher.errors();
    let cpu_before = target.cpu_seconds();
    let split_before = target.cpu_split();
    let by_process_before = target.cpu_by_process();
    let started_ns = load::now_ns();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    while started.elapsed() < length {
        ticker.tick().await;
        let due = (rate * started.elapsed().as_secs_f64().min(length.as_secs_f64())) as u64;
        while sent < due {
            let index = *next_index;
            let room = (index as usize) % rooms;
            publisher.publish(room, &room_names[room], index).await;
            *next_index += 1;
            sent += 1;
        }
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    let expected = sent * receivers_per_message;
    let mut last = 0;
    let mut last_progress = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let delivered = stats.delivered.load(Ordering::SeqCst);
        if delivered >= expected {
            break;
        }
        if delivered != last {
            last = delivered;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(3) {
            break;
        }
        if started.elapsed() > length + Duration::from_secs(30) {
            break;
        }
    }
    let cpu = target.cpu_seconds() - cpu_before;
    let split_after = target.cpu_split();
    let delivered = stats.delivered.load(Ordering::SeqCst);
    let last_ns = stats.last_delivery_ns.load(Ordering::SeqCst);
    let delivery_seconds = (last_ns.saturating_sub(started_ns) as f64 / 1e9).max(publish_seconds);
    let histogram = stats.latency_us.lock().expect("hist").clone();
    let losses = expected.saturating_sub(delivered);
    let achieved_rate = sent as f64 / publish_seconds;
    let drain_seconds = delivery_seconds - publish_seconds;
    let saturated = losses > 0 || achieved_rate < 0.9 * rate || drain_seconds > 1.0;
    let per_second = delivered as f64 / delivery_seconds;
    let record = json!({
        "rate_requested": rate,
        "rate_published": achieved_rate,
        "published": sent,
        "expected_deliveries": expected,
        "delivered": delivered,
        "losses": losses,
        "publish_errors": publisher.errors() - errors_before,
        "deliveries_per_s": per_second,
        "drain_s": drain_seconds,
        "cpu_s": cpu,
        "cpu_user_s": split_after.0 - split_before.0,
        "cpu_system_s": split_after.1 - split_before.1,
        "cpu_s_by_process": target.cpu_by_process_since(&by_process_before),
        "cpu_s_per_million": if delivered > 0 { cpu / delivered as f64 * 1e6 } else { f64::NAN },
        "latency_us": {
            "p50": histogram.value_at_quantile(0.50),
            "p99": histogram.value_at_quantile(0.99),
            "p999": histogram.value_at_quantile(0.999),
            "max": histogram.max(),
            "samples": histogram.len(),
        },
        "saturated": saturated,
    });
    Step { record, saturated }
}

/// `fanout` / `rooms`: connect, then sweep the publish rate.
pub async fn sweep(target: &Target, sweep: &Sweep) -> anyhow::Result<Value> {
    let stats = Stats::new(sweep.rooms * sweep.per_room);
    let subscribers = connect_all(target, sweep, &stats, 0).await?;
    let mut publisher = publisher_for(target, sweep, &subscribers).await?;
    // Let join-time presence traffic settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_kib = target.total_rss_kib();
    let mut next_index = 1_000_000u64;
    let mut steps = Vec::new();
    for &rate in &sweep.rates {
        let result = step(
            target,
            &mut publisher,
            &stats,
            sweep.rooms,
            sweep.per_room as u64,
            rate,
            sweep.step,
            &mut next_index,
        )
        .await;
        crate::report::print_step(target.kind.name(), &result.record);
        steps.push(result.record);
        if result.saturated && sweep.stop_at_saturation {
            break;
        }
        // Let a backlog clear between steps.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for subscriber in &subscribers {
        subscriber.task.abort();
    }
    Ok(json!({
        "connections": sweep.rooms * sweep.per_room,
        "rooms": sweep.rooms,
        "per_room": sweep.per_room,
        "publish": format!("{:?}", sweep.path).to_lowercase(),
        "rss_kib_loaded": rss_kib,
        "steps": steps,
    }))
}

/// `join`: every socket of `sweep` joins one room at once. Measures the
/// wall time until all are joined and the target's CPU from the first
/// connect until it is quiet again (under 10 ms of CPU in a second), so the
/// presence traffic the joins cause is counted too.
pub async fn join_storm(target: &Target, sweep: &Sweep) -> anyhow::Result<Value> {
    const QUIET_CPU_S: f64 = 0.01;
    const GIVE_UP: Duration = Duration::from_secs(900);
    let stats = Stats::new(sweep.rooms * sweep.per_room);
    let rss_before = target.total_rss_kib();
    let cpu_before = target.cpu_seconds();
    let per_process_before = target.cpu_by_process();
    let started = Instant::now();
    let subscribers = connect_all(target, sweep, &stats, 0).await?;
    let joined_s = started.elapsed().as_secs_f64();
    let mut cpu_last = target.cpu_seconds();
    let quiet = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu_now = target.cpu_seconds();
        if cpu_now - cpu_last < QUIET_CPU_S {
            break true;
        }
        cpu_last = cpu_now;
        if started.elapsed() > GIVE_UP {
            break false;
        }
    };
    let settled_s = started.elapsed().as_secs_f64() - 1.0;
    let cpu_s = cpu_last - cpu_before;
    // In process start order (split meno: the core, then the bridge).
    let cpu_s_by_process = target.cpu_by_process_since(&per_process_before);
    let rss_after = target.total_rss_kib();
    let frames = subscribers
        .iter()
        .map(|subscriber| subscriber.frames.load(Ordering::Relaxed))
        .sum::<u64>();
    for subscriber in &subscribers {
        subscriber.task.abort();
    }
    eprintln!(
        "  join storm: {} sockets joined in {joined_s:.2} s, quiet after {settled_s:.2} s, \
         {cpu_s:.2} CPU-s on the target {cpu_s_by_process:.2?}, {frames} frames to the clients",
        subscribers.len()
    );
    Ok(json!({
        "sockets": subscribers.len(),
        "connect_concurrency": sweep.connect_concurrency,
        "joined_s": joined_s,
        "settled_s": settled_s,
        "quiet": quiet,
        "cpu_s": cpu_s,
        "cpu_s_by_process": cpu_s_by_process,
        "frames_received": frames,
        "rss_kib_per_socket": rss_after.saturating_sub(rss_before) as f64 / subscribers.len().max(1) as f64,
    }))
}

/// `slow`: the others' latency with one subscriber that stops reading.
pub async fn slow(target: &Target, sweep: &Sweep) -> anyhow::Result<Value> {
    let subscribers_n = sweep.per_room;
    let stats = Stats::new(subscribers_n + 1);
    // The slow subscriber is the last one, in the same room.
    let subscribers = connect_all(target, sweep, &stats, 1).await?;
    let slow_id = subscribers_n;
    let mut publisher = publisher_for(target, sweep, &subscribers).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rate = sweep.rates.first().copied().unwrap_or(500.0);
    let mut next_index = 1_000_000u64;
    stats.excluded[slow_id].store(true, Ordering::SeqCst);
    let receivers = subscribers_n as u64 + 1;
    let before = step(
        target,
        &mut publisher,
        &stats,
        1,
        receivers,
        rate,
        sweep.step,
        &mut next_index,
    )
    .await;
    crate::report::print_step(target.kind.name(), &before.record);
    subscribers[slow_id].paused.store(true, Ordering::SeqCst);
    let slow_before = stats.per_subscriber[slow_id].load(Ordering::SeqCst);
    let during = step(
        target,
        &mut publisher,
        &stats,
        1,
        subscribers_n as u64,
        rate,
        sweep.step * 3,
        &mut next_index,
    )
    .await;
    crate::report::print_step(target.kind.name(), &during.record);
    subscribers[slow_id].paused.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed = *subscribers[slow_id].closed_with.lock().expect("closed");
    let slow_after = stats.per_subscriber[slow_id].load(Ordering::SeqCst);
    for subscriber in &subscribers {
        subscriber.task.abort();
    }
    Ok(json!({
        "subscribers": subscribers_n,
        "rate": rate,
        "before": before.record,
        "with_slow_subscriber": during.record,
        "slow_subscriber": {
            "closed": closed.is_some(),
            "close_code": closed.flatten(),
            "received_while_paused_then_drained": slow_after - slow_before,
        },
    }))
}
