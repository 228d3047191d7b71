//! What a run is recorded as, and what it reports: the state file's
//! [`RunRecord`] with its typed fields, and the [`RunResult`] every host
//! gives for it.
//!
//! The file format is the original's (its files are read by this package
//! and the other way round), grown with this version's fields. The serde
//! layer keeps a file's JSON value as it was: every field this version
//! knows is typed when its value fits the type and re-serializes to the same
//! JSON; anything else (unknown fields, a `null`, an odd value of a known
//! field) is kept as written in [`RunRecord::extra`]. Times keep their text
//! ([`Stamp`]) and `timeout` keeps its number ([`Timeout`]).

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::Stamp;

/// Where a run is in its life, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Exited,
    Cancelled,
    Failed,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        self != RunStatus::Running
    }
}

/// What the launcher of a `running` run has done: still setting it up, or
/// done with setup (the container started, or the start was called off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunPhase {
    Setup,
    Started,
}

/// Why a run's container was lost (recorded as `lost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lost {
    /// The container was removed while the run ran (`docker rm -f` from
    /// outside, or a daemon that no longer knows it).
    Removed,
    /// The daemon stopped while the run ran and stopped the container with
    /// it (a daemon without `live-restore`).
    DaemonStopped,
    /// The daemon could not be reached for too long to know.
    DaemonUnreachable,
}

impl Lost {
    /// The user's message for a run lost this way; `grace` is how long an
    /// unreachable daemon was waited for.
    pub fn message(self, grace: std::time::Duration) -> String {
        match self {
            Lost::Removed => "the container was removed while the run was running \
                              (removed from outside, or unknown to the Docker daemon)"
                .into(),
            Lost::DaemonStopped => "the Docker daemon stopped while the run was running and \
                                    stopped its container (a daemon with live-restore keeps \
                                    containers running across a restart)"
                .into(),
            Lost::DaemonUnreachable => format!(
                "the Docker daemon could not be reached for {} s while the run was running",
                grace.as_secs()
            ),
        }
    }
}

/// A process: the launcher of a run, or the holder of a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    pub hostname: String,
    pub pid: u32,
}

impl HostIdentity {
    /// This process.
    pub fn current() -> Self {
        HostIdentity {
            hostname: hostname(),
            pid: std::process::id(),
        }
    }

    /// True when this identity is a live process on this machine; `None`
    /// for a process on another machine, which cannot be checked.
    pub fn is_alive(&self) -> Option<bool> {
        if self.hostname != hostname() {
            return None;
        }
        Some(pid_alive(self.pid))
    }
}

/// True while process `pid` exists on this machine (signal 0 checks only).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the pid exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
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

/// `timeout` as the launcher wrote it: the original may write a negative
/// or fractional number, kept exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timeout(pub serde_json::Number);

impl Timeout {
    pub fn from_ms(ms: u64) -> Self {
        Timeout(ms.into())
    }

    /// Whole milliseconds, if this is a timeout at all (0 or negative: none).
    pub fn ms(&self) -> Option<u64> {
        let t = self.0.as_f64()?;
        (t >= 1.0).then(|| t.min(u64::MAX as f64) as u64)
    }
}

/// One `{ from, to }` of `RunRequest.extract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractSpec {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractStatus {
    Ok,
    Missing,
    Error,
}

/// What happened to one spec. A missing or failed entry never fails the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractResult {
    pub from: String,
    pub to: String,
    pub status: ExtractStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

impl ExtractResult {
    pub fn new(spec: &ExtractSpec, status: ExtractStatus) -> Self {
        ExtractResult {
            from: spec.from.clone(),
            to: spec.to.clone(),
            status,
            bytes: None,
            error: None,
        }
    }

    pub fn failed(spec: &ExtractSpec, error: impl ToString) -> Self {
        ExtractResult {
            error: Some(error.to_string()),
            ..Self::new(spec, ExtractStatus::Error)
        }
    }
}

/// What was kept of a run's output beside its state (`logs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    /// Size of `<id>.log`.
    pub bytes: u64,
    /// Lines in `<id>.log`.
    pub lines: u64,
    /// Lines dropped to keep the file under `cap` (the oldest go first).
    pub dropped_lines: u64,
    /// `LIGHT_RUNNER_MAX_LOG_BYTES` when the output was kept.
    pub cap: u64,
    /// Why the output could not be kept (entirely).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub success: bool,
    /// The container's exit code; -1 when it never ran.
    pub exit_code: i64,
    /// Milliseconds.
    pub duration: u64,
    pub cancelled: bool,
    pub timed_out: bool,
    /// The memory cap killed the container (Docker's `OOMKilled`).
    pub oom_killed: bool,
    /// `maxLogBytes` cut the output (present only when true).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub logs_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extracted: Option<Vec<ExtractResult>>,
}

impl RunResult {
    pub fn new(exit_code: i64, duration: u64, cancelled: bool, timed_out: bool) -> Self {
        RunResult {
            success: exit_code == 0 && !cancelled && !timed_out,
            exit_code,
            duration,
            cancelled,
            timed_out,
            oom_killed: false,
            logs_truncated: false,
            extracted: None,
        }
    }
}

