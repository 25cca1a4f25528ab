//! Errors as FastAPI writes them, so the original HBI's clients keep working:
//! `{"detail": "Book not found"}` for 4xx with a message, and 422
//! `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}` for invalid input.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use poem_openapi::payload::Json;
use serde_json::json;

/// A 4xx/5xx body with a human-readable message.
#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// What went wrong, for a person.
    pub detail: String,
}

impl ErrorDetail {
    pub fn json(detail: impl Into<String>) -> Json<Self> {
        Json(Self { detail: detail.into() })
    }
}

/// One problem with the request, FastAPI's validation-error item.
#[derive(Debug, Clone, Object)]
pub struct ValidationIssue {
    /// Where: `["path", "book_id"]`, `["query", "limit"]`, `["body", "title"]`.
    pub loc: Vec<String>,
    pub msg: String,
    #[oai(rename = "type")]
    pub kind: String,
}

/// 422 body: the list of problems with the request.
#[derive(Debug, Clone, Object)]
pub struct ValidationError {
    pub detail: Vec<ValidationIssue>,
}

fn validation_response(loc: Vec<&str>, msg: String, kind: &str) -> Response {
    let body = json!({"detail": [{"loc": loc, "msg": msg, "type": kind}]});
    (StatusCode::UNPROCESSABLE_ENTITY, poem::web::Json(body)).into_response()
}

/// Turns every error poem or poem-openapi raises outside our handlers into FastAPI's shape.
pub async fn to_fastapi_shape(err: poem::Error) -> Response {
    use poem_openapi::error::{
        ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError, ParseRequestPayloadError,
    };
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return validation_response(vec!["query", e.name], e.reason.clone(), "value_error");
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        return validation_response(vec!["path", e.name], e.reason.clone(), "value_error");
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return validation_response(vec!["body"], e.reason.clone(), "value_error");
    }
    if let Some(e) = err.downcast_ref::<ParseMultipartError>() {
        return validation_response(vec!["body", "file"], e.reason.clone(), "value_error");
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        return validation_response(vec!["header", "content-type"], e.to_string(), "value_error");
    }
    let status = err.status();
    let detail = match status {
        StatusCode::NOT_FOUND => "Not Found".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than the limit".to_owned(),
        _ if status.is_server_error() => {
            tracing::error!(error = %err, "unhandled server error");
            "internal server error".to_owned()
        }
        _ => err.to_string(),
    };
    (status, poem::web::Json(json!({ "detail": detail }))).into_response()
}

/// Logs an internal error with its chain and returns the message the client may see.
pub fn internal(err: &anyhow::Error) -> String {
    tracing::error!(error = %format!("{err:#}"), "request failed");
    "internal server error".to_owned()
}
