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

use crate::record::Lost;

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

/// The Engine API operation a failure happened in: its `dockerOp` name (the
/// original's names where it had them) and the public code it maps to,
/// decided here for every operation, exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DockerOp {
    Ping,
    Info,
    CreateVolume,
    RemoveVolume,
    ListVolumes,
    CreateContainer,
    Start,
    Attach,
    Wait,
    Inspect,
    Kill,
    Pause,
    Unpause,
    Exec,
    RemoveContainer,
    ListContainers,
    Logs,
    /// Uploading `dir` into the run's volume.
    SeedVolume,
    /// Downloading `extract` entries out of the run's volume.
    ExtractFromVolume,
    Pull,
    InspectImage,
    BuildImage,
    ListImages,
    RemoveImage,
    InspectNetwork,
    CreateNetwork,
    RemoveNetwork,
    ConnectNetwork,
    ListNetworks,
}

impl DockerOp {
    /// Every operation (for tests of the mapping).
    pub const ALL: [DockerOp; 29] = [
        DockerOp::Ping,
        DockerOp::Info,
        DockerOp::CreateVolume,
        DockerOp::RemoveVolume,
        DockerOp::ListVolumes,
        DockerOp::CreateContainer,
        DockerOp::Start,
        DockerOp::Attach,
        DockerOp::Wait,
        DockerOp::Inspect,
        DockerOp::Kill,
        DockerOp::Pause,
        DockerOp::Unpause,
        DockerOp::Exec,
        DockerOp::RemoveContainer,
        DockerOp::ListContainers,
        DockerOp::Logs,
        DockerOp::SeedVolume,
        DockerOp::ExtractFromVolume,
        DockerOp::Pull,
        DockerOp::InspectImage,
        DockerOp::BuildImage,
        DockerOp::ListImages,
        DockerOp::RemoveImage,
        DockerOp::InspectNetwork,
        DockerOp::CreateNetwork,
        DockerOp::RemoveNetwork,
        DockerOp::ConnectNetwork,
        DockerOp::ListNetworks,
    ];

    /// `LightRunnerError.dockerOp`.
    pub fn name(self) -> &'static str {
        use DockerOp::*;
        match self {
            Ping => "ping",
            Info => "info",
            CreateVolume => "createVolume",
            RemoveVolume => "removeVolume",
            ListVolumes => "listVolumes",
            CreateContainer => "createContainer",
            Start => "start",
            Attach => "attach",
            Wait => "wait",
            Inspect => "inspect",
            Kill => "kill",
            Pause => "pause",
            Unpause => "unpause",
            Exec => "exec",
            RemoveContainer => "removeContainer",
            ListContainers => "listContainers",
            Logs => "logs",
            SeedVolume => "seedVolume",
            ExtractFromVolume => "extractFromVolume",
            Pull => "pull",
            InspectImage => "inspectImage",
            BuildImage => "buildImage",
            ListImages => "listImages",
            RemoveImage => "removeImage",
            InspectNetwork => "inspectNetwork",
            CreateNetwork => "createNetwork",
            RemoveNetwork => "removeNetwork",
            ConnectNetwork => "connectNetwork",
            ListNetworks => "listNetworks",
        }
    }

    /// `LightRunnerError.code` of a failure of this operation.
    pub fn code(self) -> ErrorCode {
        use DockerOp::*;
        match self {
            Ping | Info => ErrorCode::DockerUnreachable,
            CreateVolume => ErrorCode::VolumeCreateFailed,
            SeedVolume => ErrorCode::SeedFailed,
            ExtractFromVolume => ErrorCode::ExtractFailed,
            BuildImage => ErrorCode::ImageBuildFailed,
            RemoveNetwork => ErrorCode::NetworkInUse,
            RemoveVolume | ListVolumes | CreateContainer | Start | Attach | Wait | Inspect
            | Kill | Pause | Unpause | Exec | RemoveContainer | ListContainers | Logs | Pull
            | InspectImage | ListImages | RemoveImage | InspectNetwork | CreateNetwork
            | ConnectNetwork | ListNetworks => ErrorCode::ContainerStartFailed,
        }
    }
}

