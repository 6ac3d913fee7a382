//! The core's Prometheus metrics; [`serve`] exposes them (`--metrics-listen`).

use std::sync::LazyLock;

use meno_common::metrics::registered;
use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
};

/// Session actors running.
pub static ACTIVE_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    registered(register_int_gauge!(
        "meno_core_active_sessions",
        "Session actors running on this core"
    ))
});

/// Events published, by kind (chat, presence, lease).
pub static EVENTS_PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(register_int_counter_vec!(
        "meno_core_events_published_total",
        "Session events published to subscribers, by kind",
        &["kind"]
    ))
});

/// Latency of store writes (one per actor batch).
pub static STORE_WRITE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    registered(register_histogram!(
        "meno_core_store_write_seconds",
        "Latency of one batched store write",
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
    ))
});

/// Groups of write requests the embedded store's writer served: one `fsync`
/// for each group that applied any of its requests.
pub static STORE_GROUP_COMMITS: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_store_group_commits_total",
        "Groups of write requests served by the embedded store's writer (one fsync per group that applied any)"
    ))
});

/// Write requests the embedded store's group commits served.
pub static STORE_GROUP_COMMIT_REQUESTS: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_store_group_commit_requests_total",
        "Write requests served by the embedded store's group commits"
    ))
});

/// Store calls that failed.
pub static STORE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_store_errors_total",
        "Store calls that failed"
    ))
});

/// Latency of commands, from the gRPC handler to the actor's answer.
pub static COMMAND_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    registered(register_histogram_vec!(
        "meno_core_command_seconds",
        "Latency of session commands (gRPC handler to answer), by command",
        &["command"],
        vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]
    ))
});

/// Leases granted to a new holder.
pub static LEASE_GRANTS: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_lease_grants_total",
        "Leases granted to a new holder"
    ))
});

/// Leases that ran out.
pub static LEASE_EXPIRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_lease_expiries_total",
        "Leases that expired"
    ))
});

/// Sessions this replica took ownership of (several replicas).
pub static SESSIONS_TAKEN: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_sessions_taken_total",
        "Sessions this core replica took ownership of"
    ))
});

/// Sessions this replica gave up to another (handoff, rebalance, drain).
pub static SESSIONS_RELEASED: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_sessions_released_total",
        "Sessions this core replica released to another"
    ))
});

/// Times this replica's ownership lease lapsed (paused or cut off).
pub static OWNERSHIP_LAPSES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_ownership_lapses_total",
        "Times this core replica's ownership lease lapsed and every session it owned was given up"
    ))
});

/// Session batches whose store write returned after this replica's
/// ownership lease had lapsed (several replicas only): the write may have
/// landed after another replica took the session over (RELIABILITY.md,
/// "Several core replicas").
pub static OWNERSHIP_LATE_WRITES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_ownership_late_writes_total",
        "Session batches whose store write finished after this replica's ownership lease lapsed"
    ))
});

/// Connections or reconnect grace periods that ran out.
pub static PRESENCE_EXPIRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_presence_expiries_total",
        "Connections whose TTL ran out and participants whose reconnect grace ran out"
    ))
});

/// User actors running.
pub static ACTIVE_USERS: LazyLock<IntGauge> = LazyLock::new(|| {
    registered(register_int_gauge!(
        "meno_core_active_users",
        "User actors running on this core"
    ))
});

/// WebRTC signals relayed, by kind (offer, answer, rollback, candidate, end).
pub static SIGNALS_RELAYED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(register_int_counter_vec!(
        "meno_core_signals_relayed_total",
        "WebRTC signals relayed to a user's bridges, by kind",
        &["kind"]
    ))
});

/// Offers refused because the target was in another call.
pub static CALLS_REJECTED: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_calls_rejected_total",
        "Offers refused because the target was busy in another call"
    ))
});

/// Bridge user streams ended because they fell behind.
pub static USER_STREAMS_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_user_streams_dropped_total",
        "Bridge user-event streams ended because their buffer overflowed"
    ))
});

/// Connection registry rows pruned by directed delivery (found gone).
pub static REGISTRY_PRUNED: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_registry_pruned_total",
        "Connection registry rows pruned because directed delivery found them gone"
    ))
});

/// Directed messages handed to user actors (SendToConnection, SendToUser,
/// backend replies).
pub static DIRECT_MESSAGES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_direct_messages_total",
        "Directed messages handed to user actors for delivery"
    ))
});

/// Work items refused by `Submit` because no backend could take them.
pub static BACKEND_WORK_REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_backend_work_refused_total",
        "Submitted work refused: no backend of the kind attached, or every buffer full"
    ))
});

pub use meno_common::metrics::{render, serve};
