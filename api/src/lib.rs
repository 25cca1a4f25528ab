//! HBI's HTTP API (poem + poem-openapi): routes, OpenAPI document, Swagger UI and ReDoc,
//! all served from this binary (no CDN), and the `Application` that binds them to a port.

pub mod access;
pub mod error;
pub mod mcp;
pub mod openapi;
pub mod portal;
pub mod routes;
pub mod telemetry;
pub mod worker_probes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hbi_shared::{Backends, Library, Settings};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, IntoResponse, PathPattern, Route, Server};
use poem_openapi::OpenApiService;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use routes::books::BooksApi;
use routes::config::ConfigApi;
use routes::jobs::{DlqApi, JobsApi};
use routes::keys::KeysApi;
use routes::libraries::LibrariesApi;
use routes::query::QueryApi;
use routes::search::SearchApi;
use routes::system::SystemApi;
use routes::webhooks::WebhooksApi;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The use cases: what every handler calls.
    pub library: Library,
    pub backends: Backends,
    pub settings: Arc<Settings>,
    pub started: Instant,
    /// API keys, scopes and rate limits of the HTTP surface.
    pub access: Arc<access::AccessControl>,
    /// Cancelled when the server stops: long-lived responses (event streams) end then.
    pub streams_end: CancellationToken,
}

impl AppState {
    pub fn new(backends: Backends, settings: Arc<Settings>) -> Self {
        let access = Arc::new(access::AccessControl::new(&settings, backends.api_keys.clone()));
        Self {
            library: backends.library(&settings),
            backends,
            settings,
            started: Instant::now(),
            access,
            streams_end: CancellationToken::new(),
        }
    }
}

/// Headroom over the upload limit for the multipart envelope.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// Largest body of every request but an upload: the JSON bodies hold a few short fields.
pub const MAX_JSON_BODY: u64 = 1024 * 1024;

type Apis = (
    SystemApi,
    BooksApi,
    SearchApi,
    QueryApi,
    JobsApi,
    DlqApi,
    ConfigApi,
    KeysApi,
    LibrariesApi,
    WebhooksApi,
);

pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            SystemApi,
            BooksApi,
            SearchApi,
            QueryApi,
            JobsApi,
            DlqApi,
            ConfigApi,
            KeysApi,
            LibrariesApi,
            WebhooksApi,
        ),
        "HBI: Hybrid Book Index",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Turns books into a searchable, navigable knowledge base: upload a PDF, follow its job, \
             then read its table of contents, back-of-book index and pages, search them, and ask \
             questions answered from the books with cited pages.\n\n\
             **Authentication.** Every operation but health, metrics and these documents needs an \
             API key, sent as `X-API-Key: <key>` or `Authorization: Bearer <key>` (here: the \
             Authorize button). Scopes: `read` (GET), `write` (new books, uploads, job cancel and \
             retry, questions) and `admin` (configuration, dead-letter queue, deletions, API keys, \
             webhooks); \
             admin implies write implies read. Missing or unknown key: 401; a key without the \
             scope: 403; too many requests: 429 with `Retry-After`.\n\n\
             **Libraries.** Every book belongs to one library (`default` unless named). A key \
             made with `libraries` reaches only those, each with its own scope; a book in a \
             library the key does not reach answers 404, as if it did not exist, and searches, \
             index terms and questions use only the books the key may read. An admin key over \
             every library is an operator: configuration, dead-letter queue, keys, webhooks, \
             the audit log and making or removing libraries are theirs.",
    )
}

/// The OpenAPI document served at /openapi.json and shown by /docs and /redoc:
/// poem-openapi's, with the security that `access::guard` enforces.
pub fn openapi_document() -> String {
    let generated = openapi_service().spec();
    let Ok(mut spec) = serde_json::from_str::<serde_json::Value>(&generated) else {
        return generated;
    };
    access::document_security(&mut spec);
    openapi::complete(&mut spec);
    serde_json::to_string_pretty(&spec).unwrap_or(generated)
}

