//! POST /keys, GET /keys, DELETE /keys/{key_id}: API keys, for operators (the use cases
//! of `hbi_shared::Library`). A key reaches every library with its scope, or the libraries
//! it was made with, a scope each. A key is shown once, when it is made; lists show its
//! non-secret prefix only. GET /whoami: any key's own id, scope and libraries (what the
//! portal shows and offers follows it).

use std::collections::BTreeMap;

use hbi_shared::access::{Principal, Reach, RevokeOutcome, Scope};
use hbi_shared::domain::parse_id;
use hbi_shared::library::KeyListing;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::{ApiError, status};

pub struct KeysApi;

/// What a key may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "ApiKeyScope", rename_all = "lowercase")]
pub enum ScopeView {
    /// Read books, jobs, search results (GET).
    Read,
    /// Also add books and uploads, cancel and retry jobs, ask questions.
    Write,
    /// Also change the configuration, recover dead jobs, delete, manage API keys.
    Admin,
}

impl From<ScopeView> for Scope {
    fn from(scope: ScopeView) -> Self {
        match scope {
            ScopeView::Read => Scope::Read,
            ScopeView::Write => Scope::Write,
            ScopeView::Admin => Scope::Admin,
        }
    }
}

impl From<Scope> for ScopeView {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Read => ScopeView::Read,
            Scope::Write => ScopeView::Write,
            Scope::Admin => ScopeView::Admin,
        }
    }
}

/// A key to make.
#[derive(Debug, Object)]
#[oai(rename = "ApiKeyCreate", deny_unknown_fields)]
pub struct KeyCreate {
    /// What or who the key is for, to recognise it in lists (1 to 100 characters, no NUL).
    #[oai(validator(min_length = 1, max_length = 100, pattern = "^[^\\x00]*$"))]
    pub name: String,
    /// The most the key may do: in every library, or (with `libraries`) the ceiling of its
    /// scope in each.
    pub scope: ScopeView,
    /// Only these libraries, each with its scope (at most `scope`); absent or null: every
    /// library.
    #[oai(nullable, validator(max_items = 1000))]
    pub libraries: Option<Vec<LibraryAccess>>,
}

/// A library a key reaches and what it may do there.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct LibraryAccess {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub library_id: String,
    pub scope: ScopeView,
}

fn access_views(libraries: Option<BTreeMap<String, Scope>>) -> Option<Vec<LibraryAccess>> {
    libraries.map(|libraries| {
        libraries
            .into_iter()
            .map(|(library_id, scope)| LibraryAccess {
                library_id,
                scope: scope.into(),
            })
            .collect()
    })
}

/// An API key as listed: never the key itself.
#[derive(Debug, Object)]
#[oai(rename = "ApiKey")]
pub struct KeyView {
    /// Use it in DELETE /keys/{key_id}.
    pub id: String,
    pub name: String,
    pub scope: ScopeView,
    /// The key's first characters, to tell keys apart (`hbi_1a2b3c4d`).
    pub prefix: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last request made with it (to the minute), if any.
    #[oai(nullable)]
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Set once revoked: requests with it are refused.
    #[oai(nullable)]
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The libraries it reaches with its scope in each; null: every library.
    #[oai(nullable)]
    pub libraries: Option<Vec<LibraryAccess>>,
}

impl KeyView {
    fn new(listing: KeyListing) -> Self {
        let KeyListing { key, libraries } = listing;
        // The store writes only known scopes; an unknown one is shown as the least.
        let scope = key.scope.parse::<Scope>().unwrap_or(Scope::Read);
        Self {
            id: key.id,
            name: key.name,
            scope: scope.into(),
            prefix: key.prefix,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
            libraries: access_views(libraries),
        }
    }
}

/// A key just made, with the key itself: shown this once.
#[derive(Debug, Object)]
#[oai(rename = "NewApiKey")]
pub struct NewKeyView {
    /// The key: send it as `X-API-Key` or `Authorization: Bearer`. Only its hash is kept, so
    /// it cannot be shown again; store it now.
    pub key: String,
    #[oai(flatten)]
    pub details: KeyView,
}

