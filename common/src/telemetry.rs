//! Logging, traces and process signals, shared by both binaries.
//!
//! Logs go to stderr through `tracing-subscriber`. Traces are exported over
//! OTLP only when an endpoint is configured ([`traces`]); without one no
//! OpenTelemetry layer is installed at all. W3C trace context crosses the
//! gRPC hop in request metadata ([`propagation`]).

use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::{filter_fn, FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub mod propagation;
pub mod traces;

pub use traces::{TraceArgs, TraceSetupError, Traces};

/// Installs the global `tracing` subscriber (`RUST_LOG`, default `info`),
/// logs only.
pub fn init(json: bool) {
    install(json, None);
}

/// Installs the global `tracing` subscriber and, when `args` name an OTLP
/// endpoint, an exporter of this process's spans as `default_service_name`
/// (unless `OTEL_SERVICE_NAME` says otherwise). Shut the returned [`Traces`]
/// down on exit so the last spans are sent.
pub fn init_with_traces(
    json: bool,
    args: &TraceArgs,
    default_service_name: &str,
) -> Result<Traces, TraceSetupError> {
    let traces = Traces::start(args, default_service_name)?;
    install(json, traces.provider());
    if traces.enabled() {
        tracing::info!(
            endpoint = args.otlp_endpoint.as_deref().unwrap_or_default(),
            protocol = ?args.otlp_protocol,
            "exporting traces over OTLP"
        );
    }
    Ok(traces)
}

fn install(json: bool, provider: Option<&opentelemetry_sdk::trace::SdkTracerProvider>) {
    if subscriber(json, provider).try_init().is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}

fn subscriber(
    json: bool,
    provider: Option<&opentelemetry_sdk::trace::SdkTracerProvider>,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    // Spans exist for the trace exporter alone: kept out of the logs, with
    // no exporter no layer wants them, and `info_span!` costs next to nothing.
    //
    // The span filter names its level bound (any): without one the combined
    // filter has no max level, and `log` records (tungstenite, hyper) at
    // every level, trace included, would go through the `log` bridge and be
    // filtered one by one, several per frame written.
    let log_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .and(filter_fn(|metadata| !metadata.is_span()).with_max_level_hint(LevelFilter::TRACE));
    // Logs go to stderr; a closed stderr must not panic the logging task.
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json {
        logs.json().with_filter(log_filter).boxed()
    } else {
        logs.with_filter(log_filter).boxed()
    };
    let logging = tracing_subscriber::registry().with(logs);
    // No `Option` layer for "no exporter": an absent layer still counts as
    // one that wants every span.
    let Some(provider) = provider else {
        return Box::new(logging);
    };
    use opentelemetry::trace::TracerProvider as _;
    // Spans reach the exporter whatever RUST_LOG says: it filters logs only.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("meno-realtime"))
        .with_filter(
            Targets::new()
                .with_target("meno_common", tracing::Level::INFO)
                .with_target("meno_core", tracing::Level::INFO)
                .with_target("meno_bridge", tracing::Level::INFO),
        );
    Box::new(logging.with(spans))
}

/// Cancels `token` on the first SIGTERM or SIGINT.
pub async fn cancel_on_signal(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    // Cancel before logging: a log write that fails (a closed pipe) must not
    // keep the process from draining.
    let signal = tokio::select! {
        _ = terminate => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    };
    token.cancel();
    tracing::info!(signal, "draining");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a callsite is enabled is cached across threads from every
    /// live subscriber: two tests installing theirs at once would see each
    /// other's answer. They take turns.
    static ONE_SUBSCRIBER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn without_an_exporter_spans_are_not_even_recorded() {
        let _turn = ONE_SUBSCRIBER_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tracing::subscriber::with_default(subscriber(false, None), || {
            tracing::callsite::rebuild_interest_cache();
            assert!(tracing::info_span!("untraced").is_disabled());
        });
    }

    /// The `log` bridge takes its level from this hint: with none, every
    /// `log::trace!` of a dependency would be dispatched and then dropped.
    #[test]
    fn the_log_filter_names_its_max_level() {
        let hint = tracing::Subscriber::max_level_hint(&*subscriber(false, None));
        assert!(
            hint.is_some(),
            "no max level: log records of every level pass"
        );
        if std::env::var_os("RUST_LOG").is_none() {
            assert_eq!(hint, Some(LevelFilter::INFO));
        }
    }

    #[test]
    fn with_an_exporter_spans_are_recorded_whatever_the_log_level() {
        let _turn = ONE_SUBSCRIBER_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        tracing::subscriber::with_default(subscriber(false, Some(&provider)), || {
            tracing::callsite::rebuild_interest_cache();
            assert!(!tracing::info_span!("traced").is_disabled());
        });
    }
}
