//! Access to the API over HTTP: which endpoint needs which scope, the API key of a request
//! (`X-API-Key: <key>` or `Authorization: Bearer <key>`), rate limits, CORS, and the
//! security part of the OpenAPI document. Keys, scopes and counting are
//! `hbi_shared::access`'s; the answers here are FastAPI's: 401 and 403 with a `detail`,
//! and 429 with `Retry-After` and `{"error": "RATE_LIMITED", ...}`.
//!
//! Open to anyone: `/health*`, `/metrics` (probes and scrapers carry no key), `/docs`,
//! `/redoc` and `/openapi.json` (the documents are no secret, and Swagger UI must load before
//! one can authorize in it), `/` and the portal's files under `/portal/` (the portal asks the
//! API for everything else, with the reader's key). They are not rate limited either.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use hbi_shared::Settings;
use hbi_shared::access::{ApiKeyStore, Authenticator, Client, Principal, RateLimitDecision, RateLimiter, Scope};
use hbi_shared::metrics::{Rejection, request_rejected};
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::middleware::Cors;
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::{Value, json};

/// The header that carries an API key (the other way is `Authorization: Bearer <key>`).
pub const API_KEY_HEADER: &str = "x-api-key";

/// Everything a request is checked against before its handler.
pub struct AccessControl {
    enabled: bool,
    authenticator: Authenticator,
    requests: RateLimiter,
    uploads: RateLimiter,
    /// Requests that present a key, per address, counted before the key is looked up (a
    /// database query) and handed back when it is valid: what guessing keys is limited by.
    key_checks: RateLimiter,
}

impl AccessControl {
    pub fn new(settings: &Settings, store: ApiKeyStore) -> Self {
        Self {
            enabled: settings.auth.enabled,
            authenticator: Authenticator::new(store, settings.auth.bootstrap_api_key.as_ref()),
            requests: RateLimiter::per_minute(settings.rate_limit.requests_per_minute),
            uploads: RateLimiter::per_minute(settings.rate_limit.uploads_per_minute),
            key_checks: RateLimiter::per_minute(settings.rate_limit.requests_per_minute),
        }
    }
}

/// The scope an operation needs, `None` for the open ones. Decided on the path's first
/// segment and the method alone, so that it reads the same on a raw path
/// (`/books/0193…/upload`) and on its template (`/books/{book_id}/upload`), and the OpenAPI
/// document (`document_security`) can never disagree with what is enforced.
pub fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    let first = first_segment(path);
    // `/` sends people to the portal, whose files are no secret either: its data comes from
    // the API, with the reader's key.
    if path == "/"
        || matches!(
            first,
            "health" | "metrics" | "docs" | "redoc" | "openapi.json" | "portal"
        )
    {
        return None;
    }
    // Any key opens the MCP door; each tool then asks for the scope its HTTP twin needs.
    if first == "mcp" {
        return Some(Scope::Read);
    }
    if is_operators_path(first) || method == Method::DELETE {
        return Some(Scope::Admin);
    }
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return Some(Scope::Read);
    }
    Some(Scope::Write)
}

/// Why a key restricted to libraries may not use this path at all: the settings, the
/// dead-letter queue, keys, webhooks and the audit log are operators' (an admin key over
/// every library), and `/stats` counts every library's books.
fn beyond_reach(principal: &Principal, path: &str) -> Option<&'static str> {
    let first = first_segment(path);
    if is_operators_path(first) && !principal.is_operator() {
        return Some("Not enough permissions: this operation is for operators, an admin key over every library");
    }
    if counts_every_library(first) && principal.readable_libraries().is_some() {
        return Some("Not enough permissions: the statistics count every library; this API key reaches only some");
    }
    None
}

/// The first segment of a path (`books` for `/books/0193…/toc`).
fn first_segment(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or_default()
}

/// Paths (by their first segment) for operators only: the admin scope over every library.
fn is_operators_path(first: &str) -> bool {
    matches!(first, "config" | "dlq" | "keys" | "webhooks" | "audit")
}

/// Paths whose answers count every library's books, refused to keys that reach only some.
fn counts_every_library(first: &str) -> bool {
    first == "stats"
}

/// `POST /books/{book_id}/upload`, which also counts against `uploads_per_minute` and has
/// the upload's body limit.
pub fn is_upload(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    method == Method::POST && matches!(segments.as_slice(), ["books", _, "upload"])
}

/// The key a request carries: `X-API-Key` first, else a bearer token. `Some("")` for a
/// header that is there but empty or unreadable, so that it is refused as invalid rather
/// than taken for no key at all.
fn presented_key(request: &Request) -> Option<&str> {
    if let Some(value) = request.headers().get(API_KEY_HEADER) {
        return Some(value.to_str().map(str::trim).unwrap_or_default());
    }
    let authorization = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The address a request without a valid key is counted for: the socket's (`X-Forwarded-For`
/// is not trusted, as any client can write it); the unspecified address when there is none.
fn address_of(request: &Request) -> IpAddr {
    request
        .remote_addr()
        .as_socket_addr()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |address| address.ip())
}

