//! OTLP export of spans, configured by OpenTelemetry's standard variables.
//!
//! Off unless an endpoint is given: then there is no exporter, no span
//! processor and no OpenTelemetry layer. The SDK itself reads the remaining
//! standard variables (`OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, ...).

use std::time::Duration;

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// How long the exit waits for the last spans to be sent.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Trace export settings (both binaries).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TraceArgs {
    /// OTLP collector endpoint, e.g. http://otel-collector:4317; traces are
    /// exported there. Off when absent or empty.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        value_enum,
        default_value = "grpc"
    )]
    pub otlp_protocol: OtlpProtocol,
    /// `service.name` of exported spans (default: the binary's name).
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
}

/// The OTLP transports this build speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP/gRPC, usually port 4317.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies, usually port 4318.
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// Why trace export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceSetupError {
    /// The exporter refused the settings (a malformed endpoint, say).
    #[error("invalid setting OTEL_EXPORTER_OTLP_ENDPOINT/--otlp-endpoint")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The HTTP client for OTLP/HTTP could not be built.
    #[error("cannot build the OTLP/HTTP client")]
    HttpClient(#[from] reqwest::Error),
    /// Export needs the Tokio runtime it is set up from.
    #[error("trace export must be set up inside the Tokio runtime")]
    NoRuntime,
}

/// The trace exporter of this process, if any.
#[derive(Debug, Default)]
pub struct Traces {
    provider: Option<SdkTracerProvider>,
}

impl Traces {
    /// Starts exporting when `args` name an endpoint; otherwise does nothing.
    pub fn start(args: &TraceArgs, default_service_name: &str) -> Result<Self, TraceSetupError> {
        let Some(endpoint) = args
            .otlp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|endpoint| !endpoint.is_empty())
        else {
            return Ok(Self::default());
        };
        let exporter = exporter(endpoint, args.otlp_protocol)?;
        let service_name = args
            .otel_service_name
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| default_service_name.to_owned());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service_name).build())
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        Ok(Self {
            provider: Some(provider),
        })
    }

    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    pub(super) fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Sends the spans still queued and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // Shutdown blocks until the export finishes, and the export needs
        // this runtime's other threads: block one of the blocking pool's.
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT))
                .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "trace export did not shut down cleanly"),
            Err(err) => tracing::warn!(error = %err, "trace export shutdown failed"),
        }
    }
}

fn exporter(
    endpoint: &str,
    protocol: OtlpProtocol,
) -> Result<opentelemetry_otlp::SpanExporter, TraceSetupError> {
    let exporter = match protocol {
        OtlpProtocol::Grpc => {
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint);
            if endpoint.starts_with("https://") {
                // A collector behind TLS is trusted through the system's CAs.
                builder = builder
                    .with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
            }
            builder.build()?
        }
        OtlpProtocol::HttpProtobuf => {
            // The generic endpoint is the collector's base URL (OTLP spec).
            let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url)
                .with_http_client(OnRuntime::new()?)
                .build()?
        }
    };
    Ok(exporter)
}

/// An async HTTP client usable from the span processor's own thread: each
/// request runs on the Tokio runtime the exporter was set up from.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl OnRuntime {
    fn new() -> Result<Self, TraceSetupError> {
        // reqwest is built without a default TLS provider (https collectors).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TraceSetupError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { client, runtime })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(
                async move { opentelemetry_http::HttpClient::send_bytes(&client, request).await },
            )
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_endpoint_means_no_exporter() {
        for endpoint in [None, Some(String::new()), Some("  ".to_owned())] {
            let args = TraceArgs {
                otlp_endpoint: endpoint,
                ..TraceArgs::default()
            };
            assert!(!Traces::start(&args, "meno-core").unwrap().enabled());
        }
    }

    #[tokio::test]
    async fn a_malformed_endpoint_is_refused_at_start_up() {
        let args = TraceArgs {
            otlp_endpoint: Some("not a url".to_owned()),
            ..TraceArgs::default()
        };
        let err = Traces::start(&args, "meno-core").unwrap_err();
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "{err}"
        );
    }
}
