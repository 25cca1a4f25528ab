//! API keys, for operators: make one (over every library, or some with a scope each), list
//! them, revoke one. Each change goes to the audit log.

use std::collections::{BTreeMap, HashMap};

use super::{Library, LibraryResult};
use crate::access::{ApiKeySecret, Principal, RevokeOutcome, Scope};
use crate::audit::AuditEvent;
use crate::db::entities::api_key;

/// A key as listed, with the libraries it reaches (`None`: every library).
#[derive(Debug, Clone)]
pub struct KeyListing {
    pub key: api_key::Model,
    pub libraries: Option<BTreeMap<String, Scope>>,
}

impl Library {
    /// Makes a key of `scope` over every library, or over `libraries` only with a scope
    /// each (none above `scope`; every library must exist).
    pub async fn create_key(
        &self,
        who: &Principal,
        name: &str,
        scope: Scope,
        libraries: Option<BTreeMap<String, Scope>>,
    ) -> LibraryResult<(KeyListing, ApiKeySecret)> {
        Self::operators_only(who, "managing API keys")?;
        if let Some(libraries) = &libraries {
            let ids: Vec<String> = libraries.keys().cloned().collect();
            self.check_libraries_exist(&ids).await?;
            if let Some((library, above)) = libraries.iter().find(|(_, granted)| !scope.includes(**granted)) {
                return Err(super::LibraryError::Invalid {
                    field: "libraries",
                    reason: format!("gives {above} in {library:?}, more than the key's own scope ({scope})"),
                });
            }
        }
        let (key, secret) = self
            .stores
            .api_keys
            .create_reaching(name, scope, libraries.as_ref())
            .await?;
        tracing::info!(key_id = %key.id, name = %key.name, scope = %key.scope, prefix = %key.prefix, by = %who.key_id, "API key created");
        self.audit(
            who,
            AuditEvent {
                action: "key.create",
                target: Some(&key.id),
                ..AuditEvent::default()
            },
        )
        .await?;
        Ok((KeyListing { key, libraries }, secret))
    }

    /// Every key, oldest first (revoked ones too when asked).
    pub async fn keys(&self, who: &Principal, include_revoked: bool) -> LibraryResult<Vec<KeyListing>> {
        Self::operators_only(who, "managing API keys")?;
        let mut access: HashMap<String, BTreeMap<String, Scope>> = self.stores.api_keys.all_library_access().await?;
        Ok(self
            .stores
            .api_keys
            .list()
            .await?
            .into_iter()
            .filter(|key| include_revoked || key.revoked_at.is_none())
            .map(|key| {
                let libraries = (!key.all_libraries).then(|| access.remove(&key.id).unwrap_or_default());
                KeyListing { key, libraries }
            })
            .collect())
    }

    pub async fn revoke_key(&self, who: &Principal, id: &str) -> LibraryResult<RevokeOutcome> {
        Self::operators_only(who, "managing API keys")?;
        let outcome = self.stores.api_keys.revoke(id).await?;
        if outcome == RevokeOutcome::Revoked {
            tracing::info!(key_id = %id, by = %who.key_id, "API key revoked");
            self.audit(
                who,
                AuditEvent {
                    action: "key.revoke",
                    target: Some(id),
                    ..AuditEvent::default()
                },
            )
            .await?;
        }
        Ok(outcome)
    }
}