impl ErrorCode {
    /// Every code (checked against index.d.ts by the contract test).
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::DockerUnreachable,
        ErrorCode::VolumeCreateFailed,
        ErrorCode::ContainerStartFailed,
        ErrorCode::SeedFailed,
        ErrorCode::ExtractFailed,
        ErrorCode::ImageBuildFailed,
        ErrorCode::NetworkInUse,
        ErrorCode::ContainerLost,
    ];

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
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

/// Why no client could be made for an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{}", chain(.0))]
    Docker(DockerError),
    /// The endpoint itself is not usable (a bad `ssh://` URL, an option
    /// this build does not support).
    #[error("{0}")]
    Invalid(String),
}

/// An error and its sources, each said once: `a: b: c` (a transport
/// error's cause is often only in its sources).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let m = e.to_string();
        if !m.is_empty() && !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        next = e.source();
    }
    out
}

/// Everything the core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No client could be made for the endpoint (`at`: the endpoint and
    /// how it was found, e.g. `unix:///x.sock (from DOCKER_CONTEXT=foo)`).
    #[error("Docker daemon unreachable at {at}: {source}")]
    Connect {
        at: String,
        #[source]
        source: ConnectError,
    },
    #[error("Docker daemon unreachable at {at}: {}", chain(.source))]
    Ping {
        at: String,
        #[source]
        source: DockerError,
    },
    #[error("Docker daemon unreachable at {at}: no answer to ping within {ms} ms")]
    PingTimeout { at: String, ms: u64 },
    /// The environment names a Docker context that cannot be used.
    #[error("Docker daemon unreachable: {message}")]
    NoEndpoint { context: String, message: String },

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

    /// A call bounded by `LIGHT_RUNNER_START_TIMEOUT_MS` (create, start)
    /// got no answer in time: the container's runtime may be hung.
    #[error("{} of {id} got no answer within {ms} ms (the bound LIGHT_RUNNER_START_TIMEOUT_MS sets, 120000 by default): the container runtime may be hung; the container is removed once it lets go", .op.name())]
    Timeout { op: DockerOp, id: String, ms: u64 },

    /// Any other Engine API call: `op` names it (`createVolume`, `start`, ...).
    #[error("{} failed: {source}", .op.name())]
    Docker {
        op: DockerOp,
        id: Option<String>,
        #[source]
        source: DockerError,
    },

    /// A failure another host recorded in the run's state (the finalizer's
    /// own error, as every host reports it).
    #[error("{message}")]
    Recorded {
        id: String,
        code: ErrorCode,
        message: String,
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
            // A context that cannot be used stays so: nothing to retry.
            Error::NoEndpoint { .. } => false,
            _ => false,
        }
    }

    /// True when the daemon answered that the thing asked about does not
    /// exist (404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Docker { source, .. } if is_not_found(source))
    }

    /// A failed Engine API call.
    pub fn docker(op: DockerOp, id: Option<&str>, source: DockerError) -> Self {
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
        let (code, op, id): (Option<ErrorCode>, Option<DockerOp>, Option<&str>) = match self {
            Connect { .. } | Ping { .. } | PingTimeout { .. } => (
                Some(ErrorCode::DockerUnreachable),
                Some(DockerOp::Ping),
                None,
            ),
            NoEndpoint { .. } => (Some(ErrorCode::DockerUnreachable), None, None),
            DirNotFound(_) | DirNotADirectory(_) => (Some(ErrorCode::SeedFailed), None, None),
            InvalidOption(_) => (Some(ErrorCode::ContainerStartFailed), None, None),
            NetworkNotFound { .. } => (
                Some(ErrorCode::ContainerStartFailed),
                Some(DockerOp::InspectNetwork),
                None,
            ),
            NetworkExists { .. } => (
                Some(ErrorCode::ContainerStartFailed),
                Some(DockerOp::CreateNetwork),
                None,
            ),
            NetworkInUse { .. } => (
                Some(ErrorCode::NetworkInUse),
                Some(DockerOp::RemoveNetwork),
                None,
            ),
            Pull { id, .. } => (
                Some(ErrorCode::ContainerStartFailed),
                Some(DockerOp::Pull),
                id.as_deref(),
            ),
            BuildStep { .. } | Build { .. } => (
                Some(ErrorCode::ImageBuildFailed),
                Some(DockerOp::BuildImage),
                None,
            ),
            Seed { id, .. } => (
                Some(ErrorCode::SeedFailed),
                Some(DockerOp::SeedVolume),
                Some(id.as_str()),
            ),
            Lost { id, .. } => (
                Some(ErrorCode::ContainerLost),
                Some(DockerOp::Wait),
                Some(id.as_str()),
            ),
            Timeout { op, id, .. } => (
                Some(ErrorCode::ContainerStartFailed),
                Some(*op),
                Some(id.as_str()),
            ),
            // The original rejects pause/resume with a plain Error.
            Pause { .. } | Unpause { .. } => (None, None, None),
            Docker { op, id, .. } => (Some(op.code()), Some(*op), id.as_deref()),
            Recorded { code, id, .. } => {
                let op = (*code == ErrorCode::ExtractFailed).then_some(DockerOp::ExtractFromVolume);
                (Some(*code), op, Some(id.as_str()))
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
            docker_op: op.map(|o| o.name().to_string()),
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
            DockerOp::CreateContainer,
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
        assert_eq!(
            code(DockerOp::CreateVolume),
            Some(ErrorCode::VolumeCreateFailed)
        );
        assert_eq!(code(DockerOp::Start), Some(ErrorCode::ContainerStartFailed));
        assert_eq!(code(DockerOp::SeedVolume), Some(ErrorCode::SeedFailed));
        assert_eq!(
            code(DockerOp::ExtractFromVolume),
            Some(ErrorCode::ExtractFailed)
        );
        let e = Error::PingTimeout {
            at: "unix:///x.sock (from DOCKER_CONTEXT=foo)".into(),
            ms: 5000,
        }
        .public();
        assert_eq!(e.code, Some(ErrorCode::DockerUnreachable));
        assert_eq!(e.docker_op.as_deref(), Some("ping"));
        assert!(e.cause.is_none());
        assert!(
            e.message
                .contains("unix:///x.sock (from DOCKER_CONTEXT=foo)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn unreachable_errors_name_the_endpoint_and_how_it_was_found() {
        let at = "unix:///x.sock (from DOCKER_CONTEXT=foo)";
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        for e in [
            Error::Ping {
                at: at.into(),
                source: DockerError::IOError { err: io },
            },
            Error::Connect {
                at: at.into(),
                source: ConnectError::Invalid("bad URL".into()),
            },
        ] {
            assert!(e.is_transport());
            let p = e.public();
            assert_eq!(p.code, Some(ErrorCode::DockerUnreachable));
            assert!(p.message.contains(at), "{}", p.message);
        }
        let e = Error::NoEndpoint {
            context: "foo".into(),
            message: "Docker context \"foo\" (from DOCKER_CONTEXT=foo) not found".into(),
        };
        assert!(!e.is_transport());
        let p = e.public();
        assert_eq!(p.code, Some(ErrorCode::DockerUnreachable));
        assert!(p.message.contains("\"foo\""), "{}", p.message);
    }

    #[test]
    fn chains_say_each_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("ssh to h failed: Permission denied"));
        assert_eq!(
            chain(&e),
            "client error (Connect): ssh to h failed: Permission denied"
        );
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
        let j = Error::docker(DockerOp::CreateVolume, Some("id"), daemon(409, "conflict"))
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
    fn every_operation_has_a_distinct_name_and_a_code() {
        let names: std::collections::HashSet<_> = DockerOp::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(names.len(), DockerOp::ALL.len());
        for op in DockerOp::ALL {
            let p = Error::docker(op, None, daemon(500, "x")).public();
            assert_eq!(p.code, Some(op.code()));
            assert_eq!(p.docker_op.as_deref(), Some(op.name()));
            assert!(p.message.starts_with(&format!("{} failed: ", op.name())));
        }
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("NOPE"), None);
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
