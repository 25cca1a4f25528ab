//! GET/POST /libraries, GET/DELETE /libraries/{library_id}: the collections books belong
//! to (any key sees the libraries it reaches; operators make and remove them). GET /audit:
//! who changed what, for operators.

use hbi_shared::access::Principal;
use hbi_shared::db::entities::audit_entry;
use hbi_shared::library::LibraryView as Listed;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::keys::ScopeView;
use crate::AppState;
use crate::error::{ApiError, status};

pub struct LibrariesApi;

/// A library: a collection of books, and what API keys are given access to.
#[derive(Debug, Object)]
pub struct LibraryView {
    /// A short name (`default`, `physics-team`).
    pub id: String,
    pub name: String,
    #[oai(nullable)]
    pub description: Option<String>,
    /// Books it holds.
    pub books: u64,
    /// What this request's key may do in it.
    pub scope: ScopeView,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Listed> for LibraryView {
    fn from(listed: Listed) -> Self {
        Self {
            id: listed.library.id,
            name: listed.library.name,
            description: listed.library.description,
            books: listed.books,
            scope: listed.scope.into(),
            created_at: listed.library.created_at,
        }
    }
}

/// A library to make.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct LibraryCreate {
    /// 1 to 64 lower-case letters, digits and `-`, not starting with `-`; chosen once.
    #[oai(validator(min_length = 1, max_length = 64, pattern = "^[a-z0-9][a-z0-9-]*$"))]
    pub id: String,
    /// 1 to 200 characters, no NUL.
    #[oai(validator(min_length = 1, max_length = 200, pattern = "^[^\\x00]*$"))]
    pub name: String,
    /// Up to 2000 characters, no NUL.
    #[oai(nullable, validator(max_length = 2000, pattern = "^[^\\x00]*$"))]
    pub description: Option<String>,
}

#[derive(ApiResponse)]
pub enum CreatedLibrary {
    #[oai(status = 201)]
    Created(Json<LibraryView>),
}

#[derive(ApiResponse)]
pub enum DeletedLibrary {
    /// The library and every key's access to it are gone.
    #[oai(status = 204)]
    Deleted,
}

/// One change someone made.
#[derive(Debug, Object)]
pub struct AuditEntryView {
    /// Increasing; pass the last one seen as `before` for the next page.
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The key that did it (`bootstrap`, `local`, or a key's id).
    pub key_id: String,
    /// `noun.verb`: `book.create`, `book.upload`, `book.delete`, `job.cancel`, `job.retry`,
    /// `dlq.requeue`, `dlq.discard`, `library.create`, `library.delete`, `key.create`,
    /// `key.revoke`, `config.update`, `webhook.create`, `webhook.delete`.
    pub action: String,
    #[oai(nullable)]
    pub library_id: Option<String>,
    #[oai(nullable)]
    pub book_id: Option<String>,
    /// What else it was done to (a job, a key), by id.
    #[oai(nullable)]
    pub target: Option<String>,
    /// The request's `X-Request-Id`.
    #[oai(nullable)]
    pub request_id: Option<String>,
}

impl From<audit_entry::Model> for AuditEntryView {
    fn from(entry: audit_entry::Model) -> Self {
        Self {
            id: entry.id,
            at: entry.at,
            key_id: entry.key_id,
            action: entry.action,
            library_id: entry.library_id,
            book_id: entry.book_id,
            target: entry.target,
            request_id: entry.request_id,
        }
    }
}

fn default_limit() -> u64 {
    100
}

#[OpenApi]
impl LibrariesApi {
    /// The libraries this key reaches, with their book counts and the key's scope in each
    #[oai(
        path = "/libraries",
        method = "get",
        tag = "ApiTags::Libraries",
        operation_id = "list_libraries"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
    ) -> Result<Json<Vec<LibraryView>>, ApiError<0>> {
        let libraries = state.library.libraries(&caller).await?;
        Ok(Json(libraries.into_iter().map(LibraryView::from).collect()))
    }

    /// One library (404 when the key does not reach it)
    #[oai(
        path = "/libraries/:library_id",
        method = "get",
        tag = "ApiTags::Libraries",
        operation_id = "get_library"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        library_id: Path<String>,
    ) -> Result<Json<LibraryView>, ApiError<{ status::NOT_FOUND }>> {
        Ok(Json(state.library.library(&caller, &library_id).await?.into()))
    }

    /// Make a library (operators: an admin key over every library)
    ///
    /// 409 when one of that id exists.
    #[oai(
        path = "/libraries",
        method = "post",
        tag = "ApiTags::Libraries",
        operation_id = "create_library"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        body: Json<LibraryCreate>,
    ) -> Result<CreatedLibrary, ApiError<{ status::CONFLICT | status::INVALID }>> {
        let made = state
            .library
            .create_library(&caller, &body.id, &body.name, body.description.as_deref())
            .await?;
        Ok(CreatedLibrary::Created(Json(made.into())))
    }

    /// Remove an empty library and every key's access to it (operators)
    ///
    /// 409 while it holds books, and for `default`.
    #[oai(
        path = "/libraries/:library_id",
        method = "delete",
        tag = "ApiTags::Libraries",
        operation_id = "delete_library"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        library_id: Path<String>,
    ) -> Result<DeletedLibrary, ApiError<{ status::NOT_FOUND | status::CONFLICT }>> {
        state.library.delete_library(&caller, &library_id).await?;
        Ok(DeletedLibrary::Deleted)
    }

    /// Who changed what, newest first (operators)
    ///
    /// Writes, deletes, key and access changes, each with the key, the book or library,
    /// the time and the request id; kept `auth.audit_retention_days` days.
    #[oai(
        path = "/audit",
        method = "get",
        tag = "ApiTags::Libraries",
        operation_id = "list_audit"
    )]
    async fn audit(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        /// Only entries older than this id (the last `id` of the page before).
        before: Query<Option<i64>>,
        /// How many entries to return (at most 1000).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u64>,
    ) -> Result<Json<Vec<AuditEntryView>>, ApiError<0>> {
        let entries = state.library.audit_log(&caller, before.0, limit.0).await?;
        Ok(Json(entries.into_iter().map(AuditEntryView::from).collect()))
    }
}
