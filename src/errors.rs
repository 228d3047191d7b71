//! What can go wrong, as types, and what each failure means to the user,
//! decided in one place.
//!
//! The core returns [`Error`]: one variant per thing that failed, keeping the
//! daemon's error as its `source`. [`Error::public`] maps a variant to the
//! `LightRunnerError` fields of the contract (code, message, `dockerOp`,
//! `containerId`, `cause`). Decisions elsewhere are taken on variants and on
//! HTTP status codes ([`status`]), never on message text.
//!
//! Bad input is an [`InvalidInput`], thrown synchronously by the binding.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bollard::errors::Error as DockerError;

/// The `LightRunnerError.code` values of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    DockerUnreachable,
    VolumeCreateFailed,
    ContainerStartFailed,
    SeedFailed,
    ExtractFailed,
    ImageBuildFailed,
    NetworkInUse,
    /// The daemon lost the container while it ran (daemon restart, removal
    /// from outside): the run has no exit code of its own.
    ContainerLost,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::DockerUnreachable => "DOCKER_UNREACHABLE",
            ErrorCode::VolumeCreateFailed => "VOLUME_CREATE_FAILED",
            ErrorCode::ContainerStartFailed => "CONTAINER_START_FAILED",
            ErrorCode::SeedFailed => "SEED_FAILED",
            ErrorCode::ExtractFailed => "EXTRACT_FAILED",
            ErrorCode::ImageBuildFailed => "IMAGE_BUILD_FAILED",
            ErrorCode::NetworkInUse => "NETWORK_IN_USE",
            ErrorCode::ContainerLost => "CONTAINER_LOST",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an image could not be pulled.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Api(#[from] DockerError),
    /// The registry answered with an error inside the progress stream.
    #[error("{0}")]
    Registry(String),
}

/// Why a seed upload failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Reading `dir` failed (the message names the file).
    #[error("{0}")]
    Walk(String),
    #[error(transparent)]
    Upload(DockerError),
}

/// Why a run's container was lost (recorded as `lost` in its state file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The user's message for a run lost this way.
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