#[derive(ApiResponse)]
pub enum CreatedKey {
    #[oai(status = 201)]
    Created(Json<NewKeyView>),
}

#[derive(ApiResponse)]
pub enum RevokedKey {
    /// Revoked (or already so): every replica refuses it from its next request on.
    #[oai(status = 204)]
    Revoked,
}

/// The key a request was made with.
#[derive(Debug, Object)]
#[oai(rename = "Caller")]
pub struct CallerView {
    /// The key's id (`bootstrap` for `HBI_BOOTSTRAP_API_KEY`, `local` when authentication
    /// is off); never the key itself.
    pub key_id: String,
    pub scope: ScopeView,
    /// The libraries it reaches with its scope in each; null: every library.
    #[oai(nullable)]
    pub libraries: Option<Vec<LibraryAccess>>,
}

const KEY_NOT_FOUND: &str = "API key not found";

#[OpenApi]
impl KeysApi {
    /// The API key of this request: its id and scope
    ///
    /// Any valid key may ask; a client (the portal) offers what the scope allows.
    #[oai(path = "/whoami", method = "get", tag = "ApiTags::Keys", operation_id = "whoami")]
    async fn whoami(&self, caller: Data<&Principal>) -> Result<Json<CallerView>, ApiError<0>> {
        let libraries = match &caller.reach {
            Reach::Everything => None,
            Reach::Libraries(libraries) => Some(libraries.clone()),
        };
        Ok(Json(CallerView {
            key_id: caller.key_id.clone(),
            scope: caller.scope.into(),
            libraries: access_views(libraries),
        }))
    }

    /// Make an API key
    ///
    /// Answers the key itself once; only its hash is stored.
    #[oai(
        path = "/keys",
        method = "post",
        tag = "ApiTags::Keys",
        operation_id = "create_api_key"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        body: Json<KeyCreate>,
    ) -> Result<CreatedKey, ApiError<{ status::INVALID }>> {
        let scope = Scope::from(body.0.scope);
        let libraries = body.0.libraries.map(|libraries| {
            libraries
                .into_iter()
                .map(|access| (access.library_id, Scope::from(access.scope)))
                .collect::<BTreeMap<_, _>>()
        });
        let (listing, secret) = state
            .library
            .create_key(&caller, &body.0.name, scope, libraries)
            .await?;
        Ok(CreatedKey::Created(Json(NewKeyView {
            key: secret.expose().to_owned(),
            details: KeyView::new(listing),
        })))
    }

    /// API keys, oldest first, without the keys themselves
    ///
    /// The key of `HBI_BOOTSTRAP_API_KEY` is not stored and not listed.
    #[oai(
        path = "/keys",
        method = "get",
        tag = "ApiTags::Keys",
        operation_id = "list_api_keys"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        /// Also list revoked keys.
        #[oai(default)]
        include_revoked: Query<bool>,
    ) -> Result<Json<Vec<KeyView>>, ApiError<0>> {
        let keys = state.library.keys(&caller, include_revoked.0).await?;
        Ok(Json(keys.into_iter().map(KeyView::new).collect()))
    }

    /// Revoke an API key
    ///
    /// For good: a revoked key cannot be restored; make a new one instead.
    #[oai(
        path = "/keys/:key_id",
        method = "delete",
        tag = "ApiTags::Keys",
        operation_id = "revoke_api_key"
    )]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        key_id: Path<String>,
    ) -> Result<RevokedKey, ApiError<{ status::NOT_FOUND }>> {
        let Some(id) = parse_id(&key_id) else {
            return Err(ApiError::not_found(KEY_NOT_FOUND));
        };
        match state.library.revoke_key(&caller, &id).await? {
            RevokeOutcome::Revoked | RevokeOutcome::AlreadyRevoked => Ok(RevokedKey::Revoked),
            RevokeOutcome::NotFound => Err(ApiError::not_found(KEY_NOT_FOUND)),
        }
    }
}
