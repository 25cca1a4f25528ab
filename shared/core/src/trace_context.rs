//! The W3C trace context (`traceparent`, `tracestate`) that links work done elsewhere to the
//! trace that asked for it: an HTTP caller's trace continues into the API's request span, and
//! the uploading request's trace continues into the worker's job span (the context is stored
//! on the job row, see `JobStore::create_ingest_job`).
//!
//! Everything here is a no-op while no OpenTelemetry layer is installed (trace export off):
//! [`capture`] gives `None` and the spans stay as they are.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The current span's trace context as a JSON object of W3C headers, or `None` when the span
/// is not recorded by OpenTelemetry.
pub fn capture() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut headers: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut headers);
    serde_json::to_string(&headers).ok()
}

/// Makes `span` continue the trace stored by [`capture`]. Call it before `span` is first
/// entered: OpenTelemetry fixes a span's parent when the span starts.
pub fn continue_stored(span: &tracing::Span, stored: &str) {
    match serde_json::from_str::<HashMap<String, String>>(stored) {
        Ok(headers) => set_remote_parent(span, &headers),
        Err(err) => tracing::warn!(error = %err, "unreadable stored trace context; the span starts a trace of its own"),
    }
}

/// Makes `span` a child of the remote span that `headers` name (`traceparent`, `tracestate`);
/// without a valid `traceparent` the span keeps its parent. Call it before `span` is entered.
pub fn set_remote_parent(span: &tracing::Span, headers: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(headers);
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer records spans: nothing to link then.
        let _ = span.set_parent(parent);
    }
}

/// The trace id of `span` (32 hex digits) when OpenTelemetry records it, for log lines.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_opentelemetry_layer_nothing_is_captured_and_nothing_breaks() {
        let span = tracing::info_span!("job");
        assert_eq!(span.in_scope(capture), None);
        continue_stored(
            &span,
            r#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
        );
        continue_stored(&span, "not json");
        assert_eq!(trace_id(&span), None);
    }

    #[test]
    fn a_stored_context_makes_a_later_span_continue_the_same_trace() {
        use tracing_subscriber::layer::SubscriberExt;

        // No exporter: the provider still gives every span a valid, sampled context.
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("request");
            let stored = request.in_scope(capture).expect("a recorded span has a context");
            assert!(stored.contains("traceparent"), "{stored}");
            let request_trace = trace_id(&request).expect("request trace id");

            // Another place, later: a root span of its own until given the stored context.
            let job = tracing::info_span!(parent: None, "job");
            continue_stored(&job, &stored);
            assert_eq!(trace_id(&job), Some(request_trace.clone()));
            let unrelated = tracing::info_span!(parent: None, "unrelated");
            assert!(trace_id(&unrelated).is_some_and(|id| id != request_trace));
        });
    }
}
