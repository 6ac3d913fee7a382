//! `meno-bridge`: the WebSocket edge; without `--core`, the whole system in
//! one process (monolithic mode).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use meno_bridge::config::BridgeArgs;
use meno_bridge::core_client::CoreClient;
use meno_bridge::server::Bridge;
use meno_core::clock::SystemClock;
use meno_core::server::{open_store, Core};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = BridgeArgs::parse();
    let traces =
        meno_core::telemetry::init_with_traces(args.log_json, &args.traces, "meno-bridge")?;
    let served = serve(&args).await;
    traces.shutdown().await;
    served
}

async fn serve(args: &BridgeArgs) -> anyhow::Result<()> {
    let config = args.bridge_config()?;
    if config.auth.is_none() {
        tracing::warn!(
            "AUTHENTICATION IS OFF (--auth none): anyone who reaches this port can join any \
             session under any identity; use --auth jwt outside local development"
        );
    }
    let (core_client, in_process_core) = match &args.core {
        Some(url) => {
            let token = args
                .grpc_token_file
                .as_deref()
                .map(meno_core::grpc_auth::read_token_file)
                .transpose()
                .map_err(|reason| anyhow::anyhow!("invalid setting --grpc-token-file: {reason}"))?;
            let token = meno_core::grpc_auth::BearerToken::new(token.as_deref())?;
            let ca = args
                .core_tls_ca
                .as_deref()
                .map(|path| {
                    std::fs::read(path)
                        .with_context(|| format!("reading --core-tls-ca {}", path.display()))
                })
                .transpose()?;
            let client = CoreClient::connect_lazy_with(url, config.core_timeout, token, ca)
                .with_context(|| format!("invalid --core {url}"))?;
            tracing::info!(core = %url, "edge mode: using a remote core");
            (client, None)
        }
        None => {
            let session_config = args.core_args.session_config()?;
            let store = open_store(&args.core_args)
                .await
                .context("opening the store")?;
            let core = Core::new(store, Arc::new(SystemClock), session_config).await;
            tracing::info!(
                store = ?args.core_args.store,
                data_dir = %args.core_args.data_dir.display(),
                "monolithic mode: core in process"
            );
            let client = CoreClient::in_process(core.in_process_routes(), config.core_timeout);
            (client, Some(core))
        }
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
    let stop = CancellationToken::new();
    tokio::spawn(meno_core::telemetry::cancel_on_signal(stop.clone()));
    let mut bridge = Bridge::new(core_client, config);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        bridge = bridge.with_tls(cert, key)?;
        tracing::info!("serving https and wss");
    }
    bridge.serve(listener, stop, args.drain_timeout).await;
    if let Some(core) = in_process_core {
        core.begin_drain().await;
        if !core.drained(args.drain_timeout).await {
            tracing::warn!("drain deadline passed with session actors still running");
        }
    }
    tracing::info!("meno-bridge stopped");
    Ok(())
}
