//! Who may call the API: API keys with a scope, stored hashed ([`keys`]), the bootstrap
//! admin key, and per-client rate limits ([`rate_limit`]). The HTTP side (which header,
//! which route needs which scope, the 401/403/429 answers) is the API crate's; this module
//! knows keys, scopes and counts only.
//!
//! A key is `hbi_` followed by 64 hex digits (256 random bits from the operating system).
//! Only its SHA-256 is stored, with its first characters ([`DISPLAY_PREFIX_CHARS`]) to tell
//! keys apart in lists. Hashing without a salt is enough here because the keys are random
//! and long: there is no dictionary to try.

pub mod keys;
pub mod rate_limit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Settings;
pub use keys::{ApiKeyStore, RevokeOutcome};
pub use rate_limit::{Client, RateLimitDecision, RateLimiter};

/// What a key may do. Each scope includes the ones before it: admin implies write implies read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read books, jobs, search results.
    Read,
    /// Add books and uploads, cancel and retry jobs, ask questions.
    Write,
    /// Tune the live knobs, recover dead jobs, delete, manage keys.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Whether a key of this scope may do what `needed` guards.
    pub fn includes(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
            .with_context(|| format!("unknown scope `{text}`: read, write or admin"))
    }
}

/// The start of every key HBI makes, so that a leaked key is recognisable (secret scanners).
pub const KEY_PREFIX: &str = "hbi_";

/// Characters of a key kept in clear to tell keys apart: the prefix and 8 hex digits
/// (32 of the 256 random bits; the other 224 stay secret).
pub const DISPLAY_PREFIX_CHARS: usize = KEY_PREFIX.len() + 8;

/// A key in clear: only ever shown once, to whoever made it. Its `Debug` hides it, so it
/// cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// A new random key.
    pub fn generate() -> anyhow::Result<Self> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|err| anyhow::anyhow!("no random numbers from the system: {err}"))?;
        Ok(Self(format!("{KEY_PREFIX}{}", hex::encode(random))))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The non-secret start of the key, shown in key lists.
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(DISPLAY_PREFIX_CHARS).collect()
    }
}

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret(***)")
    }
}

/// SHA-256 of a presented key.
fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// SHA-256 of a key as stored: lower-case hex.
pub fn key_hash(key: &str) -> String {
    hex::encode(digest(key))
}

/// Which libraries a key reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every library, with the key's own scope: operators' keys, and every key made before
    /// libraries existed.
    Everything,
    /// Only these libraries, each with the scope the key has there.
    Libraries(BTreeMap<String, Scope>),
}

/// Who a request comes from, once its key is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (`bootstrap` for the bootstrap key, `local` when authentication is off):
    /// what rate limits and logs name, never the key itself.
    pub key_id: String,
    /// The most the key may do anywhere (for a key restricted to libraries, its highest
    /// scope among them): what each route checks before a use case checks the library.
    pub scope: Scope,
    pub reach: Reach,
}

impl Principal {
    /// Id of the key given by `HBI_BOOTSTRAP_API_KEY`.
    pub const BOOTSTRAP_ID: &'static str = "bootstrap";

    /// Everyone, when authentication is turned off for local use.
    pub fn local() -> Self {
        Self::operator("local")
    }

    /// An admin key over every library.
    pub fn operator(key_id: &str) -> Self {
        Self {
            key_id: key_id.to_owned(),
            scope: Scope::Admin,
            reach: Reach::Everything,
        }
    }

    /// Whether this is an operator: the admin scope over every library (the bootstrap key,
    /// admin keys not restricted to libraries). Only operators see the settings, the
    /// dead-letter queue, keys, webhooks and the audit log, and make or remove libraries.
    pub fn is_operator(&self) -> bool {
        self.scope == Scope::Admin && self.reach == Reach::Everything
    }

    /// What the key may do in `library`; `None` where it may not even read it.
    pub fn scope_in(&self, library: &str) -> Option<Scope> {
        match &self.reach {
            Reach::Everything => Some(self.scope),
            Reach::Libraries(libraries) => libraries.get(library).copied(),
        }
    }

    /// The libraries the key may read; `None` for every library.
    pub fn readable_libraries(&self) -> Option<Vec<String>> {
        match &self.reach {
            Reach::Everything => None,
            Reach::Libraries(libraries) => Some(libraries.keys().cloned().collect()),
        }
    }
}

/// Checks presented keys: the bootstrap key in memory (so that every replica accepts it
/// without a write), every other key by its hash in the database.
#[derive(Clone)]
pub struct Authenticator {
    store: ApiKeyStore,
    bootstrap: Option<[u8; 32]>,
}

impl Authenticator {
    /// `bootstrap_key` absent: no bootstrap key.
    pub fn new(store: ApiKeyStore, bootstrap_key: Option<&SecretString>) -> Self {
        Self {
            store,
            bootstrap: bootstrap_key.map(|key| digest(key.expose_secret())),
        }
    }