/// The whole HTTP surface: the API (with /metrics), /openapi.json, /docs (Swagger UI) and
/// /redoc, every request counted in the HTTP metrics and traced. From the outside in:
/// request ids, spans and metrics, FastAPI-shaped errors, CORS, API keys and rate limits,
/// the body limit.
pub fn routes(state: AppState) -> impl poem::Endpoint {
    let limits = BodyLimits {
        upload: state.settings.max_upload_bytes().saturating_add(MULTIPART_OVERHEAD),
        upload_mb: state.settings.limits.max_upload_mb,
    };
    let templates = Arc::new(route_templates());
    let allow = Arc::new(route_methods());
    let access = state.access.clone();
    let cors = access::cors(&state.settings.server.cors_origins);
    let with_cors = cors.is_some();
    let mcp = mcp::http_endpoint(state.library.clone(), state.streams_end.clone());
    surface()
        .at("/mcp", mcp)
        .around(portal::send_home)
        .around(move |endpoint, request| reject_oversized(endpoint, request, limits))
        .data(state)
        .around(move |endpoint, request| access::guard(endpoint, request, access.clone()))
        .with_if(with_cors, cors.unwrap_or_default())
        .around(access::same_origin_is_not_cors)
        .around(move |endpoint, request| observe(endpoint, request, templates.clone(), allow.clone()))
}

/// The routes of [`routes`], without state or middleware.
fn surface() -> Route {
    let api = openapi_service();
    let generated = api.spec();
    let document = openapi_document();
    // Both pages embed the document: put in the one with the security schemes, so that
    // Swagger UI shows its Authorize button.
    let swagger = api.swagger_ui_html().replacen(&generated, &document, 1);
    let redoc = offline_html(&api.redoc_html().replacen(&generated, &document, 1));
    Route::new()
        .nest("/", api)
        .nest("/portal", portal::routes())
        .at(
            "/openapi.json",
            poem::get(poem::endpoint::make_sync(move |_| {
                document.clone().with_content_type("application/json; charset=utf-8")
            })),
        )
        .nest(
            "/docs",
            Route::new().at(
                "/",
                poem::get(poem::endpoint::make_sync(move |_| poem::web::Html(swagger.clone()))),
            ),
        )
        .at(
            "/redoc",
            poem::get(poem::endpoint::make_sync(move |_| poem::web::Html(redoc.clone()))),
        )
}

/// The OpenAPI path templates (`/books/{book_id}/toc`) keyed by the pattern poem routes
/// them with (`/books/:param0/toc`: poem-openapi numbers the parameters).
fn route_templates() -> HashMap<String, String> {
    let spec: serde_json::Value = serde_json::from_str(&openapi_service().spec()).unwrap_or_default();
    let Some(paths) = spec["paths"].as_object() else {
        return HashMap::new();
    };
    paths
        .keys()
        .map(|template| {
            let mut params = 0;
            let pattern: Vec<String> = template
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') && segment.ends_with('}') {
                        params += 1;
                        format!(":param{}", params - 1)
                    } else {
                        segment.to_owned()
                    }
                })
                .collect();
            (pattern.join("/"), template.clone())
        })
        .collect()
}

/// The `Allow` header of a 405 answer for each route template: the methods the document
/// lists for it.
fn route_methods() -> HashMap<String, String> {
    let spec: serde_json::Value = serde_json::from_str(&openapi_service().spec()).unwrap_or_default();
    openapi::allowed_methods(&spec)
}

/// The `route` label of an answered request: the template of the route it matched, never
/// the raw path (a book id in a label would make a series per book), or `unmatched`.
fn route_label(pattern: Option<&PathPattern>, path: &str, templates: &HashMap<String, String>) -> String {
    let Some(PathPattern(pattern)) = pattern else {
        return hbi_shared::metrics::UNMATCHED_ROUTE.to_owned();
    };
    // The API is nested at "/": a path it does not know reports that prefix alone.
    if pattern.is_empty() || (pattern.as_ref() == "/" && path != "/") {
        return hbi_shared::metrics::UNMATCHED_ROUTE.to_owned();
    }
    templates
        .get(pattern.as_ref())
        .cloned()
        .unwrap_or_else(|| pattern.to_string())
}

/// The route template a raw path will match (`/books/{book_id}/toc` for `/books/0193…/toc`),
/// known before routing so the request's span can be named after it. Literal segments win
/// over parameters, as in poem's router.
fn template_for_path<'a>(path: &str, templates: &'a HashMap<String, String>) -> Option<&'a str> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let segments: Vec<&str> = path.split('/').collect();
    templates
        .values()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literals = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literals += 1;
                } else {
                    return None;
                }
            }
            Some((literals, template.as_str()))
        })
        .max_by_key(|(literals, template)| (*literals, std::cmp::Reverse(*template)))
        .map(|(_, template)| template)
}