/// Everything the core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Docker daemon unreachable: {endpoint} ({source})")]
    Connect {
        endpoint: String,
        #[source]
        source: DockerError,
    },
    #[error("Docker daemon unreachable: {source}")]
    Ping {
        #[source]
        source: DockerError,
    },
    #[error("Docker daemon unreachable: no answer to ping within {ms} ms")]
    PingTimeout { ms: u64 },

    #[error("dir path not found: {}", .0.display())]
    DirNotFound(PathBuf),
    #[error("dir path is not a directory: {}", .0.display())]
    DirNotADirectory(PathBuf),
    /// A runner option the original accepts at construction but every run
    /// rejects (`memory: '12x'`).
    #[error("{}", .0.message)]
    InvalidOption(InvalidInput),

    #[error("network {name} not found")]
    NetworkNotFound { name: String },
    #[error("network {name} already exists")]
    NetworkExists { name: String },
    #[error("network {name} has active endpoints: {source}")]
    NetworkInUse {
        name: String,
        #[source]
        source: DockerError,
    },

    #[error("image {image} could not be pulled: {source}")]
    Pull {
        image: String,
        id: Option<String>,
        #[source]
        source: PullError,
    },
    #[error("image build failed at step {step:?}: {output}")]
    BuildStep { step: String, output: String },
    #[error("image build of {tag} failed: {reason}")]
    Build { tag: String, reason: String },

    #[error("seed failed: {source}")]
    Seed {
        id: String,
        #[source]
        source: SeedError,
    },
    /// The daemon lost the run's container while it ran: `why` decides,
    /// `message` says it to the user (and is what state files record).
    #[error("{message}")]
    Lost {
        id: String,
        why: Lost,
        message: String,
    },

    #[error("docker pause failed: {source}")]
    Pause {
        id: String,
        #[source]
        source: DockerError,
    },
    #[error("docker unpause failed: {source}")]
    Unpause {
        id: String,
        #[source]
        source: DockerError,
    },

    /// Any other Engine API call: `op` names it (`createVolume`, `start`, ...).
    #[error("{op} failed: {source}")]
    Docker {
        op: &'static str,
        id: Option<String>,
        #[source]
        source: DockerError,
    },

    #[error("cannot write the state file in {}: {source}", .dir.display())]
    StateWrite {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {} is not a valid run state: {reason}", .path.display())]
    StateCorrupt { path: PathBuf, reason: String },
    #[error("state file of {id} disappeared")]
    StateGone { id: String },
    /// A run id without a state file (nothing to read the output of).
    #[error("no run {id}: no state file for it")]
    NoRun { id: String },
    #[error("reading the kept output of {id} failed: {source}")]
    LogRead {
        id: String,
        #[source]
        source: std::io::Error,
    },

    #[error("internal error in light-runner: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A run whose container was lost `why`.
    pub fn lost(id: &str, why: Lost, grace: std::time::Duration) -> Self {
        Error::Lost {
            id: id.to_string(),
            why,
            message: why.message(grace),
        }
    }

    /// True when the daemon could not be reached (as opposed to an answer).
    pub fn is_transport(&self) -> bool {
        match self {
            Error::Docker { source, .. } => is_transport(source),
            Error::Connect { .. } | Error::Ping { .. } | Error::PingTimeout { .. } => true,
            _ => false,
        }
    }

    /// A failed Engine API call.
    pub fn docker(op: &'static str, id: Option<&str>, source: DockerError) -> Self {
        Error::Docker {
            op,
            id: id.map(str::to_string),
            source,
        }
    }

    /// The daemon's HTTP status, when the failure is a daemon response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Docker { source, .. }
            | Error::Pause { source, .. }
            | Error::Unpause { source, .. }
            | Error::NetworkInUse { source, .. } => status(source),
            Error::Pull {
                source: PullError::Api(e),
                ..
            } => status(e),
            _ => None,
        }
    }

    /// What the user sees: the contract's fields of a `LightRunnerError`.
    pub fn public(&self) -> Public {
        use Error::*;
        let (code, op, id): (Option<ErrorCode>, Option<&str>, Option<&str>) = match self {
            Connect { .. } | Ping { .. } | PingTimeout { .. } => {
                (Some(ErrorCode::DockerUnreachable), Some("ping"), None)
            }
            DirNotFound(_) | DirNotADirectory(_) => (Some(ErrorCode::SeedFailed), None, None),
            InvalidOption(_) => (Some(ErrorCode::ContainerStartFailed), None, None),
            NetworkNotFound { .. } => (
                Some(ErrorCode::ContainerStartFailed),
                Some("inspectNetwork"),
                None,
            ),
            NetworkExists { .. } => (
                Some(ErrorCode::ContainerStartFailed),
                Some("createNetwork"),
                None,
            ),
            NetworkInUse { .. } => (Some(ErrorCode::NetworkInUse), Some("removeNetwork"), None),
            Pull { id, .. } => (
                Some(ErrorCode::ContainerStartFailed),
                Some("pull"),
                id.as_deref(),
            ),
            BuildStep { .. } | Build { .. } => {
                (Some(ErrorCode::ImageBuildFailed), Some("buildImage"), None)
            }
            Seed { id, .. } => (Some(ErrorCode::SeedFailed), Some("seed"), Some(id.as_str())),
            Lost { id, .. } => (
                Some(ErrorCode::ContainerLost),
                Some("wait"),
                Some(id.as_str()),
            ),
            // The original rejects pause/resume with a plain Error.
            Pause { .. } | Unpause { .. } => (None, None, None),
            Docker { op, id, .. } => {
                let code = match *op {
                    "createVolume" => ErrorCode::VolumeCreateFailed,
                    "seed" => ErrorCode::SeedFailed,
                    "extract" => ErrorCode::ExtractFailed,
                    "buildImage" => ErrorCode::ImageBuildFailed,
                    _ => ErrorCode::ContainerStartFailed,
                };
                (Some(code), Some(*op), id.as_deref())
            }
            StateWrite { .. } | StateCorrupt { .. } | StateGone { .. } => {
                (Some(ErrorCode::ContainerStartFailed), None, None)
            }
            // Reading output is not a run failure: a plain Error.
            NoRun { .. } | LogRead { .. } => (None, None, None),
            Internal(_) => (Some(ErrorCode::ContainerStartFailed), None, None),
        };
        let cause = std::error::Error::source(self).map(|s| Cause {
            message: s.to_string().trim_end().to_string(),
            status_code: self.status(),
        });
        Public {
            code,
            message: self.to_string().trim_end().to_string(),
            docker_op: op.map(str::to_string),
            container_id: id.map(str::to_string),
            cause,
        }
    }
}

