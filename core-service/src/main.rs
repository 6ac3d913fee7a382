//! `meno-core`: the core-service binary. Without a subcommand it serves
//! gRPC; `meno-core migrate` applies the CQL migrations and exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use meno_core::clock::SystemClock;
use meno_core::config::{CoreArgs, ScyllaArgs};
use meno_core::server::{open_store, Core};
use meno_core::store::scylla::{connect_session, migrate, schema};
use tokio_util::sync::CancellationToken;

/// meno-realtime core-service: owns session state and serves it over gRPC.
#[derive(Debug, Parser)]
#[command(
    name = "meno-core",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// gRPC listen address.
    #[arg(long, env = "MENO_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Longest wait for session actors to finish on SIGTERM/SIGINT.
    #[arg(long, env = "MENO_DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Log as JSON lines.
    #[arg(long, env = "MENO_LOG_JSON", default_value_t = false)]
    log_json: bool,
    #[command(flatten)]
    core: CoreArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Apply pending CQL migrations to the ScyllaDB/Cassandra keyspace
    /// (creating it with --create-keyspace), then exit. Safe to run twice
    /// and from several processes at once.
    Migrate {
        /// Log as JSON lines.
        #[arg(long, env = "MENO_LOG_JSON", default_value_t = false)]
        log_json: bool,
        #[command(flatten)]
        scylla: ScyllaArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Migrate { log_json, scylla }) = &cli.command {
        meno_core::telemetry::init(*log_json);
        return run_migrate(scylla).await;
    }
    meno_core::telemetry::init(cli.log_json);
    let config = cli.core.session_config()?;
    let store = open_store(&cli.core).await.context("opening the store")?;
    let core = Core::new(store, Arc::new(SystemClock), config).await;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding --listen {}", cli.listen))?;
    tracing::info!(listen = %cli.listen, store = ?cli.core.store, "meno-core serving gRPC");
    let stop = CancellationToken::new();
    tokio::spawn(meno_core::telemetry::cancel_on_signal(stop.clone()));
    core.serve(listener, stop).await?;
    if !core.drained(cli.drain_timeout).await {
        tracing::warn!("drain deadline passed with session actors still running");
    }
    tracing::info!("meno-core stopped");
    Ok(())
}

async fn run_migrate(args: &ScyllaArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let session = connect_session(&config)
        .await
        .with_context(|| format!("connecting to {}", config.nodes.join(",")))?;
    let report = migrate(&session, &config, &schema::bundled()).await?;
    if report.created_keyspace {
        println!("created keyspace {}", config.keyspace);
    }
    for label in &report.already_applied {
        println!("already applied: {label}");
    }
    for label in &report.applied {
        println!("applied: {label}");
    }
    if report.applied.is_empty() {
        println!("schema of keyspace {} is up to date", config.keyspace);
    }
    Ok(())
}
