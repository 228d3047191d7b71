//! State files, the blocking half: one pretty-printed JSON file per run in
//! the state directory, readable by (and from) the TypeScript original.
//!
//! Every write is temp file + fsync + rename, under a directory-wide lock so
//! concurrent read-modify-write updates from many processes are never lost.
//! Files are 0600 in a 0700 directory; env values and input are never stored.
//! These functions block (locks, fsync): async code reaches them through
//! [`super::Store`], which runs them on blocking threads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde_json::Value;

use crate::errors::Error;
use crate::record::RunRecord;

/// Only run ids name state files: an id can never point outside the dir.
pub fn file_for(dir: &Path, id: &str) -> Option<PathBuf> {
    let safe = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    safe.then(|| dir.join(format!("{id}.json")))
}

fn invalid_id() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "invalid run id")
}

/// `<id>.log`: the output kept once the run's container is gone.
pub fn log_file(dir: &Path, id: &str) -> io::Result<PathBuf> {
    file_for(dir, id)
        .map(|p| p.with_extension("log"))
        .ok_or_else(invalid_id)
}

pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Holds the directory-wide write lock while alive.
pub struct DirLock(File);

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

pub fn lock_dir(dir: &Path) -> io::Result<DirLock> {
    ensure_dir(dir)?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(".lock"))?;
    f.lock_exclusive()?;
    Ok(DirLock(f))
}

/// Writes `bytes` to `path` through a temp file, fsync and rename, then
/// makes the rename itself durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.{:08x}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn encode(record: &RunRecord) -> io::Result<Vec<u8>> {
    let mut v = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    v.push(b'\n');
    Ok(v)
}

/// Writes a run's record (a new one, or over an old one) under the lock.
pub fn write(dir: &Path, record: &RunRecord) -> io::Result<()> {
    let path = file_for(dir, &record.id).ok_or_else(invalid_id)?;
    let _lock = lock_dir(dir)?;
    write_atomic(&path, &encode(record)?)
}

/// The record of `id`: `None` when there is none or it is not a record.
pub fn read(dir: &Path, id: &str) -> Option<RunRecord> {
    let bytes = fs::read(file_for(dir, id)?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The file of `id` as JSON, exactly as stored (for `readState`): `None`
/// when there is no such file; a file that is not a JSON object is an
/// error, as the original throws for it.
pub fn read_json(dir: &Path, id: &str) -> Result<Option<Value>, Error> {
    let Some(path) = file_for(dir, id) else {
        return Ok(None);
    };
    let corrupt = |path: PathBuf, reason: String| Error::StateCorrupt { path, reason };
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(corrupt(path, e.to_string())),
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(Some(v)),
        Ok(_) => Err(corrupt(path, "not a JSON object".into())),
        Err(e) => Err(corrupt(path, e.to_string())),
    }
}

/// Every readable state as JSON, oldest start first; corrupt and temp
/// files are skipped.
pub fn list_json(dir: &Path) -> Vec<Value> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Value)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".json")?;
            if name.starts_with('.') || file_for(dir, id).is_none() {
                return None;
            }
            let v: Value = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
            let ok = v.get("id").and_then(Value::as_str).is_some()
                && v.get("status").and_then(Value::as_str).is_some();
            ok.then(|| (v["startedAt"].as_str().unwrap_or("").to_string(), v))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, v)| v).collect()
}

/// Every readable record in `dir`.
pub fn list(dir: &Path) -> Vec<RunRecord> {
    list_json(dir)
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

/// Read-modify-write under the directory lock. `f` returns false to leave
/// the file untouched. Returns the record as written (or as found), and
/// whether it was written; `None` when there is no record.
pub fn update(
    dir: &Path,
    id: &str,
    f: impl FnOnce(&mut RunRecord) -> bool,
) -> io::Result<Option<(RunRecord, bool)>> {
    let path = file_for(dir, id).ok_or_else(invalid_id)?;
    let _lock = lock_dir(dir)?;
    let Some(mut record) = read(dir, id) else {
        return Ok(None);
    };
    let write = f(&mut record);
    if write {
        write_atomic(&path, &encode(&record)?)?;
    }
    Ok(Some((record, write)))
}

/// Removes a state file and the output kept beside it (`<id>.log`, and
/// the parts of one being written); absent is fine.
pub fn delete(dir: &Path, id: &str) -> io::Result<()> {
    let Some(path) = file_for(dir, id) else {
        return Ok(());
    };
    let _lock = lock_dir(dir)?;
    let gone = |r: io::Result<()>| match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    gone(fs::remove_file(&path))?;
    gone(fs::remove_file(path.with_extension("log")))?;
    let parts = format!(".{id}.log.");
    for e in fs::read_dir(dir)?.filter_map(Result::ok) {
        if e.file_name().to_string_lossy().starts_with(&parts) {
            gone(fs::remove_file(e.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunStatus;
    use crate::time::Stamp;

    pub(crate) fn sample(id: &str) -> RunRecord {
        RunRecord::new(
            id,
            "busybox",
            "/app",
            Stamp::parse("2026-04-27T10:15:00.000Z"),
        )
    }

    #[test]
    fn ids_cannot_escape_the_directory() {
        let d = Path::new("/state");
        assert!(file_for(d, "../etc/passwd").is_none());
        assert!(file_for(d, "a/b").is_none());
        assert!(file_for(d, "").is_none());
        assert_eq!(
            file_for(d, "light-runner-0123456789ab").unwrap(),
            Path::new("/state/light-runner-0123456789ab.json")
        );
    }

    #[test]
    fn writes_are_atomic_private_and_listed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        let s = sample("light-runner-0123456789ab");
        write(&dir, &s).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("light-runner-0123456789ab.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::write(dir.join("light-runner-bad000000000.json"), "{ torn").unwrap();
        fs::write(dir.join(".light-runner-0123456789ab.json.1.0.tmp"), "{}").unwrap();
        assert_eq!(list_json(&dir).len(), 1);
        assert!(read_json(&dir, "light-runner-bad000000000").is_err());
        assert_eq!(read_json(&dir, "light-runner-000000000000").unwrap(), None);
        let (after, written) = update(&dir, "light-runner-0123456789ab", |s| {
            s.status = RunStatus::Exited;
            s.exit_code = Some(0);
            true
        })
        .unwrap()
        .unwrap();
        assert!(written);
        assert_eq!(read(&dir, "light-runner-0123456789ab").unwrap(), after);
        let text = fs::read_to_string(dir.join("light-runner-0123456789ab.json")).unwrap();
        assert!(
            text.contains("\n  \"status\": \"exited\""),
            "pretty-printed: {text}"
        );
        let (_, written) = update(&dir, "light-runner-0123456789ab", |_| false)
            .unwrap()
            .unwrap();
        assert!(!written);
        assert!(update(&dir, "light-runner-000000000000", |_| true)
            .unwrap()
            .is_none());
        delete(&dir, "light-runner-0123456789ab").unwrap();
        delete(&dir, "light-runner-0123456789ab").unwrap();
        assert!(read(&dir, "light-runner-0123456789ab").is_none());
    }
}
