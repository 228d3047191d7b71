//! What outlives a run's process on disk: state files and kept output, in
//! one state directory that [`Store`] owns.
//!
//! The disk work blocks (a directory lock, fsync, rename), so every async
//! caller goes through [`Store`]'s async methods, which run it on tokio's
//! blocking threads: a slow disk never stalls the workers that carry every
//! run's events. The `*_now` methods block the caller; they exist for the
//! calls the contract makes synchronous (`run()` writes the record before it
//! returns; `attach`, `listStates`, `readState`, `deleteState` and
//! `cleanupOldStates` are synchronous in JS).

pub mod notify;
pub mod output;
pub mod state;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::errors::Error;
use crate::record::RunRecord;

/// The state directory of the runs of one context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    dir: Arc<PathBuf>,
}

/// Runs blocking disk work off the async workers; a panic in it goes on
/// unwinding in the caller (whose run turns it into an error).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("state store task failed: {e}"),
        },
    }
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store {
            dir: Arc::new(dir.into()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<id>.log`: where the output of run `id` is kept.
    pub fn log_file(&self, id: &str) -> io::Result<PathBuf> {
        state::log_file(&self.dir, id)
    }

    /// Where the use of cache images is recorded (`<stateDir>/.cache-use`).
    pub fn cache_uses(&self) -> PathBuf {
        self.dir.join(".cache-use")
    }

    /// Writes a new run's record now (inside `run()`, before any async work).
    pub fn create_now(&self, record: &RunRecord) -> Result<(), Error> {
        state::write(&self.dir, record).map_err(|source| Error::StateWrite {
            dir: self.dir.to_path_buf(),
            source,
        })
    }

    pub fn read_now(&self, id: &str) -> Option<RunRecord> {
        state::read(&self.dir, id)
    }

    /// The file of `id` as stored (`readState`); a corrupt one is an error.
    pub fn read_json_now(&self, id: &str) -> Result<Option<Value>, Error> {
        state::read_json(&self.dir, id)
    }

    /// Every readable state as stored (`listStates`).
    pub fn list_json_now(&self) -> Vec<Value> {
        state::list_json(&self.dir)
    }

    pub fn list_now(&self) -> Vec<RunRecord> {
        state::list(&self.dir)
    }

    /// Removes a state and its kept output (`deleteState`).
    pub fn delete_now(&self, id: &str) -> io::Result<()> {
        state::delete(&self.dir, id)
    }

    pub async fn read(&self, id: &str) -> Option<RunRecord> {
        let (dir, id) = (self.dir.clone(), id.to_string());
        blocking(move || state::read(&dir, &id)).await
    }

    pub async fn list(&self) -> Vec<RunRecord> {
        let dir = self.dir.clone();
        blocking(move || state::list(&dir)).await
    }

    /// Read-modify-write under the directory lock (see [`state::update`]).
    pub async fn update(
        &self,
        id: &str,
        f: impl FnOnce(&mut RunRecord) -> bool + Send + 'static,
    ) -> io::Result<Option<(RunRecord, bool)>> {
        let (dir, id) = (self.dir.clone(), id.to_string());
        blocking(move || state::update(&dir, &id, f)).await
    }

    /// [`Store::update`] for callers that only need the record as it is
    /// now (`None`: no record, or the disk failed).
    pub async fn change(
        &self,
        id: &str,
        f: impl FnOnce(&mut RunRecord) -> bool + Send + 'static,
    ) -> Option<RunRecord> {
        self.update(id, f).await.ok().flatten().map(|(r, _)| r)
    }

    pub async fn delete(&self, id: &str) -> io::Result<()> {
        let (dir, id) = (self.dir.clone(), id.to_string());
        blocking(move || state::delete(&dir, &id)).await
    }

    /// Runs other blocking disk work of this store off the async workers.
    pub async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        blocking(f).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunStatus;
    use crate::time::Stamp;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn updates_run_off_the_worker_and_keep_the_format() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("s"));
        let id = "light-runner-0123456789ab";
        store
            .create_now(&RunRecord::new(id, "i", "/app", Stamp::at(0)))
            .unwrap();
        let worker = std::thread::current().id();
        let (r, written) = store
            .update(id, move |r| {
                assert_ne!(std::thread::current().id(), worker, "on a blocking thread");
                r.status = RunStatus::Failed;
                true
            })
            .await
            .unwrap()
            .unwrap();
        assert!(written);
        assert_eq!(store.read(id).await.unwrap(), r);
        assert_eq!(store.list().await.len(), 1);
        assert_eq!(store.list_json_now()[0]["status"], "failed");
        store.delete(id).await.unwrap();
        assert!(store.read_now(id).is_none());
    }
}