/// What the key check found.
enum Caller {
    Known(Principal),
    /// No key at all.
    Anonymous,
    /// A key no live key matches (counted against its address before the lookup).
    Unknown,
    /// A key header that is empty or unreadable (never looked up).
    Unreadable,
}

/// The middleware: authenticates, counts, authorizes, then calls the endpoint with the
/// request's [`Principal`] among its data (handlers read it with `Data<&Principal>`).
pub async fn guard<E: Endpoint>(
    endpoint: Arc<E>,
    mut request: Request,
    access: Arc<AccessControl>,
) -> poem::Result<Response> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let Some(needed) = required_scope(&method, &path) else {
        return endpoint.call(request).await.map(IntoResponse::into_response);
    };
    let address = address_of(&request);
    let caller = if !access.enabled {
        Caller::Known(Principal::local())
    } else {
        match presented_key(&request) {
            None => Caller::Anonymous,
            Some("") => Caller::Unreadable,
            Some(key) => {
                // Counted against the address before the lookup, so that guessing keys is
                // limited before it costs a query; a valid key gets the count back.
                if let Some(refused) = rate_limited(&access.key_checks, Client::Address(address), "requests") {
                    return Ok(refused);
                }
                match access.authenticator.authenticate(key).await {
                    Ok(Some(principal)) => {
                        access.key_checks.refund(Client::Address(address));
                        Caller::Known(principal)
                    }
                    Ok(None) => Caller::Unknown,
                    Err(err) => {
                        tracing::error!(error = %format!("{err:#}"), "cannot check an API key");
                        return Ok(detail(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "cannot check the API key now: the database is unavailable",
                        ));
                    }
                }
            }
        }
    };
    // A valid key is counted for itself, anything else for its address (a key that is not
    // valid was counted above already), before a refusal for a missing key.
    let client = match &caller {
        Caller::Known(principal) if access.enabled => Some(Client::Key(principal.key_id.as_str())),
        Caller::Unknown => None,
        _ => Some(Client::Address(address)),
    };
    if let Some(client) = client
        && let Some(refused) = rate_limited(&access.requests, client, "requests")
    {
        return Ok(refused);
    }
    if is_upload(&method, &path)
        && let Some(client) = client
        && let Some(refused) = rate_limited(&access.uploads, client, "uploads")
    {
        return Ok(refused);
    }
    let principal = match caller {
        Caller::Known(principal) => principal,
        Caller::Anonymous => return Ok(unauthorized(Rejection::MissingKey, "Not authenticated")),
        Caller::Unknown | Caller::Unreadable => return Ok(unauthorized(Rejection::InvalidKey, "Invalid API key")),
    };
    if let Some(refusal) = beyond_reach(&principal, &path) {
        request_rejected(Rejection::InsufficientScope);
        return Ok(detail(StatusCode::FORBIDDEN, refusal));
    }
    if !principal.scope.includes(needed) {
        request_rejected(Rejection::InsufficientScope);
        return Ok(detail(
            StatusCode::FORBIDDEN,
            &format!(
                "Not enough permissions: this API key has the {} scope, this operation needs {needed}",
                principal.scope
            ),
        ));
    }
    request.extensions_mut().insert(principal);
    endpoint.call(request).await.map(IntoResponse::into_response)
}

fn detail(status: StatusCode, message: &str) -> Response {
    (status, poem::web::Json(json!({ "detail": message }))).into_response()
}