/// Outermost middleware: gives each request its id (`X-Request-Id`, echoed in the answer) and
/// its server span, answers errors in FastAPI's shape (a 405 with the `Allow` header of its
/// route, from `allow`), and records every request in `http_requests_total` and
/// `http_request_duration_seconds`.
pub(crate) async fn observe<E: poem::Endpoint>(
    endpoint: Arc<E>,
    request: poem::Request,
    templates: Arc<HashMap<String, String>>,
    allow: Arc<HashMap<String, String>>,
) -> poem::Result<poem::Response> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = telemetry::request_id(&request);
    let route = template_for_path(&path, &templates);
    // Probes and scrapes come every few seconds from machines: no trace and no info line each.
    let routine = matches!(route, Some("/metrics" | "/health" | "/health/live" | "/health/ready"));
    let span = if routine {
        tracing::Span::none()
    } else {
        telemetry::request_span(&request, route, &request_id)
    };
    // What the request changes is audited with its id.
    let (mut response, pattern) = hbi_shared::audit::REQUEST_ID
        .scope(request_id.clone(), async {
            match endpoint.call(request).await {
                Ok(output) => {
                    let response = output.into_response();
                    let pattern = response.data::<PathPattern>().cloned();
                    (response, pattern)
                }
                Err(err) => {
                    let pattern = err.data::<PathPattern>().cloned();
                    if err.is::<poem::error::CorsError>() {
                        hbi_shared::metrics::request_rejected(hbi_shared::metrics::Rejection::OriginNotAllowed);
                    }
                    (error::to_fastapi_shape(err).await, pattern)
                }
            }
        })
        .instrument(span.clone())
        .await;
    // Both ways to refuse a large body end here: the declared length, and the upload
    // handler counting a body without one.
    if response.status() == poem::http::StatusCode::PAYLOAD_TOO_LARGE {
        hbi_shared::metrics::request_rejected(hbi_shared::metrics::Rejection::BodyTooLarge);
    }
    if response.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = route.and_then(|route| allow.get(route))
        && let Ok(value) = poem::http::HeaderValue::from_str(methods)
    {
        response.headers_mut().insert(poem::http::header::ALLOW, value);
    }
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    telemetry::finish_request_span(&span, status);
    if routine {
        tracing::debug!(%path, status, duration_ms = seconds * 1000.0, "request finished");
    } else {
        span.in_scope(|| tracing::info!(status, duration_ms = seconds * 1000.0, "request finished"));
    }
    if let Ok(value) = poem::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(telemetry::REQUEST_ID_HEADER, value);
    }
    hbi_shared::metrics::record_http(
        method.as_str(),
        &route_label(pattern.as_ref(), &path, &templates),
        status,
        seconds,
    );
    Ok(response)
}