    /// The principal of a presented key; `None` when no live key matches it.
    pub async fn authenticate(&self, presented: &str) -> anyhow::Result<Option<Principal>> {
        let presented_digest = digest(presented);
        if let Some(bootstrap) = &self.bootstrap
            && bool::from(bootstrap.ct_eq(&presented_digest))
        {
            return Ok(Some(Principal::operator(Principal::BOOTSTRAP_ID)));
        }
        let Some(key) = self.store.find_live(&hex::encode(presented_digest)).await? else {
            return Ok(None);
        };
        let Ok(scope) = key.scope.parse::<Scope>() else {
            tracing::error!(key_id = %key.id, scope = %key.scope, "stored API key has an unknown scope; refused");
            return Ok(None);
        };
        let reach = if key.all_libraries {
            Reach::Everything
        } else {
            Reach::Libraries(self.store.libraries_of(&key.id).await?)
        };
        Ok(Some(Principal {
            key_id: key.id,
            scope,
            reach,
        }))
    }

    pub fn store(&self) -> &ApiKeyStore {
        &self.store
    }
}

/// Where the first start of an instance without any admin key writes the one it makes.
pub fn admin_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-api-key")
}

/// Run once at the start of a process that serves the API. Authentication off: a warning.
/// On, without `HBI_BOOTSTRAP_API_KEY` and without any live admin key in the database (a
/// fresh instance, or every admin key revoked): makes an admin key and writes it to
/// [`admin_key_path`], readable by the owner only, so that whoever started HBI can get in.
/// Logs the file's path, never the key. Returns the path when it wrote one.
pub async fn prepare(settings: &Settings, store: &ApiKeyStore) -> anyhow::Result<Option<PathBuf>> {
    if !settings.auth.enabled {
        tracing::warn!(
            bind = %settings.server.bind,
            "authentication is OFF (auth.enabled = false): every endpoint is open to anyone who can reach this address; for local use only"
        );
        return Ok(None);
    }
    if settings.auth.bootstrap_api_key.is_some() {
        tracing::info!("API keys required; the bootstrap admin key from HBI_BOOTSTRAP_API_KEY is accepted");
        return Ok(None);
    }
    if store.has_live_admin().await? {
        tracing::info!("API keys required");
        return Ok(None);
    }
    let path = admin_key_path(&settings.storage.data_dir);
    let (key, secret) = store.create("admin (first start)", Scope::Admin).await?;
    write_owner_only(&path, secret.expose()).await?;
    tracing::warn!(
        path = %path.display(),
        key_id = %key.id,
        prefix = %key.prefix,
        "no admin API key existed: made one and wrote it to this file (readable by its owner only); send it as X-API-Key or in Swagger UI's Authorize"
    );
    Ok(Some(path))
}

/// Writes `contents` to `path` with mode 0600, replacing it whole: a temporary file of a
/// random name beside it, created exclusively (never through a link someone planted), then
/// renamed over `path`.
async fn write_owner_only(path: &Path, contents: &str) -> anyhow::Result<()> {
    let path = path.to_path_buf();
    let contents = format!("{contents}\n");
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::io::Write;

        let dir = path.parent().context("the key file has no directory")?;
        // tempfile creates it with O_EXCL and mode 0600.
        let mut temporary = tempfile::Builder::new()
            .prefix(".admin-api-key.")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        temporary.write_all(contents.as_bytes())?;
        temporary.as_file().sync_all()?;
        temporary
            .persist(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Someone who can write to the data directory and plants a link where the key file's
    /// temporary file would go gets neither the key nor a file of theirs overwritten.
    #[tokio::test]
    async fn the_key_file_is_written_through_no_planted_link() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;

        let data_dir = tempfile::tempdir()?;
        let elsewhere = tempfile::tempdir()?;
        let victim = elsewhere.path().join("victim");
        std::fs::write(&victim, "not yours")?;
        let path = admin_key_path(data_dir.path());
        for guess in [
            path.with_extension(format!("tmp-{}", std::process::id())),
            path.with_extension("tmp"),
        ] {
            std::os::unix::fs::symlink(&victim, guess)?;
        }
        write_owner_only(&path, "hbi_secret").await?;
        assert_eq!(std::fs::read_to_string(&victim)?, "not yours");
        let metadata = std::fs::symlink_metadata(&path)?;
        assert!(metadata.file_type().is_file(), "{metadata:?}");
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path)?, "hbi_secret\n");
        Ok(())
    }

    #[test]
    fn scopes_include_the_lower_ones_only() {
        assert!(Scope::Admin.includes(Scope::Write));
        assert!(Scope::Admin.includes(Scope::Read));
        assert!(Scope::Write.includes(Scope::Read));
        assert!(!Scope::Write.includes(Scope::Admin));
        assert!(!Scope::Read.includes(Scope::Write));
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().ok(), Some(scope));
        }
        assert!("root".parse::<Scope>().is_err());
    }

    #[test]
    fn keys_are_long_random_and_hidden_from_debug() -> anyhow::Result<()> {
        let first = ApiKeySecret::generate()?;
        let second = ApiKeySecret::generate()?;
        assert_ne!(first, second);
        assert!(first.expose().starts_with(KEY_PREFIX));
        assert_eq!(first.expose().len(), KEY_PREFIX.len() + 64);
        assert_eq!(first.display_prefix().len(), DISPLAY_PREFIX_CHARS);
        assert!(first.expose().starts_with(&first.display_prefix()));
        assert!(!format!("{first:?}").contains(first.expose()));
        assert_eq!(key_hash(first.expose()).len(), 64);
        Ok(())
    }
}