fn unauthorized(reason: Rejection, message: &str) -> Response {
    request_rejected(reason);
    let challenge = match reason {
        Rejection::InvalidKey => "Bearer error=\"invalid_token\"",
        _ => "Bearer",
    };
    let mut response = detail(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

/// 429 when `client` is over `limiter`'s limit.
fn rate_limited(limiter: &RateLimiter, client: Client<'_>, what: &str) -> Option<Response> {
    let RateLimitDecision::Limited { retry_after } = limiter.check(client) else {
        return None;
    };
    request_rejected(Rejection::RateLimited);
    let seconds = whole_seconds(retry_after);
    let body = json!({
        "error": "RATE_LIMITED",
        "detail": format!(
            "Rate limit exceeded: {} {what} per minute; retry in {seconds} s",
            limiter.limit()
        ),
        "retry_after": seconds,
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, poem::web::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    Some(response)
}

/// `Retry-After` is in whole seconds: rounded up, and at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// CORS for `server.cors_origins`; `None` when it is empty (browsers then allow only the
/// API's own pages). `*` allows any origin.
pub fn cors(origins: &[String]) -> Option<Cors> {
    if origins.is_empty() {
        return None;
    }
    let mut cors = Cors::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .allow_header(API_KEY_HEADER)
        .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(600);
    // An empty list of origins is poem's "any origin".
    if !origins.iter().any(|origin| origin == "*") {
        cors = cors.allow_origins(origins.iter().map(String::as_str));
    }
    Some(cors)
}

/// Browsers send `Origin` on same-origin POSTs too (Swagger UI's "Try it out"): such a
/// request is no cross-origin request, so it must not be refused for an origin missing
/// from `server.cors_origins`. Drops `Origin` when it names the host the request went to.
pub async fn same_origin_is_not_cors<E: Endpoint>(endpoint: Arc<E>, mut request: Request) -> poem::Result<Response> {
    let same_origin = match (
        request.headers().get(header::ORIGIN),
        request.headers().get(header::HOST),
    ) {
        (Some(origin), Some(host)) => match (origin.to_str(), host.to_str()) {
            (Ok(origin), Ok(host)) => origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
            _ => false,
        },
        _ => false,
    };
    if same_origin {
        request.headers_mut().remove(header::ORIGIN);
    }
    endpoint.call(request).await.map(IntoResponse::into_response)
}

/// Names of the two ways to send a key in the OpenAPI document (Swagger UI's Authorize).
const SCHEME_HEADER: &str = "ApiKeyHeader";
const SCHEME_BEARER: &str = "BearerToken";

/// Adds what [`guard`] enforces to the OpenAPI document poem-openapi generates: the two
/// security schemes, and on each operation that needs a key its security requirement, its
/// scope in the description, and its 401, 403 and 429 answers.
pub fn document_security(spec: &mut Value) {
    let components = &mut spec["components"];
    components["securitySchemes"] = json!({
        SCHEME_HEADER: {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key (`hbi_…`) in the X-API-Key header.",
        },
        SCHEME_BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "The same API key as `Authorization: Bearer <key>`.",
        },
    });
    components["schemas"]["RateLimited"] = json!({
        "type": "object",
        "title": "RateLimited",
        "description": "429: too many requests from this API key (or, without one, this address).",
        "required": ["error", "detail", "retry_after"],
        "properties": {
            "error": {"type": "string", "enum": ["RATE_LIMITED"]},
            "detail": {"type": "string", "description": "What was exceeded, for a person."},
            "retry_after": {
                "type": "integer",
                "format": "uint64",
                "description": "Seconds to wait before the next request (also the Retry-After header).",
            },
        },
    });
    let error_body =
        json!({"application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}});
    let Some(paths) = spec["paths"].as_object_mut() else {
        return;
    };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let Some(scope) = required_scope(&method, path) else {
                continue;
            };
            operation["security"] = json!([{ SCHEME_HEADER: [] }, { SCHEME_BEARER: [] }]);
            let needs = match scope {
                Scope::Read => "Needs an API key (any scope).".to_owned(),
                Scope::Write => "Needs an API key with the `write` or `admin` scope.".to_owned(),
                Scope::Admin => "Needs an API key with the `admin` scope.".to_owned(),
            };
            let description = operation["description"].as_str().unwrap_or_default().to_owned();
            operation["description"] = Value::String(if description.is_empty() {
                needs
            } else {
                format!("{description}\n\n{needs}")
            });
            let responses = &mut operation["responses"];
            responses["401"] = json!({
                "description": "No API key (`Not authenticated`), or one that is unknown or revoked (`Invalid API key`).",
                "headers": {"WWW-Authenticate": {"required": true, "schema": {"type": "string"}}},
                "content": error_body,
            });
            if scope != Scope::Read {
                responses["403"] = json!({
                    "description": format!(
                        "The API key lacks the `{scope}` scope (in the book's library), or the operation is for operators and the key reaches only some libraries."
                    ),
                    "content": error_body,
                });
            } else if counts_every_library(first_segment(path)) {
                responses["403"] = json!({
                    "description": "The API key reaches only some libraries; this operation counts every library's books.",
                    "content": error_body,
                });
            }
            responses["429"] = json!({
                "description": "Too many requests: over `rate_limit.requests_per_minute` (or `uploads_per_minute`).",
                "headers": {"Retry-After": {
                    "required": true,
                    "description": "Seconds to wait.",
                    "schema": {"type": "integer"},
                }},
                "content": {"application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/RateLimited"}}},
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_the_method_and_the_first_segment() {
        let scope = |method: Method, path: &str| required_scope(&method, path);
        assert_eq!(scope(Method::GET, "/health/ready"), None);
        assert_eq!(scope(Method::GET, "/metrics"), None);
        assert_eq!(scope(Method::GET, "/docs/"), None);
        assert_eq!(scope(Method::GET, "/openapi.json"), None);
        assert_eq!(scope(Method::GET, "/books/{book_id}/toc"), Some(Scope::Read));
        assert_eq!(scope(Method::GET, "/stats"), Some(Scope::Read));
        assert_eq!(scope(Method::POST, "/books/"), Some(Scope::Write));
        assert_eq!(scope(Method::POST, "/query"), Some(Scope::Write));
        assert_eq!(scope(Method::POST, "/jobs/x/cancel"), Some(Scope::Write));
        assert_eq!(scope(Method::DELETE, "/books/x"), Some(Scope::Admin));
        assert_eq!(scope(Method::GET, "/config"), Some(Scope::Admin));
        assert_eq!(scope(Method::GET, "/dlq"), Some(Scope::Admin));
        assert_eq!(scope(Method::GET, "/keys"), Some(Scope::Admin));
        assert_eq!(scope(Method::GET, "/webhooks"), Some(Scope::Admin));
        assert_eq!(scope(Method::POST, "/mcp"), Some(Scope::Read));
        assert_eq!(scope(Method::DELETE, "/mcp"), Some(Scope::Read));
        assert_eq!(
            scope(Method::GET, "/healthz"),
            Some(Scope::Read),
            "a prefix is no match"
        );
        assert!(is_upload(&Method::POST, "/books/0193/upload/"));
        assert!(!is_upload(&Method::GET, "/books/0193/upload"));
        assert!(!is_upload(&Method::POST, "/books"));
    }

    #[test]
    fn keys_come_from_x_api_key_or_a_bearer_token() {
        let with = |name: &str, value: &str| Request::builder().header(name, value).finish();
        assert_eq!(presented_key(&with("X-API-Key", " hbi_1 ")), Some("hbi_1"));
        assert_eq!(presented_key(&with("Authorization", "Bearer hbi_2")), Some("hbi_2"));
        assert_eq!(presented_key(&with("Authorization", "bearer  hbi_3")), Some("hbi_3"));
        assert_eq!(presented_key(&with("Authorization", "Basic dXNlcjpwYXNz")), None);
        assert_eq!(presented_key(&with("X-API-Key", "")), Some(""));
        assert_eq!(presented_key(&Request::builder().finish()), None);
    }

    /// An `AccessControl` of `limit` requests a minute whose key store cannot answer (its
    /// database has no tables): every lookup fails, so a 503 shows that one was made.
    async fn with_a_failing_key_store(limit: u32) -> Arc<AccessControl> {
        let dir = tempfile::tempdir().expect("temp dir");
        let overrides = hbi_shared::config::Overrides {
            bind: None,
            data_dir: Some(dir.path().to_path_buf()),
        };
        let mut settings = Settings::load(Some(&dir.path().join("no-config")), &overrides).expect("settings");
        settings.auth.enabled = true;
        settings.auth.bootstrap_api_key = Some("a-bootstrap-key-of-the-test-0123".into());
        settings.rate_limit.requests_per_minute = limit;
        let db = sea_orm::Database::connect("sqlite::memory:").await.expect("sqlite");
        Arc::new(AccessControl::new(&settings, ApiKeyStore::new(db)))
    }

    async fn status(access: &Arc<AccessControl>, key: &str) -> u16 {
        let endpoint = Arc::new(poem::endpoint::make_sync(|_| "ok"));
        let request = Request::builder()
            .uri_str("/books")
            .header(API_KEY_HEADER, key)
            .finish();
        match guard(endpoint, request, access.clone()).await {
            Ok(response) => response.status().as_u16(),
            Err(err) => err.status().as_u16(),
        }
    }

    /// Hole 4: a guessed key is counted against its address before the database is asked,
    /// so past the limit a guess costs no query; a valid key gets that count back.
    #[tokio::test]
    async fn guessed_keys_are_counted_before_the_lookup() {
        let access = with_a_failing_key_store(3).await;
        for n in 0..3 {
            assert_eq!(status(&access, "hbi_guess").await, 503, "guess {}: looked up", n + 1);
        }
        assert_eq!(
            status(&access, "hbi_guess").await,
            429,
            "past the limit: refused before the lookup"
        );

        let access = with_a_failing_key_store(3).await;
        for n in 0..10 {
            let status = status(&access, "a-bootstrap-key-of-the-test-0123").await;
            assert_eq!(
                status,
                if n < 3 { 200 } else { 429 },
                "request {} of a valid key",
                n + 1
            );
        }
        assert_eq!(
            status(&access, "hbi_guess").await,
            503,
            "the valid key's requests were not counted against its address"
        );
    }

    #[test]
    fn retry_after_is_rounded_up_to_a_second() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(59_400)), 60);
        assert_eq!(whole_seconds(Duration::from_secs(12)), 12);
    }
}
