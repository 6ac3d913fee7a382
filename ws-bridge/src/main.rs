//! `meno-bridge`: the WebSocket edge. In a monolithic build (the default
//! feature `monolithic`) and without `--core`, the whole system in one
//! process; the edge-only build (`--no-default-features`) needs `--core`.

/// mimalloc, not the system allocator: measured side by side it cut the CPU
/// per delivery by 11-16 % in the fan-out and rooms benchmarks and raised
/// closed-loop chat by 14 % (memory store) to 35 % (fjall), where glibc's
/// malloc spent its time consolidating chunks (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::Parser;
use meno_bridge::config::{BridgeArgs, BridgeConfig};
use meno_bridge::core_client::CoreClient;
use meno_bridge::server::Bridge;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "monolithic")]
mod monolithic;

#[cfg(feature = "monolithic")]
const ABOUT: &str = "meno-realtime ws-bridge: the WebSocket edge. \
Without --core it hosts the core in the same process (monolithic mode).";
#[cfg(not(feature = "monolithic"))]
const ABOUT: &str =
    "meno-realtime ws-bridge: the WebSocket edge (edge-only build: --core is required).";

/// `meno-bridge` command line: the edge's flags, plus the in-process core's
/// in a monolithic build.
#[derive(Debug, Parser)]
#[command(name = "meno-bridge", version, about = ABOUT)]
struct Cli {
    #[command(flatten)]
    bridge: BridgeArgs,
    #[cfg(feature = "monolithic")]
    #[command(
        flatten,
        next_help_heading = "In-process core (monolithic mode, without --core)"
    )]
    core: meno_core::config::CoreArgs,
    /// Also serve the in-process core's gRPC API here (monolithic mode), so
    /// backends (assistant, voice) and grpcurl can reach it. Loopback only:
    /// in monolithic mode the API takes no bearer token.
    #[cfg(feature = "monolithic")]
    #[arg(long, env = "MENO_GRPC_LISTEN")]
    grpc_listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let traces = meno_common::telemetry::init_with_traces(
        cli.bridge.log_json,
        &cli.bridge.traces,
        "meno-bridge",
    )?;
    let served = serve(&cli).await;
    traces.shutdown().await;
    served
}

async fn serve(cli: &Cli) -> anyhow::Result<()> {
    let args = &cli.bridge;
    let config = args.bridge_config()?;
    if config.auth.is_none() {
        tracing::warn!(
            "AUTHENTICATION IS OFF (--auth none): anyone who reaches this port can join any \
             session under any identity; use --auth jwt outside local development"
        );
    }
    #[cfg(feature = "monolithic")]
    let (core_client, in_process_core) = match &args.core {
        Some(url) => (remote_core(args, &config, url)?, None),
        None => {
            let (client, core) = monolithic::start(&cli.core, config.core_timeout).await?;
            (client, Some(core))
        }
    };
    let stop = CancellationToken::new();
    // The in-process core's gRPC server stops with the core, after the edge
    // has drained, so sockets still closing can call it.
    let grpc_stop = CancellationToken::new();
    #[cfg(feature = "monolithic")]
    if let Some(addr) = cli.grpc_listen {
        let Some(core) = &in_process_core else {
            anyhow::bail!(
                "--grpc-listen serves the in-process core: it needs monolithic mode (no --core)"
            );
        };
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "invalid setting --grpc-listen {addr}: monolithic mode serves gRPC without a bearer \
                 token, so only on loopback; run meno-core with --grpc-token-file to serve it further"
            );
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --grpc-listen {addr}"))?;
        tracing::info!(grpc_listen = %addr, "serving the in-process core's gRPC API");
        core.serve_grpc(listener, grpc_stop.clone());
    }
    #[cfg(not(feature = "monolithic"))]
    let core_client = match &args.core {
        Some(url) => remote_core(args, &config, url)?,
        None => anyhow::bail!(
            "missing --core URL: this meno-bridge is an edge-only build (built without the \
             `monolithic` feature) and cannot host the core itself"
        ),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    tracing::info!(
        listen = %args.listen,
        ws_path = %config.ws_path,
        "meno-bridge serving: demo page at http://{}/",
        args.listen
    );
    tokio::spawn(meno_common::telemetry::cancel_on_signal(stop.clone()));
    let mut bridge = Bridge::new(core_client, config);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        bridge = bridge.with_tls(cert, key)?;
        tracing::info!("serving https and wss");
    }
    bridge.serve(listener, stop, args.drain_timeout).await;
    grpc_stop.cancel();
    #[cfg(feature = "monolithic")]
    if let Some(core) = in_process_core {
        core.stop(args.drain_timeout).await;
    }
    tracing::info!("meno-bridge stopped");
    Ok(())
}

/// The client of a core process at `url`, with the token and CA the flags name.
fn remote_core(args: &BridgeArgs, config: &BridgeConfig, url: &str) -> anyhow::Result<CoreClient> {
    let token = args
        .grpc_token_file
        .as_deref()
        .map(meno_common::grpc_auth::read_token_file)
        .transpose()
        .map_err(|reason| anyhow::anyhow!("invalid setting --grpc-token-file: {reason}"))?;
    let token = meno_common::grpc_auth::BearerToken::new(token.as_deref())?;
    let ca = args
        .core_tls_ca
        .as_deref()
        .map(|path| {
            std::fs::read(path).with_context(|| format!("reading --core-tls-ca {}", path.display()))
        })
        .transpose()?;
    let client = CoreClient::connect_lazy_with(url, config.core_timeout, token, ca)
        .with_context(|| format!("invalid --core {url}"))?;
    tracing::info!(core = %url, "edge mode: using a remote core");
    Ok(client)
}
