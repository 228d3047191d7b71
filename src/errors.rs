//! What a failure means to the user, decided in one place.
//!
//! Bad input is a [`InvalidInput`] (thrown synchronously by the binding);
//! a failure that needs Docker is a [`RunError`] carrying one of the five
//! `LightRunnerError` codes of the contract.

use std::fmt;

/// The `LightRunnerError.code` values of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    DockerUnreachable,
    VolumeCreateFailed,
    ContainerStartFailed,
    SeedFailed,
    ExtractFailed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::DockerUnreachable => "DOCKER_UNREACHABLE",
            ErrorCode::VolumeCreateFailed => "VOLUME_CREATE_FAILED",
            ErrorCode::ContainerStartFailed => "CONTAINER_START_FAILED",
            ErrorCode::SeedFailed => "SEED_FAILED",
            ErrorCode::ExtractFailed => "EXTRACT_FAILED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run that could not be carried out. Becomes a `LightRunnerError` in JS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    pub code: ErrorCode,
    pub message: String,
    /// The Engine API operation that failed (`createVolume`, `start`, ...).
    pub docker_op: Option<String>,
    pub container_id: Option<String>,
}

impl RunError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RunError {
            code,
            message: message.into(),
            docker_op: None,
            container_id: None,
        }
    }

    /// A failed Engine API call: the message names the operation and the cause.
    pub fn docker(
        code: ErrorCode,
        op: &str,
        container: Option<&str>,
        cause: impl fmt::Display,
    ) -> Self {
        RunError {
            code,
            message: format!("{op} failed: {}", clean_cause(&cause.to_string())),
            docker_op: Some(op.to_string()),
            container_id: container.map(str::to_string),
        }
    }

    /// The fields a `LightRunnerError` is constructed from in JS.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(op) = &self.docker_op {
            m["dockerOp"] = serde_json::json!(op);
        }
        if let Some(c) = &self.container_id {
            m["containerId"] = serde_json::json!(c);
        }
        m
    }

    pub fn unreachable(cause: impl fmt::Display) -> Self {
        RunError {
            code: ErrorCode::DockerUnreachable,
            message: format!("Docker daemon unreachable: {cause}"),
            docker_op: Some("ping".into()),
            container_id: None,
        }
    }
}

/// bollard renders daemon errors as `Docker responded with status code 404: ...`;
/// keep them, but drop trailing newlines the daemon sometimes sends.
fn clean_cause(s: &str) -> String {
    s.trim_end().to_string()
}

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
pub fn docker_status(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub fn is_not_found(err: &bollard::errors::Error) -> bool {
    docker_status(err) == Some(404)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn docker_error_names_operation_and_container() {
        let e = RunError::docker(
            ErrorCode::ContainerStartFailed,
            "createContainer",
            Some("light-runner-0123456789ab"),
            "no such image\n",
        );
        assert_eq!(e.message, "createContainer failed: no such image");
        assert_eq!(e.docker_op.as_deref(), Some("createContainer"));
        assert_eq!(e.container_id.as_deref(), Some("light-runner-0123456789ab"));
    }

    #[test]
    fn json_for_js_omits_absent_fields() {
        let e = RunError::new(ErrorCode::SeedFailed, "dir path not found: /x");
        assert_eq!(
            e.to_json(),
            serde_json::json!({ "code": "SEED_FAILED", "message": "dir path not found: /x" })
        );
        let e = RunError::docker(
            ErrorCode::VolumeCreateFailed,
            "createVolume",
            Some("id"),
            "boom",
        );
        assert_eq!(e.to_json()["dockerOp"], "createVolume");
        assert_eq!(e.to_json()["containerId"], "id");
    }

    #[test]
    fn not_found_is_detected_from_status() {
        let e = bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "no such container".into(),
        };
        assert!(is_not_found(&e));
        let e = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        assert!(!is_not_found(&e));
    }
}
