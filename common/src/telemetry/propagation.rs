//! W3C trace context across the gRPC hop: the caller injects its current
//! span's context into request metadata (`traceparent`, `tracestate`), the
//! core extracts it and parents its request span on it.
//!
//! Without trace export the global propagator is OpenTelemetry's no-op one,
//! so both sides cost a lookup and nothing is written or read.

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Adds the current span's trace context to outgoing gRPC metadata.
pub fn inject_current(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

/// Records a client's own trace id (seed 004's `traceId`) on `span` as the
/// attribute `client_trace_id` (the span must declare that field) and, when
/// it is a UUID or 32 hex digits, links the span to the trace of that id, so
/// a trace backend finds the server's work from the client's id. The link's
/// span id is taken from the id's last 8 bytes: the client names a trace, not
/// a span.
pub fn link_client_trace(span: &tracing::Span, client_trace_id: &str) {
    if span.is_none() {
        return;
    }
    span.record("client_trace_id", client_trace_id);
    let hex: String = client_trace_id.chars().filter(|c| *c != '-').collect();
    let Ok(bits) = u128::from_str_radix(&hex, 16) else {
        return;
    };
    if hex.len() != 32 || bits == 0 {
        return;
    }
    let bytes = bits.to_be_bytes();
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&bytes[8..]);
    if span_id == [0; 8] {
        span_id[7] = 1;
    }
    let linked = opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(bytes),
        opentelemetry::trace::SpanId::from_bytes(span_id),
        opentelemetry::trace::TraceFlags::SAMPLED,
        true,
        opentelemetry::trace::TraceState::default(),
    );
    span.add_link(linked);
}

/// The span of one gRPC request the core serves, a child of the caller's
/// span when the request carries a trace context. Health and reflection
/// calls get none: probes are not worth a trace each.
pub fn grpc_server_span(request: &http::Request<()>) -> tracing::Span {
    let span = in_process_server_span(request.uri().path());
    if !span.is_none() && request.headers().contains_key("traceparent") {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        // Fails only when no exporter is installed: then there is no trace.
        let _ = span.set_parent(parent);
    }
    span
}

/// The span of a gRPC request to `path` served in this process (a
/// monolithic bridge calling its core): a child of the caller's current span,
/// as no context crosses a wire. Health and reflection get none.
pub fn in_process_server_span(path: &str) -> tracing::Span {
    if path.starts_with("/grpc.") {
        return tracing::Span::none();
    }
    let name = path.trim_start_matches('/');
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    tracing::info_span!(
        "grpc.server",
        otel.name = name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
    )
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes());
        let value = tonic::metadata::MetadataValue::try_from(value);
        if let (Ok(key), Ok(value)) = (key, value) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
