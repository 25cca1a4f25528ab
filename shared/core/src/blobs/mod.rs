//! Original files, content-addressed by SHA-256. The embedded shape keeps them on local disk;
//! production puts them in S3. The pipeline and the API see only [`BlobStore`].

mod local;
mod s3;

use std::path::Path;

use async_trait::async_trait;

pub use local::LocalBlobStore;

/// Whether `name` may name a derived file: letters, digits, `-`, `_` and `.`, no `..`, so it
/// is safe as a path part and an object key.
pub fn is_derived_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
pub use s3::S3BlobStore;

use crate::domain::ContentHash;

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// A short name for logs and health checks (`local`, `s3`).
    fn kind(&self) -> &'static str;

    /// Stores the file at `source` under `hash`. Idempotent: storing the same content twice
    /// leaves one blob.
    async fn put_file(&self, hash: &ContentHash, source: &Path) -> anyhow::Result<()>;

    async fn exists(&self, hash: &ContentHash) -> anyhow::Result<bool>;

    /// Copies the blob into the local file `dest` (streamed, never whole in memory).
    async fn fetch_to_file(&self, hash: &ContentHash, dest: &Path) -> anyhow::Result<()>;

    /// Removes the blob and what was made from it; removing a missing blob is not an error.
    async fn delete(&self, hash: &ContentHash) -> anyhow::Result<()>;

    /// A file made from the blob `hash` (a page image) by its `name`, or `None` when it has
    /// not been made. Names are the caller's own ([`is_derived_name`]), never a user's.
    async fn get_derived(&self, hash: &ContentHash, name: &str) -> anyhow::Result<Option<Vec<u8>>>;

    async fn put_derived(&self, hash: &ContentHash, name: &str, bytes: &[u8]) -> anyhow::Result<()>;

    /// Readiness: can the store be reached and written?
    async fn check(&self) -> anyhow::Result<()>;
}
