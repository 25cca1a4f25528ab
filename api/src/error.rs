//! Errors as FastAPI writes them, so the original HBI's clients keep working:
//! `{"detail": "Book not found"}` for 4xx with a message, and 422
//! `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}` for invalid input.

use hbi_shared::LibraryError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaResponse, MetaResponses, Registry};
use poem_openapi::{ApiResponse, Object, ResponseContent};
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
/// An [`ApiError`] from a handler is already in it.
pub async fn to_fastapi_shape(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
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

/// The error statuses an operation documents besides 500 (which every one does), as bits of
/// [`ApiError`]'s parameter: each operation's document lists exactly the errors it answers.
pub mod status {
    /// 400: the request cannot be served as asked (an empty file, a malformed id).
    pub const BAD_REQUEST: u8 = 1;
    /// 404: the resource does not exist.
    pub const NOT_FOUND: u8 = 1 << 1;
    /// 409: the book or job is not in a state that allows the request.
    pub const CONFLICT: u8 = 1 << 2;
    /// 413: over the upload limit.
    pub const TOO_LARGE: u8 = 1 << 3;
    /// 422: a field's value is refused.
    pub const INVALID: u8 = 1 << 4;
    /// 503: something the operation needs is down or not configured; nothing was recorded.
    pub const UNAVAILABLE: u8 = 1 << 5;
    /// 502: the language model server failed.
    pub const BAD_GATEWAY: u8 = 1 << 6;
    /// 504: the language model did not answer in time.
    pub const GATEWAY_TIMEOUT: u8 = 1 << 7;
}

/// Every status [`ApiError`] can answer: its bit (0 for 500, always documented), code and
/// description in the document.
const ERROR_STATUSES: [(u8, u16, &str); 9] = [
    (
        status::BAD_REQUEST,
        400,
        "The request cannot be served as asked; the detail says why",
    ),
    (status::NOT_FOUND, 404, "Not found"),
    (
        status::CONFLICT,
        409,
        "The book or job is not in a state that allows this; the detail says why",
    ),
    (status::TOO_LARGE, 413, "Over the upload size limit"),
    (status::INVALID, 422, "Validation Error"),
    (0, 500, "Internal server error"),
    (
        status::BAD_GATEWAY,
        502,
        "The language model server failed (an error status, unreachable, an unreadable response)",
    ),
    (
        status::UNAVAILABLE,
        503,
        "Something this needs is down or not configured; nothing was recorded",
    ),
    (
        status::GATEWAY_TIMEOUT,
        504,
        "The language model did not answer in time",
    ),
];

/// A handler's error in FastAPI's shape: `{"detail": "..."}`, or the 422 list of problems.
/// `DOCUMENTED` is the set of [`status`] bits the operation documents; a [`LibraryError`]
/// converts into it, so `?` works in every handler.
#[derive(Debug)]
pub struct ApiError<const DOCUMENTED: u8> {
    status: StatusCode,
    body: ErrorBody,
}

#[derive(Debug)]
enum ErrorBody {
    Detail(ErrorDetail),
    Validation(ValidationError),
}

impl<const DOCUMENTED: u8> ApiError<DOCUMENTED> {
    /// 400 with `detail`, for what a handler refuses while parsing.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::detail(StatusCode::BAD_REQUEST, detail)
    }

    /// 404 with `detail`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::detail(StatusCode::NOT_FOUND, detail)
    }

    /// 422 with the problems found.
    pub fn invalid(problems: ValidationError) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody::Validation(problems),
        }
    }

    fn detail(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::Detail(ErrorDetail { detail: detail.into() }),
        }
    }
}