/// The underlying error of a failure, as JS sees it in `error.cause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub message: String,
    pub status_code: Option<u16>,
}

/// The fields a `LightRunnerError` is built from in JS. Without a code, JS
/// rejects with a plain `Error` (as the original does for pause/resume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Public {
    pub code: Option<ErrorCode>,
    pub message: String,
    pub docker_op: Option<String>,
    pub container_id: Option<String>,
    pub cause: Option<Cause>,
}

impl Public {
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::json!({ "message": self.message });
        if let Some(code) = self.code {
            m["code"] = code.as_str().into();
        }
        if let Some(op) = &self.docker_op {
            m["dockerOp"] = op.as_str().into();
        }
        if let Some(c) = &self.container_id {
            m["containerId"] = c.as_str().into();
        }
        if let Some(cause) = &self.cause {
            let mut c = serde_json::json!({ "message": cause.message });
            if let Some(s) = cause.status_code {
                c["statusCode"] = s.into();
            }
            m["cause"] = c;
        }
        m
    }
}

/// A run's failure, shared by every handle that waits on it.
pub type SharedError = Arc<Error>;

/// Bad input from the caller; the message always names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    pub field: String,
    pub message: String,
}

impl InvalidInput {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        InvalidInput {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// The status code of a daemon error response, if the error is one.
pub fn status(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub fn is_not_found(err: &DockerError) -> bool {
    status(err) == Some(404)
}

pub fn is_conflict(err: &DockerError) -> bool {
    status(err) == Some(409)
}

/// True when the daemon could not be reached or the connection broke (as
/// opposed to an answer it gave).
pub fn is_transport(err: &DockerError) -> bool {
    !matches!(
        err,
        DockerError::DockerResponseServerError { .. }
            | DockerError::DockerContainerWaitError { .. }
            | DockerError::JsonDataError { .. }
            | DockerError::JsonSerdeError { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(status_code: u16, message: &str) -> DockerError {
        DockerError::DockerResponseServerError {
            status_code,
            message: message.into(),
        }
    }

    #[test]
    fn codes_are_the_contract_strings() {
        assert_eq!(ErrorCode::DockerUnreachable.as_str(), "DOCKER_UNREACHABLE");
        assert_eq!(
            ErrorCode::VolumeCreateFailed.as_str(),
            "VOLUME_CREATE_FAILED"
        );
        assert_eq!(
            ErrorCode::ContainerStartFailed.as_str(),
            "CONTAINER_START_FAILED"
        );
        assert_eq!(ErrorCode::SeedFailed.as_str(), "SEED_FAILED");
        assert_eq!(ErrorCode::ExtractFailed.as_str(), "EXTRACT_FAILED");
        assert_eq!(ErrorCode::ImageBuildFailed.as_str(), "IMAGE_BUILD_FAILED");
        assert_eq!(ErrorCode::NetworkInUse.as_str(), "NETWORK_IN_USE");
    }

    #[test]
    fn a_docker_failure_names_operation_container_and_cause() {
        let e = Error::docker(
            "createContainer",
            Some("light-runner-0123456789ab"),
            daemon(500, "boom\n"),
        );
        let p = e.public();
        assert_eq!(p.code, Some(ErrorCode::ContainerStartFailed));
        assert!(
            p.message.starts_with("createContainer failed: "),
            "{}",
            p.message
        );
        assert_eq!(p.docker_op.as_deref(), Some("createContainer"));
        assert_eq!(p.container_id.as_deref(), Some("light-runner-0123456789ab"));
        let cause = p.cause.unwrap();
        assert_eq!(cause.status_code, Some(500));
        assert!(cause.message.contains("boom"));
    }

    #[test]
    fn codes_follow_the_operation() {
        let code = |op| Error::docker(op, None, daemon(500, "x")).public().code;
        assert_eq!(code("createVolume"), Some(ErrorCode::VolumeCreateFailed));
        assert_eq!(code("start"), Some(ErrorCode::ContainerStartFailed));
        assert_eq!(code("seed"), Some(ErrorCode::SeedFailed));
        let e = Error::PingTimeout { ms: 5000 }.public();
        assert_eq!(e.code, Some(ErrorCode::DockerUnreachable));
        assert_eq!(e.docker_op.as_deref(), Some("ping"));
        assert!(e.cause.is_none());
    }

    #[test]
    fn pause_failures_are_plain_errors_with_the_contract_prefix() {
        let e = Error::Pause {
            id: "x".into(),
            source: daemon(404, "No such container: x"),
        }
        .public();
        assert_eq!(e.code, None);
        assert!(
            e.message.starts_with("docker pause failed:"),
            "{}",
            e.message
        );
        assert_eq!(e.to_json().get("code"), None);
    }

    #[test]
    fn json_for_js_omits_absent_fields() {
        let e = Error::DirNotFound("/x".into()).public();
        assert_eq!(
            e.to_json(),
            serde_json::json!({ "code": "SEED_FAILED", "message": "dir path not found: /x" })
        );
        let j = Error::docker("createVolume", Some("id"), daemon(409, "conflict"))
            .public()
            .to_json();
        assert_eq!(j["dockerOp"], "createVolume");
        assert_eq!(j["containerId"], "id");
        assert_eq!(j["cause"]["statusCode"], 409);
    }

    #[test]
    fn a_lost_container_is_container_lost_with_its_reason_recorded() {
        let grace = std::time::Duration::from_secs(120);
        for why in [Lost::Removed, Lost::DaemonStopped, Lost::DaemonUnreachable] {
            let p = Error::lost("light-runner-0123456789ab", why, grace).public();
            assert_eq!(p.code, Some(ErrorCode::ContainerLost));
            assert_eq!(p.docker_op.as_deref(), Some("wait"));
            assert_eq!(p.container_id.as_deref(), Some("light-runner-0123456789ab"));
            assert_eq!(p.message, why.message(grace));
        }
        assert_eq!(ErrorCode::ContainerLost.as_str(), "CONTAINER_LOST");
        assert_eq!(
            serde_json::to_value(Lost::DaemonStopped).unwrap(),
            serde_json::json!("daemon-stopped")
        );
        assert_eq!(
            serde_json::from_value::<Lost>(serde_json::json!("daemon-unreachable")).unwrap(),
            Lost::DaemonUnreachable
        );
        assert!(Lost::DaemonUnreachable.message(grace).contains("120 s"));
    }

    #[test]
    fn statuses_come_from_the_response() {
        assert!(is_not_found(&daemon(404, "whatever the daemon says")));
        assert!(!is_not_found(&daemon(500, "no such container")));
        assert!(is_conflict(&daemon(409, "")));
        assert!(!is_transport(&daemon(500, "")));
        assert!(is_transport(&DockerError::RequestTimeoutError));
    }
}