/// Declares [`RunRecord`] once: its fields, their JSON names and types, in
/// the order they are written. `req` fields must be there (and fit) for a
/// file to be a run's record; `opt` fields are `Option`s.
macro_rules! record {
    ( $( $(#[$m:meta])* $kind:ident $f:ident : $t:ty = $n:literal, )* ) => {
        /// One run as recorded in its state file.
        #[derive(Debug, Clone, PartialEq)]
        pub struct RunRecord {
            $( $(#[$m])* pub $f: record!(@ty $kind $t), )*
            /// What this version does not type, kept as written: fields
            /// of other versions, and known fields with a value that does
            /// not fit their type (a `null`, say).
            pub extra: Map<String, Value>,
        }

        impl RunRecord {
            /// The JSON names of the typed fields, in file order.
            pub const FIELDS: &'static [&'static str] = &[$($n,)*];

            fn from_map(mut m: Map<String, Value>) -> Result<Self, String> {
                Ok(RunRecord {
                    $( $f: record!(@take $kind m, $t, $n), )*
                    extra: m,
                })
            }

            fn write_map<S: SerializeMap>(&self, map: &mut S) -> Result<(), S::Error> {
                $( record!(@write $kind map, self.$f, $n); )*
                for (k, v) in &self.extra {
                    map.serialize_entry(k, v)?;
                }
                Ok(())
            }
        }
    };
    (@ty req $t:ty) => { $t };
    (@ty opt $t:ty) => { Option<$t> };
    (@take req $m:ident, $t:ty, $n:literal) => {
        take::<$t>(&mut $m, $n).ok_or(concat!("missing or invalid ", $n))?
    };
    (@take opt $m:ident, $t:ty, $n:literal) => { take::<$t>(&mut $m, $n) };
    (@write req $map:ident, $v:expr, $n:literal) => { $map.serialize_entry($n, &$v)? };
    (@write opt $map:ident, $v:expr, $n:literal) => {
        if let Some(v) = &$v {
            $map.serialize_entry($n, v)?;
        }
    };
}

/// The typed value of field `key`, taken out of `m` only when it fits the
/// type and writes back as the same JSON; otherwise it stays in `m`.
fn take<T: DeserializeOwned + Serialize>(m: &mut Map<String, Value>, key: &str) -> Option<T> {
    let v = m.get(key)?;
    if v.is_null() {
        return None;
    }
    let typed: T = serde_json::from_value(v.clone()).ok()?;
    if serde_json::to_value(&typed).ok().as_ref() != Some(v) {
        return None;
    }
    m.remove(key);
    Some(typed)
}

record! {
    req id: String = "id",
    req container: String = "container",
    req volume: String = "volume",
    req image: String = "image",
    req workdir: String = "workdir",
    opt entrypoint: String = "entrypoint",
    opt command: String = "command",
    opt timeout: Timeout = "timeout",
    opt extract: Vec<ExtractSpec> = "extract",
    req started_at: Stamp = "startedAt",
    req status: RunStatus = "status",
    opt exit_code: i64 = "exitCode",
    opt finished_at: Stamp = "finishedAt",
    opt duration_ms: u64 = "durationMs",
    opt cancelled: bool = "cancelled",
    opt timed_out: bool = "timedOut",
    /// The memory cap killed the container.
    opt oom_killed: bool = "oomKilled",
    opt extracted: Vec<ExtractResult> = "extracted",
    /// After this instant any host kills the run.
    opt deadline: Stamp = "deadline",
    /// The launcher.
    opt host: HostIdentity = "host",
    /// False for an attached run (it lives and dies with its host). Absent
    /// in files of the original, which persisted detached runs only.
    opt detached: bool = "detached",
    /// Build steps of the run (`RunRequest.run`).
    opt run: Vec<String> = "run",
    /// The image the container ran when it differs from `image` (the
    /// cached build of `run`).
    opt built_image: String = "builtImage",
    /// `setup` while the launcher prepares the container, then `started`.
    opt phase: RunPhase = "phase",
    opt finalizing: Claim = "finalizing",
    /// Why a run failed.
    opt error: String = "error",
    /// The public code of a failure every host reports as an error (the
    /// finalizer's own `EXTRACT_FAILED`, say).
    opt error_code: String = "errorCode",
    /// The daemon lost the run's container: it failed with `CONTAINER_LOST`.
    opt lost: Lost = "lost",
    /// When a host first cancelled or stopped the run.
    opt cancelled_at: Stamp = "cancelledAt",
    /// When watchers may SIGKILL a cancelled run: a graceful `stop()` gets
    /// its grace before any host kills the container.
    opt kill_after: Stamp = "killAfter",
    /// The runner's `maxExtractBytes` (the finalizer may be another host).
    opt max_extract_bytes: u64 = "maxExtractBytes",
    /// The runner's `maxLogBytes`.
    opt max_log_bytes: u64 = "maxLogBytes",
    /// What was kept of the output beside the state.
    opt logs: Kept = "logs",
    /// `maxLogBytes` cut the output.
    opt logs_truncated: bool = "logsTruncated",
    /// The run took a warm container (created and started before it).
    opt warm: bool = "warm",
}

impl Serialize for RunRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.write_map(&mut map)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for RunRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Map::<String, Value>::deserialize(d)?;
        RunRecord::from_map(m).map_err(serde::de::Error::custom)
    }
}

impl RunRecord {
    /// The seed's fields of a new run, every other field absent.
    pub fn new(id: &str, image: &str, workdir: &str, started_at: Stamp) -> Self {
        RunRecord {
            id: id.to_string(),
            container: id.to_string(),
            volume: id.to_string(),
            image: image.to_string(),
            workdir: workdir.to_string(),
            entrypoint: None,
            command: None,
            timeout: None,
            extract: None,
            started_at,
            status: RunStatus::Running,
            exit_code: None,
            finished_at: None,
            duration_ms: None,
            cancelled: None,
            timed_out: None,
            oom_killed: None,
            extracted: None,
            deadline: None,
            host: None,
            detached: None,
            run: None,
            built_image: None,
            phase: None,
            finalizing: None,
            error: None,
            error_code: None,
            lost: None,
            cancelled_at: None,
            kill_after: None,
            max_extract_bytes: None,
            max_log_bytes: None,
            logs: None,
            logs_truncated: None,
            warm: None,
            extra: Map::new(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// The shell command, whichever name recorded it.
    pub fn command_line(&self) -> Option<&str> {
        self.entrypoint.as_deref().or(self.command.as_deref())
    }

    pub fn is_setting_up(&self) -> bool {
        self.phase == Some(RunPhase::Setup)
    }

    /// An attached run: its own host finalizes it, nobody else.
    pub fn is_attached(&self) -> bool {
        self.detached == Some(false)
    }

    /// The timeout in whole ms, if there is one.
    pub fn timeout_ms(&self) -> Option<u64> {
        self.timeout.as_ref()?.ms()
    }

    pub fn started_ms(&self) -> Option<i64> {
        self.started_at.ms()
    }

    pub fn deadline_ms(&self) -> Option<i64> {
        self.deadline.as_ref()?.ms()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled == Some(true)
    }

    pub fn is_timed_out(&self) -> bool {
        self.timed_out == Some(true)
    }

    /// When the run ended (`finishedAt`), else when it started; 0 unknown.
    pub fn ended_ms(&self) -> i64 {
        self.finished_at
            .as_ref()
            .and_then(Stamp::ms)
            .or_else(|| self.started_ms())
            .unwrap_or(0)
    }

    /// Sets the terminal fields: `status`, `exitCode` (-1 when none is
    /// known), `finishedAt` and `durationMs` at `now_ms`; the setup phase and
    /// any claim are over.
    pub fn finish(&mut self, status: RunStatus, exit_code: Option<i64>, now_ms: i64) {
        self.status = status;
        self.exit_code = exit_code.or(self.exit_code).or(Some(-1));
        self.finished_at = Some(Stamp::at(now_ms));
        let started = self.started_ms().unwrap_or(now_ms);
        self.duration_ms = Some((now_ms - started).max(0) as u64);
        self.phase = None;
        self.finalizing = None;
    }

    /// Records how a run that had its container (or was cancelled before
    /// having one: exit code -1) ended.
    pub fn record_result(&mut self, r: &RunResult, now_ms: i64) {
        if r.exit_code == -1 {
            // Cancelled before its container ran: no image was used.
            self.built_image = None;
        }
        let status = if r.cancelled {
            RunStatus::Cancelled
        } else {
            RunStatus::Exited
        };
        self.finish(status, Some(r.exit_code), now_ms);
        self.duration_ms = Some(r.duration);
        self.cancelled = Some(r.cancelled);
        self.timed_out = Some(r.timed_out);
        if r.oom_killed {
            self.oom_killed = Some(true);
        }
        if r.logs_truncated {
            self.logs_truncated = Some(true);
        }
        self.extracted = r.extracted.clone();
    }

    /// Records a run that failed with `why`.
    pub fn record_failure(&mut self, why: &str, now_ms: i64) {
        self.finish(RunStatus::Failed, None, now_ms);
        self.error = Some(why.to_string());
    }

    /// Records what was kept of the output, and whether `maxLogBytes` cut it.
    pub fn record_kept(&mut self, kept: &Kept, truncated: bool) {
        self.logs = Some(kept.clone());
        if truncated {
            self.logs_truncated = Some(true);
        }
    }

    /// The result every host reports for this terminal record (a lost
    /// container is an error instead: see `lost`).
    pub fn result(&self) -> RunResult {
        let cancelled = self.is_cancelled() || self.status == RunStatus::Cancelled;
        let exit_code = self.exit_code.unwrap_or(-1);
        let duration = self.duration_ms.unwrap_or(0);
        let mut r = RunResult::new(exit_code, duration, cancelled, self.is_timed_out());
        r.success = r.success && self.status == RunStatus::Exited;
        r.oom_killed = self.oom_killed == Some(true);
        r.logs_truncated = self.logs_truncated == Some(true);
        r.extracted = self.extracted.clone();
        r
    }
}

#[cfg(test)]
mod tests;
