//! `meno-core`: the core-service binary. Without a subcommand it serves
//! gRPC; `meno-core migrate` applies the CQL migrations and exits.

/// mimalloc, not the system allocator: measured side by side it cut the CPU
/// per delivery by 11-16 % in the fan-out and rooms benchmarks and raised
/// closed-loop chat by 14 % (memory store) to 35 % (fjall), where glibc's
/// malloc spent its time consolidating chunks (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use meno_core::clock::SystemClock;
use meno_core::config::{ConsistencyArg, CoreArgs, ScyllaArgs, StoreKind};
use meno_core::ownership::{Ownership, OwnershipConfig, Peers};
use meno_core::server::{open_store, Core, CoreOptions};
use meno_core::store::scylla::{connect_session, migrate, schema};
use meno_core::telemetry::TraceArgs;
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
    /// Serve Prometheus metrics at http://ADDR/metrics (off when absent).
    #[arg(long, env = "MENO_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// File holding the bearer token every gRPC caller must present.
    #[arg(long, env = "MENO_GRPC_TOKEN_FILE")]
    grpc_token_file: Option<std::path::PathBuf>,
    /// Serve gRPC without a token on a non-loopback address (development only).
    #[arg(long, env = "MENO_GRPC_ALLOW_UNAUTHENTICATED", default_value_t = false)]
    grpc_allow_unauthenticated: bool,
    /// PEM certificate chain: serve gRPC over TLS.
    #[arg(long, env = "MENO_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "MENO_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    core: CoreArgs,
    #[command(flatten)]
    replicas: ReplicaArgs,
    #[command(flatten)]
    traces: TraceArgs,
}

/// Several core replicas sharing sessions (ScyllaDB store only).
#[derive(Debug, clap::Args)]
struct ReplicaArgs {
    /// The core replicas' gRPC URLs, this one included (comma-separated):
    /// turns on sharing sessions among replicas.
    #[arg(
        long,
        env = "MENO_PEERS",
        value_delimiter = ',',
        conflicts_with = "peers_dns"
    )]
    peers: Vec<String>,
    /// A DNS name and gRPC port (`host:port`) whose records are the core
    /// replicas (a headless Service), re-resolved every second: turns on
    /// sharing sessions among replicas.
    #[arg(long, env = "MENO_PEERS_DNS")]
    peers_dns: Option<String>,
    /// This replica's stable id (the pod name); default: the host name.
    #[arg(long, env = "MENO_REPLICA_ID")]
    replica_id: Option<String>,
    /// How bridges and other replicas reach this replica's gRPC; default:
    /// `http://<--listen>`.
    #[arg(long, env = "MENO_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// How long a replica's ownership of its sessions lasts without renewal:
    /// a crashed replica's sessions move after this.
    #[arg(long, env = "MENO_OWNERSHIP_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    ownership_ttl: Duration,
}

impl ReplicaArgs {
    /// The ownership settings, or `None` for a single replica.
    fn config(&self, listen: SocketAddr) -> anyhow::Result<Option<OwnershipConfig>> {
        let peers = match (&self.peers_dns, self.peers.is_empty()) {
            (Some(dns), _) => {
                let (host, port) = dns.rsplit_once(':').ok_or_else(|| {
                    anyhow::anyhow!("invalid setting --peers-dns {dns:?}: expected host:port")
                })?;
                let port = port.parse().map_err(|_| {
                    anyhow::anyhow!("invalid setting --peers-dns {dns:?}: bad port")
                })?;
                Peers::Dns {
                    host: host.to_owned(),
                    port,
                }
            }
            (None, false) => Peers::Static(self.peers.clone()),
            (None, true) => return Ok(None),
        };
        if self.ownership_ttl < Duration::from_secs(1) {
            anyhow::bail!("invalid setting --ownership-ttl: must be at least 1s");
        }
        let replica_id = match &self.replica_id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => hostname()?,
        };
        let advertise_url = self
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        if let Peers::Static(urls) = &peers {
            if !urls.contains(&advertise_url) {
                anyhow::bail!(
                    "invalid setting --peers: it must list this replica's --advertise-url {advertise_url}"
                );
            }
        }
        Ok(Some(OwnershipConfig {
            replica_id,
            advertise_url,
            peers,
            ttl: self.ownership_ttl,
        }))
    }
}

fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .context("no --replica-id given and no host name to use")?;
    Ok(name.trim().to_owned())
}

impl Cli {
    /// gRPC protection from the flags. Unauthenticated gRPC is served only on
    /// loopback, unless explicitly allowed.
    fn core_options(&self) -> anyhow::Result<CoreOptions> {
        let grpc_token = self
            .grpc_token_file
            .as_deref()
            .map(meno_core::grpc_auth::read_token_file)
            .transpose()
            .map_err(|reason| anyhow::anyhow!("invalid setting --grpc-token-file: {reason}"))?;
        if grpc_token.is_none() && !self.listen.ip().is_loopback() {
            if self.grpc_allow_unauthenticated {
                tracing::warn!(listen = %self.listen, "gRPC is open to anyone who can reach it (--grpc-allow-unauthenticated)");
            } else {
                anyhow::bail!(
                    "refusing to serve unauthenticated gRPC on {}: give --grpc-token-file, \
                     listen on loopback, or pass --grpc-allow-unauthenticated for development",
                    self.listen
                );
            }
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let cert = std::fs::read(cert)
                    .with_context(|| format!("reading --tls-cert {}", cert.display()))?;
                let key = std::fs::read(key)
                    .with_context(|| format!("reading --tls-key {}", key.display()))?;
                Some(
                    tonic::transport::ServerTlsConfig::new()
                        .identity(tonic::transport::Identity::from_pem(cert, key)),
                )
            }
            _ => None,
        };
        Ok(CoreOptions {
            grpc_token,
            tls,
            ownership: None,
        })
    }
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
    let traces = meno_core::telemetry::init_with_traces(cli.log_json, &cli.traces, "meno-core")?;
    let served = serve(&cli).await;
    traces.shutdown().await;
    served
}

async fn serve(cli: &Cli) -> anyhow::Result<()> {
    let config = cli.core.session_config()?;
    let replicas = cli.replicas.config(cli.listen)?;
    if replicas.is_some() && cli.core.store != StoreKind::Scylla {
        anyhow::bail!(
            "invalid setting --peers/--peers-dns: several core replicas need --store scylla; \
             the {:?} store lives in one process, and two replicas writing their own copies \
             would split every session",
            cli.core.store
        );
    }
    if replicas.is_some()
        && matches!(
            cli.core.scylla.scylla_consistency,
            ConsistencyArg::One | ConsistencyArg::LocalOne
        )
    {
        anyhow::bail!(
            "invalid setting --scylla-consistency {:?} with --peers/--peers-dns: a replica that \
             takes a session over must read every acknowledged message (a quorum), or it would \
             void acknowledged chat as unstored",
            cli.core.scylla.scylla_consistency
        );
    }
    let store = open_store(&cli.core).await.context("opening the store")?;
    let mut options = cli.core_options()?;
    if let Some(replicas) = replicas {
        let ownership_store = store
            .ownership()
            .context("the store cannot hold ownership of sessions")?;
        let ownership = Ownership::start(ownership_store, Arc::new(SystemClock), replicas)
            .await
            .context("registering this core replica (is migration 0005 applied?)")?;
        options.ownership = Some(ownership);
    }
    let core = Core::with_options(store, Arc::new(SystemClock), config, options).await;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding --listen {}", cli.listen))?;
    tracing::info!(listen = %cli.listen, store = ?cli.core.store, "meno-core serving gRPC");
    let stop = CancellationToken::new();
    tokio::spawn(meno_core::telemetry::cancel_on_signal(stop.clone()));
    if let Some(addr) = cli.metrics_listen {
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(err) = meno_core::metrics::serve(addr, stop).await {
                tracing::error!(error = %err, %addr, "metrics server failed");
            }
        });
        tracing::info!(%addr, "metrics at /metrics");
    }
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
