//! Scratch space of one process: `<data_dir>/scratch/<id>/`, held for the process's life by
//! an exclusive lock on its `.lock` file. Uploads are streamed and jobs fetch their file
//! there; what a crash leaves behind (the lock goes with the process) is removed by the next
//! process that opens the scratch directory, while the directories of live processes sharing
//! it stay.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;

const LOCK: &str = ".lock";

/// The scratch directory of this process, removed when it is dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    /// Holds the lock: other processes see this directory in use while it is open.
    _lock: File,
}

impl ScratchDir {
    /// Makes this process's directory under `root`, then removes the directories of processes
    /// that are gone and anything else left there by an earlier version.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating scratch directory {}", root.display()))?;
        let path = root.join(crate::domain::new_id());
        std::fs::create_dir(&path).with_context(|| format!("creating scratch directory {}", path.display()))?;
        let lock = File::create(path.join(LOCK))?;
        lock.try_lock()
            .with_context(|| format!("locking scratch directory {}", path.display()))?;
        let scratch = Self { path, _lock: lock };
        let swept = scratch.sweep(root);
        if swept > 0 {
            tracing::info!(root = %root.display(), entries = swept, "removed scratch files left by stopped processes");
        }
        Ok(scratch)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes what no live process holds; returns how many entries went.
    fn sweep(&self, root: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(root) else {
            return 0;
        };
        let mut swept = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path == self.path || held_by_a_live_process(&path) {
                continue;
            }
            let removed = match entry.file_type() {
                Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            match removed {
                Ok(()) => swept += 1,
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "could not remove a stale scratch entry")
                }
            }
        }
        swept
    }
}

/// Whether `dir` is the scratch directory of a running process: its lock is taken.
fn held_by_a_live_process(dir: &Path) -> bool {
    let Ok(lock) = File::open(dir.join(LOCK)) else {
        return false;
    };
    matches!(lock.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %err, "could not remove the scratch directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_crash_left_goes_and_a_live_process_keeps_its_own() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        // A stopped process's directory (its lock file free), an upload of an older version.
        let stopped = root.path().join("0193-stopped");
        std::fs::create_dir(&stopped)?;
        std::fs::write(stopped.join(LOCK), "")?;
        std::fs::write(stopped.join("book.pdf"), "%PDF-")?;
        std::fs::write(root.path().join(".tmpA1b2C3"), "%PDF-")?;
        let live = ScratchDir::open(root.path())?;
        std::fs::write(live.path().join("upload"), "%PDF-")?;
        let other = ScratchDir::open(root.path())?;
        let mut names: Vec<PathBuf> = std::fs::read_dir(root.path())?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()?;
        names.sort();
        let mut expected = vec![live.path().to_path_buf(), other.path().to_path_buf()];
        expected.sort();
        assert_eq!(names, expected, "the live directory and the new one only");
        assert!(live.path().join("upload").exists());
        let gone = other.path().to_path_buf();
        drop(other);
        assert!(!gone.exists(), "a process's directory goes with it");
        Ok(())
    }
}
