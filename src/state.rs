//! State files of detached runs: one pretty-printed JSON file per run in the
//! state directory, readable by (and from) the TypeScript original.
//!
//! Every write is temp file + fsync + rename, under a directory-wide lock so
//! concurrent read-modify-write updates from many processes are never lost.
//! Files are 0600 in a 0700 directory; env values and input are never stored.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::extract::{ExtractResult, ExtractSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Exited,
    Cancelled,
    Failed,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        self != Status::Running
    }
}

/// Where the run's launcher lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    pub hostname: String,
    pub pid: u32,
}

impl HostIdentity {
    pub fn current() -> Self {
        HostIdentity {
            hostname: hostname(),
            pid: std::process::id(),
        }
    }

    /// True when this identity is a live process on this machine. A process
    /// on another machine cannot be checked: `None`.
    pub fn is_alive(&self) -> Option<bool> {
        if self.hostname != hostname() {
            return None;
        }
        // SAFETY: signal 0 only checks that the pid exists.
        let r = unsafe { libc::kill(self.pid as libc::pid_t, 0) };
        Some(r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
    }
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A host that claimed the finalization of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    #[serde(flatten)]
    pub host: HostIdentity,
    /// Refreshed while the finalizer works (ms since epoch).
    pub heartbeat: i64,
}

/// One detached run as recorded on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    pub id: String,
    pub container: String,
    pub volume: String,
    pub image: String,
    pub workdir: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entrypoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub command: Option<String>,
    /// Milliseconds as the launcher wrote it (the original may write a
    /// negative or fractional number: kept exactly).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timeout: Option<serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub extract: Option<Vec<ExtractSpec>>,
    pub started_at: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cancelled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timed_out: Option<bool>,
    /// The memory cap killed the container.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub oom_killed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub extracted: Option<Vec<ExtractResult>>,
    /// ISO time after which any host kills the run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deadline: Option<String>,
    /// The launcher.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host: Option<HostIdentity>,
    /// False for an attached run (it lives and dies with its host). Absent
    /// in files of the original, which persisted detached runs only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detached: Option<bool>,
    /// Build steps of the run (`RunRequest.run`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run: Option<Vec<String>>,
    /// The image the container ran when it differs from `image` (the
    /// cached build of `run`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub built_image: Option<String>,
    /// `setup` while the launcher prepares the container, then `started`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub finalizing: Option<Claim>,
    /// Why a run failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// The daemon lost the run's container (`removed`, `daemon-stopped`,
    /// `daemon-unreachable`): the run failed with `CONTAINER_LOST`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lost: Option<crate::errors::Lost>,
    /// When a host cancelled or stopped the run (ISO time).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cancelled_at: Option<String>,
    /// When watchers may SIGKILL a cancelled run: a graceful `stop()` gets
    /// its grace before any host kills the container.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kill_after: Option<String>,
    /// Fields written by other versions are kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RunState {
    /// The shell command, whichever name recorded it.
    pub fn command_line(&self) -> Option<&str> {
        self.entrypoint.as_deref().or(self.command.as_deref())
    }

    pub fn is_setting_up(&self) -> bool {
        self.phase.as_deref() == Some("setup")
    }

    /// An attached run: its own host finalizes it, nobody else.
    pub fn is_attached(&self) -> bool {
        self.detached == Some(false)
    }

    /// The timeout in whole ms, if there is one (0 or negative: none).
    pub fn timeout_ms(&self) -> Option<u64> {
        let t = self.timeout.as_ref()?.as_f64()?;
        (t >= 1.0).then(|| t.min(u64::MAX as f64) as u64)
    }
}

/// `LIGHT_RUNNER_STATE_DIR`, read at call time, else `~/.light-runner/state`.
pub fn state_dir() -> PathBuf {
    match std::env::var("LIGHT_RUNNER_STATE_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
            PathBuf::from(home).join(".light-runner").join("state")
        }
    }
}

/// Only run ids name state files: an id can never point outside the dir.
fn file_for(dir: &Path, id: &str) -> Option<PathBuf> {
    let safe = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    safe.then(|| dir.join(format!("{id}.json")))
}