impl<const DOCUMENTED: u8> From<LibraryError> for ApiError<DOCUMENTED> {
    fn from(err: LibraryError) -> Self {
        let status = match &err {
            LibraryError::BookNotFound
            | LibraryError::JobNotFound
            | LibraryError::LibraryNotFound
            | LibraryError::NotInDeadLetterQueue
            | LibraryError::PageNotFound { .. }
            | LibraryError::PageLabelNotFound { .. }
            | LibraryError::NoPageImage(_) => StatusCode::NOT_FOUND,
            LibraryError::Conflict(_) => StatusCode::CONFLICT,
            LibraryError::Forbidden(_) => StatusCode::FORBIDDEN,
            LibraryError::BadFile(_) => StatusCode::BAD_REQUEST,
            LibraryError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            LibraryError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            LibraryError::ModelFailed(_) => StatusCode::BAD_GATEWAY,
            LibraryError::ModelTimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
            LibraryError::Invalid { field, .. } => {
                return Self {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    body: ErrorBody::Validation(ValidationError {
                        detail: vec![ValidationIssue {
                            loc: vec!["body".to_owned(), (*field).to_owned()],
                            msg: err.to_string(),
                            kind: "value_error".to_owned(),
                        }],
                    }),
                };
            }
            LibraryError::Internal(inner) => return Self::from(inner),
        };
        // 403 is on every operation that needs a key (`access::document_security`).
        let documented = status == StatusCode::FORBIDDEN
            || ERROR_STATUSES
                .iter()
                .any(|(bit, code, _)| *code == status.as_u16() && (*bit & DOCUMENTED) != 0);
        if !documented {
            // A use case answered what this operation's document does not list: a client
            // generated from it would not expect it. Said loudly so a test run shows it.
            tracing::error!(status = status.as_u16(), error = %err, "undocumented error status");
        }
        Self::detail(status, err.to_string())
    }
}

impl<const DOCUMENTED: u8> From<anyhow::Error> for ApiError<DOCUMENTED> {
    fn from(err: anyhow::Error) -> Self {
        Self::from(&err)
    }
}

impl<const DOCUMENTED: u8> From<&anyhow::Error> for ApiError<DOCUMENTED> {
    fn from(err: &anyhow::Error) -> Self {
        Self::detail(StatusCode::INTERNAL_SERVER_ERROR, internal(err))
    }
}

impl<const DOCUMENTED: u8> IntoResponse for ApiError<DOCUMENTED> {
    fn into_response(self) -> Response {
        let body = match self.body {
            ErrorBody::Detail(detail) => Json(detail).into_response(),
            ErrorBody::Validation(validation) => Json(validation).into_response(),
        };
        (self.status, body).into_response()
    }
}

impl<const DOCUMENTED: u8> From<ApiError<DOCUMENTED>> for poem::Error {
    fn from(err: ApiError<DOCUMENTED>) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

impl<const DOCUMENTED: u8> ApiResponse for ApiError<DOCUMENTED> {
    fn meta() -> MetaResponses {
        let responses = ERROR_STATUSES
            .iter()
            .filter(|(bit, _, _)| *bit == 0 || (*bit & DOCUMENTED) != 0)
            .map(|(bit, code, description)| MetaResponse {
                description,
                status: Some(*code),
                status_range: None,
                content: if *bit == status::INVALID {
                    <Json<ValidationError> as ResponseContent>::media_types()
                } else {
                    <Json<ErrorDetail> as ResponseContent>::media_types()
                },
                headers: Vec::new(),
            })
            .collect();
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        <Json<ErrorDetail> as ResponseContent>::register(registry);
        <Json<ValidationError> as ResponseContent>::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_the_bits_given_and_always_500() {
        let codes: Vec<Option<u16>> = ApiError::<{ status::NOT_FOUND | status::CONFLICT }>::meta()
            .responses
            .iter()
            .map(|response| response.status)
            .collect();
        assert_eq!(codes, [Some(404), Some(409), Some(500)]);
    }

    #[test]
    fn library_errors_keep_their_words_and_get_their_status() {
        let not_found = ApiError::<{ status::NOT_FOUND }>::from(LibraryError::BookNotFound).into_response();
        assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
        let invalid = ApiError::<{ status::INVALID }>::from(LibraryError::Invalid {
            field: "title",
            reason: "must not be blank".to_owned(),
        });
        match &invalid.body {
            ErrorBody::Validation(validation) => {
                assert_eq!(validation.detail[0].loc, ["body", "title"]);
                assert_eq!(validation.detail[0].msg, "title must not be blank");
            }
            ErrorBody::Detail(detail) => panic!("a 422 lists its problems, got {detail:?}"),
        }
        let internal = ApiError::<0>::from(LibraryError::Internal(anyhow::anyhow!("db at 10.0.0.3 down")));
        match internal.body {
            ErrorBody::Detail(detail) => assert_eq!(detail.detail, "internal server error"),
            ErrorBody::Validation(_) => panic!("500 is a detail"),
        }
    }
}