/// The UI pages must work offline: drops `<link>` tags that fetch from other hosts
/// (ReDoc's page asks Google Fonts for typefaces; the system fonts serve as well).
fn offline_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<link") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = &rest[start..start + len + 1];
        if !(tag.contains("href=\"http://") || tag.contains("href=\"https://") || tag.contains("href=\"//")) {
            out.push_str(tag);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// How large a request body may be.
#[derive(Clone, Copy)]
struct BodyLimits {
    /// An upload: `limits.max_upload_mb` and the multipart envelope.
    upload: u64,
    upload_mb: u64,
}

/// Refuses a body over its limit (the upload limit for `POST /books/{id}/upload`,
/// [`MAX_JSON_BODY`] for every other request) with 413: by its declared length before reading
/// any of it; without one (chunked), counted while it streams and cut off at the limit, so
/// that no more than the limit is read, spooled or parsed.
///
/// Also accepts the original HBI's trailing-slash paths (`/books/`): poem-openapi documents
/// `/books`, FastAPI clients call `/books/`, and both reach the same operation.
async fn reject_oversized<E: poem::Endpoint>(
    endpoint: Arc<E>,
    mut request: poem::Request,
    limits: BodyLimits,
) -> poem::Result<poem::Response> {
    trim_trailing_slash(&mut request);
    let (limit, what) = if access::is_upload(request.method(), request.uri().path()) {
        (limits.upload, format!("the upload limit of {} MB", limits.upload_mb))
    } else {
        (
            MAX_JSON_BODY,
            format!("the limit of {} KiB for JSON bodies", MAX_JSON_BODY / 1024),
        )
    };
    let too_large = || {
        (
            poem::http::StatusCode::PAYLOAD_TOO_LARGE,
            poem::web::Json(serde_json::json!({ "detail": format!("the request body is larger than {what}") })),
        )
            .into_response()
    };
    let declared = request
        .header(poem::http::header::CONTENT_LENGTH)
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => return Ok(too_large()),
        // hyper reads no more than the declared length.
        Some(_) => return endpoint.call(request).await.map(poem::IntoResponse::into_response),
        None => {}
    }
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = request.take_body();
    request.set_body(cut_off_at(body, limit, cut.clone()));
    let result = endpoint.call(request).await;
    // Whatever the parser made of the cut (a broken multipart or JSON body), it is a 413.
    if cut.load(std::sync::atomic::Ordering::Acquire) {
        return Ok(too_large());
    }
    result.map(poem::IntoResponse::into_response)
}

/// `body`, ending in an error as soon as more than `limit` bytes came (`cut` tells it
/// happened): whoever reads it stops there.
fn cut_off_at(body: poem::Body, limit: u64, cut: Arc<std::sync::atomic::AtomicBool>) -> poem::Body {
    use futures::StreamExt;
    let mut seen: u64 = 0;
    let stream = body.into_bytes_stream().map(move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > limit {
            cut.store(true, std::sync::atomic::Ordering::Release);
            return Err(std::io::Error::other("the request body is larger than the limit"));
        }
        Ok(chunk)
    });
    poem::Body::from_bytes_stream(stream)
}

fn trim_trailing_slash(request: &mut poem::Request) {
    let path = request.uri().path();
    let is_ui = path.starts_with("/docs") || path.starts_with("/redoc");
    if path.len() <= 1 || !path.ends_with('/') || is_ui {
        return;
    }
    let trimmed = path.trim_end_matches('/');
    let rewritten = match request.uri().query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed.to_owned(),
    };
    if let Ok(uri) = rewritten.parse::<poem::http::Uri>() {
        *request.uri_mut() = uri;
    }
}

/// A bound, not yet running HTTP server (zero2prod's `Application`): build it on port 0 in
/// tests and ask for the port.
pub struct Application {
    acceptor: poem::listener::TcpAcceptor,
    state: AppState,
}

impl Application {
    pub async fn bind(addr: SocketAddr, state: AppState) -> anyhow::Result<Self> {
        let acceptor = TcpListener::bind(addr).into_acceptor().await?;
        Ok(Self { acceptor, state })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.acceptor
            .local_addr()
            .into_iter()
            .find_map(|addr| addr.as_socket_addr().copied())
    }

