use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;

use super::BlobStore;
use crate::domain::ContentHash;

/// Blobs under a directory, fanned out by the first two hex digits (`ab/abcdef….pdf`).
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).with_context(|| format!("creating blob directory {}", root.display()))?;
        Ok(Self { root })
    }

    fn path_of(&self, hash: &ContentHash) -> PathBuf {
        // A ContentHash is 64 lower-case hex digits, so it cannot escape the root.
        self.root.join(&hash.as_str()[..2]).join(format!("{hash}.pdf"))
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn put_file(&self, hash: &ContentHash, source: &Path) -> anyhow::Result<()> {
        let target = self.path_of(hash);
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            return Ok(());
        }
        let dir = target.parent().context("blob path has no parent")?;
        tokio::fs::create_dir_all(dir).await?;
        // Copy then rename, so a crash never leaves a half-written blob under the final name.
        let partial = dir.join(format!(".{hash}.{}.partial", crate::domain::new_id()));
        tokio::fs::copy(source, &partial)
            .await
            .with_context(|| format!("copying {} into the blob store", source.display()))?;
        tokio::fs::rename(&partial, &target).await?;
        Ok(())
    }

    async fn exists(&self, hash: &ContentHash) -> anyhow::Result<bool> {
        Ok(tokio::fs::try_exists(self.path_of(hash)).await?)
    }

    async fn fetch_to_file(&self, hash: &ContentHash, dest: &Path) -> anyhow::Result<()> {
        tokio::fs::copy(self.path_of(hash), dest)
            .await
            .with_context(|| format!("blob {hash} is missing from the local store"))?;
        Ok(())
    }

    async fn delete(&self, hash: &ContentHash) -> anyhow::Result<()> {
        match tokio::fs::remove_file(self.path_of(hash)).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn check(&self) -> anyhow::Result<()> {
        let probe = self.root.join(".ready-probe");
        tokio::fs::write(&probe, b"ok")
            .await
            .context("blob directory is not writable")?;
        tokio::fs::remove_file(&probe).await.ok();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_is_idempotent_and_fetch_returns_the_bytes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = LocalBlobStore::new(dir.path().join("blobs"))?;
        let source = dir.path().join("in.pdf");
        tokio::fs::write(&source, b"%PDF-1.4 test").await?;
        let hash = ContentHash::of(b"%PDF-1.4 test");
        store.put_file(&hash, &source).await?;
        store.put_file(&hash, &source).await?;
        assert!(store.exists(&hash).await?);
        let out = dir.path().join("out.pdf");
        store.fetch_to_file(&hash, &out).await?;
        assert_eq!(tokio::fs::read(&out).await?, b"%PDF-1.4 test");
        store.delete(&hash).await?;
        assert!(!store.exists(&hash).await?);
        store.delete(&hash).await?;
        Ok(())
    }
}
