//! The `api_keys` table: make, list, look up and revoke keys. Shared by every replica through
//! the database, so a key made or revoked on one is known to all at their next request.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set};
use subtle::ConstantTimeEq;

use super::{ApiKeySecret, Scope, key_hash};
use crate::db::entities::{api_key, api_key_library};

/// `last_used_at` is written at most this often per key, so that reading does not turn
/// every request into a database write.
const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// What `revoke` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    /// It was revoked before: nothing changed.
    AlreadyRevoked,
    NotFound,
}

#[derive(Clone)]
pub struct ApiKeyStore {
    db: DatabaseConnection,
}

impl ApiKeyStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Makes a key over every library; the secret is returned here and never again.
    pub async fn create(&self, name: &str, scope: Scope) -> anyhow::Result<(api_key::Model, ApiKeySecret)> {
        self.create_reaching(name, scope, None).await
    }

    /// Makes a key of `scope` (the most it may do anywhere) over every library, or, with
    /// `libraries`, over those only, with a scope each; the secret is returned here and
    /// never again. The caller checks that the libraries exist.
    pub async fn create_reaching(
        &self,
        name: &str,
        scope: Scope,
        libraries: Option<&BTreeMap<String, Scope>>,
    ) -> anyhow::Result<(api_key::Model, ApiKeySecret)> {
        let secret = ApiKeySecret::generate()?;
        let id = crate::domain::new_id();
        let row = api_key::ActiveModel {
            id: Set(id.clone()),
            name: Set(name.to_owned()),
            scope: Set(scope.as_str().to_owned()),
            key_hash: Set(key_hash(secret.expose())),
            prefix: Set(secret.display_prefix()),
            created_at: Set(Utc::now()),
            last_used_at: Set(None),
            revoked_at: Set(None),
            all_libraries: Set(libraries.is_none()),
        };
        let txn = crate::db::begin_write(&self.db).await?;
        let key = row.insert(&txn).await?;
        for (library, scope) in libraries.into_iter().flatten() {
            api_key_library::ActiveModel {
                key_id: Set(id.clone()),
                library_id: Set(library.clone()),
                scope: Set(scope.as_str().to_owned()),
            }
            .insert(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok((key, secret))
    }

    /// The libraries a key restricted to libraries reaches, with its scope in each (rows of
    /// an unknown scope are left out, and logged).
    pub async fn libraries_of(&self, key_id: &str) -> anyhow::Result<BTreeMap<String, Scope>> {
        let rows = api_key_library::Entity::find()
            .filter(api_key_library::Column::KeyId.eq(key_id))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(library_access)
            .map(|(_, access)| access)
            .collect())
    }

    /// Every key's libraries, for key lists: key id -> library -> scope.
    pub async fn all_library_access(&self) -> anyhow::Result<HashMap<String, BTreeMap<String, Scope>>> {
        let mut access: HashMap<String, BTreeMap<String, Scope>> = HashMap::new();
        let rows = api_key_library::Entity::find().all(&self.db).await?;
        for (key_id, (library, scope)) in rows.into_iter().filter_map(library_access) {
            access.entry(key_id).or_default().insert(library, scope);
        }
        Ok(access)
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list(&self) -> anyhow::Result<Vec<api_key::Model>> {
        Ok(api_key::Entity::find()
            .order_by_asc(api_key::Column::CreatedAt)
            .order_by_asc(api_key::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// The live (not revoked) key with this hash, its `last_used_at` brought up to date.
    pub async fn find_live(&self, hash: &str) -> anyhow::Result<Option<api_key::Model>> {
        let Some(mut key) = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(hash))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        // The lookup compared hashes in the database; compare again without an early exit so
        // that no code path here depends on how much of the hash matched.
        if !bool::from(key.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        let now = Utc::now();
        let stale = key
            .last_used_at
            .is_none_or(|used| (now - used).to_std().is_ok_and(|age| age >= LAST_USED_RESOLUTION));
        if stale {
            // Best effort: a failed bookkeeping write must not refuse a valid key.
            let touched = api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
                .filter(api_key::Column::Id.eq(key.id.clone()))
                .exec(&self.db)
                .await;
            match touched {
                Ok(_) => key.last_used_at = Some(now),
                Err(err) => tracing::warn!(key_id = %key.id, error = %err, "cannot record the API key's last use"),
            }
        }
        Ok(Some(key))
    }

    /// Revokes a key for good: requests with it are refused from now on, on every replica.
    pub async fn revoke(&self, id: &str) -> anyhow::Result<RevokeOutcome> {
        let result = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        if result.rows_affected > 0 {
            return Ok(RevokeOutcome::Revoked);
        }
        let exists = api_key::Entity::find_by_id(id).one(&self.db).await?.is_some();
        Ok(if exists {
            RevokeOutcome::AlreadyRevoked
        } else {
            RevokeOutcome::NotFound
        })
    }

    /// Whether some operator key (admin over every library) is still live, the bootstrap key aside.
    pub async fn has_live_admin(&self) -> anyhow::Result<bool> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::Scope.eq(Scope::Admin.as_str()))
            .filter(api_key::Column::AllLibraries.eq(true))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(&self.db)
            .await?
            .is_some())
    }
}

/// A stored access row as (key id, (library, scope)); a row of an unknown scope is left out,
/// and logged.
fn library_access(row: api_key_library::Model) -> Option<(String, (String, Scope))> {
    match row.scope.parse::<Scope>() {
        Ok(scope) => Some((row.key_id, (row.library_id, scope))),
        Err(_) => {
            tracing::error!(key_id = %row.key_id, library = %row.library_id, scope = %row.scope, "stored library access has an unknown scope; left out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> anyhow::Result<(tempfile::TempDir, ApiKeyStore)> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
        let db = crate::db::connect(&url, 2, true).await?;
        Ok((dir, ApiKeyStore::new(db)))
    }

    #[tokio::test]
    async fn a_key_is_found_by_its_hash_until_it_is_revoked() -> anyhow::Result<()> {
        let (_dir, store) = store().await?;
        assert!(!store.has_live_admin().await?);
        let (key, secret) = store.create("ci", Scope::Write).await?;
        assert_ne!(key.key_hash, secret.expose(), "only the hash is stored");
        assert!(secret.expose().starts_with(&key.prefix));

        let found = store.find_live(&key_hash(secret.expose())).await?;
        assert_eq!(found.as_ref().map(|k| k.id.as_str()), Some(key.id.as_str()));
        assert!(found.and_then(|k| k.last_used_at).is_some(), "first use recorded");
        assert!(store.find_live(&key_hash("hbi_wrong")).await?.is_none());
        assert!(!store.has_live_admin().await?, "a write key is no admin");

        assert_eq!(store.revoke(&key.id).await?, RevokeOutcome::Revoked);
        assert_eq!(store.revoke(&key.id).await?, RevokeOutcome::AlreadyRevoked);
        assert_eq!(store.revoke("nope").await?, RevokeOutcome::NotFound);
        assert!(store.find_live(&key_hash(secret.expose())).await?.is_none());
        let listed = store.list().await?;
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked_at.is_some());
        Ok(())
    }
}