/// `<id>.log`: the output kept once the run's container is gone.
pub fn log_file(dir: &Path, id: &str) -> io::Result<PathBuf> {
    file_for(dir, id)
        .map(|p| p.with_extension("log"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid run id"))
}

pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
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

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn encode(state: &RunState) -> io::Result<Vec<u8>> {
    let mut v = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    v.push(b'\n');
    Ok(v)
}

/// Writes a new state file (inside `run()`, before any async work).
pub fn write_state(state: &RunState) -> io::Result<()> {
    write_state_in(&state_dir(), state)
}

pub fn write_state_in(dir: &Path, state: &RunState) -> io::Result<()> {
    let path = file_for(dir, &state.id)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid run id"))?;
    let _lock = lock_dir(dir)?;
    write_atomic(&path, &encode(state)?)
}

pub fn read_state_in(dir: &Path, id: &str) -> Option<RunState> {
    let path = file_for(dir, id)?;
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn read_state(id: &str) -> Option<RunState> {
    read_state_in(&state_dir(), id)
}

/// The state as JSON, exactly as stored (for `readState`): `None` when
/// there is no such file; a file that is not a state is an error, as the
/// original throws for it.
pub fn read_state_json(id: &str) -> crate::errors::Result<Option<Value>> {
    let Some(path) = file_for(&state_dir(), id) else {
        return Ok(None);
    };
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(crate::errors::Error::StateCorrupt {
                path,
                reason: e.to_string(),
            })
        }
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(Some(v)),
        Ok(_) => Err(crate::errors::Error::StateCorrupt {
            path,
            reason: "not a JSON object".into(),
        }),
        Err(e) => Err(crate::errors::Error::StateCorrupt {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Every readable state; corrupt and temp files are skipped.
pub fn list_states() -> Vec<Value> {
    list_states_in(&state_dir())
}

pub fn list_states_in(dir: &Path) -> Vec<Value> {
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

/// Typed view of every readable state in `dir`.
pub fn list_runs_in(dir: &Path) -> Vec<RunState> {
    list_states_in(dir)
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

/// Read-modify-write under the directory lock. `f` returns false to leave
/// the file untouched. Returns the state as written (or as found).
pub fn update<F>(dir: &Path, id: &str, f: F) -> io::Result<Option<RunState>>
where
    F: FnOnce(&mut RunState) -> bool,
{
    let path = file_for(dir, id)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid run id"))?;
    let _lock = lock_dir(dir)?;
    let Some(mut state) = read_state_in(dir, id) else {
        return Ok(None);
    };
    if f(&mut state) {
        write_atomic(&path, &encode(&state)?)?;
    }
    Ok(Some(state))
}

/// `deleteState(id)`: removes a state file and the output kept beside it
/// (`<id>.log`, and the parts of one being written); absent is fine.
pub fn delete_state_in(dir: &Path, id: &str) -> io::Result<()> {
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

/// Where the use of cache images is recorded (`<stateDir>/.cache-use`).
pub fn cache_use_dir(dir: &Path) -> PathBuf {
    dir.join(".cache-use")
}

pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn parse_iso_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

pub fn iso_from_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(id: &str) -> RunState {
        serde_json::from_value(serde_json::json!({
            "id": id, "container": id, "volume": id, "image": "busybox",
            "workdir": "/app", "startedAt": "2026-04-27T10:15:00.000Z", "status": "running"
        }))
        .unwrap()
    }

    #[test]
    fn reference_format_round_trips_and_keeps_unknown_fields() {
        let raw = serde_json::json!({
            "id": "light-runner-abc123def456", "container": "light-runner-abc123def456",
            "volume": "light-runner-abc123def456", "image": "python:3.12-alpine",
            "workdir": "/app", "command": "python long_job.py", "timeout": 21600000,
            "extract": [{ "from": "/app/result.json", "to": "./out" }],
            "startedAt": "2026-04-27T10:15:00.000Z", "status": "running", "futureField": 1
        });
        let s: RunState = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(s.command_line(), Some("python long_job.py"));
        assert_eq!(s.status, Status::Running);
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back, raw);
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
    fn time_helpers() {
        let ms = parse_iso_ms("2026-04-27T10:15:00.000Z").unwrap();
        assert_eq!(iso_from_ms(ms), "2026-04-27T10:15:00.000Z");
    }

    #[test]
    fn writes_are_atomic_private_and_listed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        std::env::set_var("LIGHT_RUNNER_STATE_DIR", &dir);
        let s = sample("light-runner-0123456789ab");
        write_state(&s).unwrap();
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
        let listed = list_states();
        assert_eq!(listed.len(), 1);
        let after = update(&dir, "light-runner-0123456789ab", |s| {
            s.status = Status::Exited;
            s.exit_code = Some(0);
            true
        })
        .unwrap()
        .unwrap();
        assert_eq!(read_state("light-runner-0123456789ab").unwrap(), after);
        let text = fs::read_to_string(dir.join("light-runner-0123456789ab.json")).unwrap();
        assert!(
            text.contains("\n  \"status\": \"exited\""),
            "pretty-printed: {text}"
        );
        std::env::remove_var("LIGHT_RUNNER_STATE_DIR");
    }
}
