//! The HTTP surface of `hbi worker`: `/health`, `/health/live`, `/health/ready` and
//! `/metrics`, for the orchestrator's probes and Prometheus. It lives with the API's surface,
//! not in the worker crate, because it shares its middleware (request metrics, the `Allow`
//! header of a 405, FastAPI-shaped errors) and the readiness answer; the worker crate has no
//! HTTP in it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hbi_shared::Backends;
use poem::listener::TcpListener;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Route, Server, handler};
use tokio_util::sync::CancellationToken;

use crate::routes::system::readiness;
use crate::{error, observe};

/// What the probes read.
#[derive(Clone)]
struct ProbeState {
    backends: Backends,
    started: Instant,
}

#[handler]
async fn metrics(Data(state): Data<&ProbeState>) -> poem::Response {
    match state.backends.render_metrics().await {
        Ok(text) => text
            .with_content_type(hbi_shared::metrics::CONTENT_TYPE)
            .into_response(),
        Err(err) => (
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "detail": error::internal(&err) })),
        )
            .into_response(),
    }
}

#[handler]
fn live(Data(state): Data<&ProbeState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    }))
}

#[handler]
async fn ready(Data(state): Data<&ProbeState>) -> poem::Response {
    let readiness = readiness(&state.backends, state.started).await;
    let status = if readiness.status == "ok" {
        poem::http::StatusCode::OK
    } else {
        poem::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": readiness.status,
        "checks": readiness.checks.iter().map(|(name, check)| (name.clone(), serde_json::json!({
            "status": check.status, "kind": check.kind, "error": check.error,
        }))).collect::<serde_json::Map<_, _>>(),
        "version": readiness.version,
        "uptime_seconds": readiness.uptime_seconds,
    });
    (status, Json(body)).into_response()
}

/// Serves the probes on `addr` until `shutdown`.
pub async fn serve(addr: SocketAddr, backends: Backends, shutdown: CancellationToken) -> anyhow::Result<()> {
    // These routes are their own templates, each answering GET (and HEAD) only.
    let routes = ["/health", "/health/live", "/health/ready", "/metrics"];
    let templates: Arc<HashMap<String, String>> = Arc::new(
        routes
            .iter()
            .map(|route| (route.to_string(), route.to_string()))
            .collect(),
    );
    let allow: Arc<HashMap<String, String>> = Arc::new(
        routes
            .iter()
            .map(|route| (route.to_string(), "GET, HEAD".to_owned()))
            .collect(),
    );
    let state = ProbeState {
        backends,
        started: Instant::now(),
    };
    let app = Route::new()
        .at("/health", poem::get(live))
        .at("/health/live", poem::get(live))
        .at("/health/ready", poem::get(ready))
        .at("/metrics", poem::get(metrics))
        .data(state)
        .around(move |endpoint, request| observe(endpoint, request, templates.clone(), allow.clone()));
    Server::new(TcpListener::bind(addr))
        .run_with_graceful_shutdown(
            app,
            async move { shutdown.cancelled().await },
            Some(Duration::from_secs(5)),
        )
        .await?;
    Ok(())
}
