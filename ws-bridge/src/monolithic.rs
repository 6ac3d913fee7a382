//! Monolithic composition: a core-service in this process, called through the
//! same tonic client as a remote one, without a socket in between.
//!
//! This file (with `main.rs`) is the only place in the bridge that names
//! `meno_core`; the bridge library never does, so the edge-only build links
//! no store engine.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meno_bridge::core_client::CoreClient;
use meno_core::clock::SystemClock;
use meno_core::config::CoreArgs;
use meno_core::server::{open_store, Core};
use tokio_util::sync::CancellationToken;

/// The core hosted by this process.
pub(crate) struct InProcessCore(Core);

/// Opens the store `args` name and starts a core on it; calls through the
/// returned client time out after `timeout`.
pub(crate) async fn start(
    args: &CoreArgs,
    timeout: Duration,
) -> anyhow::Result<(CoreClient, InProcessCore)> {
    let session_config = args.session_config()?;
    let store = open_store(args).await.context("opening the store")?;
    let core = Core::new(store, Arc::new(SystemClock), session_config).await;
    tracing::info!(
        store = ?args.store,
        data_dir = %args.data_dir.display(),
        "monolithic mode: core in process"
    );
    let client = CoreClient::in_process(core.in_process_routes(), timeout);
    Ok((client, InProcessCore(core)))
}

impl InProcessCore {
    /// Serves the core's gRPC API on `listener` too, until `stop`.
    pub(crate) fn serve_grpc(&self, listener: tokio::net::TcpListener, stop: CancellationToken) {
        let core = self.0.clone();
        tokio::spawn(async move {
            if let Err(err) = core.serve(listener, stop).await {
                tracing::error!(error = %err, "the in-process core's gRPC server failed");
            }
        });
    }

    /// Drains the core once the edge has: its actors flush what they write
    /// behind and stop, within `deadline`.
    pub(crate) async fn stop(self, deadline: Duration) {
        self.0.begin_drain().await;
        if !self.0.drained(deadline).await {
            tracing::warn!("drain deadline passed with session actors still running");
        }
    }
}
