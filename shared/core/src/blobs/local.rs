use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use async_trait::async_trait;

use super::BlobStore;
use crate::domain::ContentHash;

/// A `.partial` copy not written to for this long belongs to no running copy: a process
/// stopped in the middle of it. (Copies of another process sharing the directory, a live
/// `hbi worker` beside `hbi api`, write to theirs continuously.)
const STALE_PARTIAL: Duration = Duration::from_secs(10 * 60);

/// Blobs under a directory, fanned out by the first two hex digits (`ab/abcdef….pdf`).
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).with_context(|| format!("creating blob directory {}", root.display()))?;
        let swept = sweep_partials(&root, SystemTime::now());
        if swept > 0 {
            tracing::info!(root = %root.display(), files = swept, "removed partial blob copies left by stopped processes");
        }
        Ok(Self { root })
    }

    fn derived_dir(&self, hash: &ContentHash) -> PathBuf {
        self.root.join("derived").join(hash.as_str())
    }

    fn path_of(&self, hash: &ContentHash) -> PathBuf {
        // A ContentHash is 64 lower-case hex digits, so it cannot escape the root.
        self.root.join(&hash.as_str()[..2]).join(format!("{hash}.pdf"))
    }
}

/// Removes the `.partial` copies under `root` (one level of shards down) not written to for
/// [`STALE_PARTIAL`] before `now`; returns how many went.
fn sweep_partials(root: &Path, now: SystemTime) -> usize {
    let Ok(shards) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut swept = 0;
    for shard in shards
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
    {
        let Ok(files) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for file in files.flatten() {
            let stale = file
                .metadata()
                .and_then(|metadata| metadata.modified())
                .is_ok_and(|modified| now.duration_since(modified).is_ok_and(|age| age > STALE_PARTIAL));
            if stale && file.file_name().to_string_lossy().ends_with(".partial") {
                match std::fs::remove_file(file.path()) {
                    Ok(()) => swept += 1,
                    Err(err) => {
                        tracing::warn!(path = %file.path().display(), error = %err, "could not remove a partial blob copy")
                    }
                }
            }
        }
    }
    swept
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
        match tokio::fs::remove_dir_all(self.derived_dir(hash)).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
        match tokio::fs::remove_file(self.path_of(hash)).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn get_derived(&self, hash: &ContentHash, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        anyhow::ensure!(super::is_derived_name(name), "not a derived file's name: {name:?}");
        match tokio::fs::read(self.derived_dir(hash).join(name)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn put_derived(&self, hash: &ContentHash, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        anyhow::ensure!(super::is_derived_name(name), "not a derived file's name: {name:?}");
        let dir = self.derived_dir(hash);
        tokio::fs::create_dir_all(&dir).await?;
        // Written then renamed: a reader never sees half a file.
        let partial = dir.join(format!(".{name}.{}.partial", crate::domain::new_id()));
        tokio::fs::write(&partial, bytes).await?;
        tokio::fs::rename(&partial, dir.join(name)).await?;
        Ok(())
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

    #[test]
    fn partial_copies_left_by_a_crash_go_at_start() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let shard = dir.path().join("ab");
        std::fs::create_dir_all(&shard)?;
        let left = shard.join(format!(".{}.0193-crashed.partial", "ab".repeat(32)));
        let copying = shard.join(format!(".{}.0193-copying.partial", "ab".repeat(32)));
        let blob = shard.join(format!("{}.pdf", "ab".repeat(32)));
        for path in [&left, &copying, &blob] {
            std::fs::write(path, b"%PDF-")?;
        }
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for path in [&left, &blob] {
            std::fs::File::options()
                .write(true)
                .open(path)?
                .set_modified(an_hour_ago)?;
        }
        LocalBlobStore::new(dir.path())?;
        assert!(!left.exists(), "the crashed copy is gone");
        assert!(copying.exists(), "a copy being written stays");
        assert!(blob.exists(), "blobs stay");
        Ok(())
    }

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