    /// Serves until `shutdown`, then finishes open requests (bounded). The outbox relay runs
    /// alongside: whichever process accepts uploads also makes sure they reach the queue.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay = tokio::spawn(hbi_shared::jobs::relay::run(
            self.state.backends.jobs.clone(),
            self.state.backends.queue.clone(),
            Duration::from_millis(self.state.settings.queue.relay_interval_ms),
            self.state.settings.stranded_after(),
            shutdown.clone(),
        ));
        let webhooks = tokio::spawn(hbi_shared::webhooks::sender::run(
            self.state.backends.webhooks.clone(),
            self.state.backends.jobs.clone(),
            self.state.settings.webhooks.clone(),
            shutdown.clone(),
        ));
        let streams_end = self.state.streams_end.clone();
        let app = routes(self.state);
        let signal = shutdown.clone();
        let signal = async move {
            signal.cancelled().await;
            streams_end.cancel();
        };
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, signal, Some(Duration::from_secs(10)))
            .await?;
        relay.abort();
        webhooks.abort();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use poem::Endpoint;

    use super::*;

    /// Held by each test that sends requests through `observe`: they count in one process-wide
    /// registry, and `labels` reads what one request moved.
    static OBSERVED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// Requests each path through the real routes (without state: handlers answer 500, the
    /// route is matched all the same) and returns the `route` label each got.
    async fn labels(requests: &[(&str, &str)]) -> Vec<String> {
        let _alone = OBSERVED.lock().await;
        let templates = Arc::new(route_templates());
        let allow = Arc::new(route_methods());
        let app =
            surface().around(move |endpoint, request| observe(endpoint, request, templates.clone(), allow.clone()));
        let mut seen = Vec::new();
        for (method, path) in requests {
            let before = hbi_shared::metrics::encode().unwrap_or_default();
            let request = poem::Request::builder()
                .method(method.parse().unwrap_or_default())
                .uri(path.parse().unwrap_or_default())
                .finish();
            let _ = app.call(request).await;
            let after = hbi_shared::metrics::encode().unwrap_or_default();
            let new: Vec<String> = after
                .lines()
                .filter(|line| line.starts_with("http_requests_total{") && !before.contains(*line))
                .filter_map(|line| line.split("route=\"").nth(1)?.split('"').next().map(str::to_owned))
                .collect();
            assert_eq!(new.len(), 1, "{method} {path}: one series moved: {new:?}");
            seen.extend(new);
        }
        seen
    }

    #[tokio::test]
    async fn a_405_names_the_methods_of_its_route_in_allow() {
        let _alone = OBSERVED.lock().await;
        let templates = Arc::new(route_templates());
        let allow = Arc::new(route_methods());
        let app =
            surface().around(move |endpoint, request| observe(endpoint, request, templates.clone(), allow.clone()));
        let id = "0193a6d2-7a44-7c31-9d55-3f1c1e9a8b10";
        for (method, path, expected) in [
            ("PATCH", format!("/books/{id}"), "DELETE, GET, HEAD"),
            ("PUT", "/books".to_owned(), "GET, HEAD, POST"),
            ("GET", "/query".to_owned(), "POST"),
            ("DELETE", "/config".to_owned(), "GET, HEAD, PUT"),
        ] {
            let request = poem::Request::builder()
                .method(method.parse().unwrap_or_default())
                .uri(path.parse().unwrap_or_default())
                .finish();
            let response = app.call(request).await.map(IntoResponse::into_response);
            let Ok(response) = response else {
                panic!("{method} {path}: observe answers every error");
            };
            assert_eq!(response.status().as_u16(), 405, "{method} {path}");
            assert_eq!(
                response
                    .headers()
                    .get(poem::http::header::ALLOW)
                    .and_then(|v| v.to_str().ok()),
                Some(expected),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn a_path_is_named_after_the_template_it_will_match() {
        let templates = route_templates();
        let id = "0193a6d2-7a44-7c31-9d55-3f1c1e9a8b10";
        for (path, template) in [
            (format!("/books/{id}/upload"), Some("/books/{book_id}/upload")),
            (format!("/books/{id}/pages/12"), Some("/books/{book_id}/pages/{number}")),
            (format!("/books/{id}"), Some("/books/{book_id}")),
            ("/books/".to_owned(), Some("/books")),
            ("/jobs".to_owned(), Some("/jobs")),
            ("/health/ready".to_owned(), Some("/health/ready")),
            ("/no/such/path".to_owned(), None),
            (format!("/books/{id}/nothing/here"), None),
        ] {
            assert_eq!(template_for_path(&path, &templates), template, "{path}");
        }
    }

    #[tokio::test]
    async fn the_route_label_is_the_template_never_the_raw_path() {
        let id = "0193a6d2-7a44-7c31-9d55-3f1c1e9a8b10";
        let seen = labels(&[
            ("GET", &format!("/books/{id}/toc")),
            ("GET", &format!("/books/{id}/pages/12")),
            ("DELETE", &format!("/dlq/{id}")),
            ("GET", "/health"),
            ("GET", "/metrics"),
            ("GET", "/openapi.json"),
            ("GET", "/no/such/path"),
            ("GET", &format!("/books/{id}/nothing/here")),
        ])
        .await;
        assert_eq!(
            seen,
            [
                "/books/{book_id}/toc",
                "/books/{book_id}/pages/{number}",
                "/dlq/{job_id}",
                "/health",
                "/metrics",
                "/openapi.json",
                "unmatched",
                "unmatched",
            ]
        );
    }
}
