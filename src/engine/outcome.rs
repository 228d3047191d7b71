//! What a run's record says to whoever waits on it: the outcome every host
//! reports for a terminal record, and how a failure is recorded.

use std::time::Duration;

use super::execution::Outcome;
use crate::errors::{DockerOp, Error, ErrorCode, SharedError};
use crate::record::{RunRecord, RunStatus};

/// Records a run that failed with `err`: a failed build leaves no built
/// image; a lost container is marked `lost`.
pub fn record_error(r: &mut RunRecord, err: &Error, now_ms: i64) {
    r.record_failure(&err.to_string(), now_ms);
    match err {
        Error::Build { .. } | Error::BuildStep { .. } => r.built_image = None,
        Error::Lost { why, .. } => r.lost = Some(*why),
        Error::Docker {
            op: DockerOp::ExtractFromVolume,
            ..
        } => r.error_code = Some(ErrorCode::ExtractFailed.as_str().to_string()),
        _ => {}
    }
}

/// Records a run whose container exited with `exit_code` and whose results
/// could not be read out (`EXTRACT_FAILED`).
pub fn record_extract_failure(r: &mut RunRecord, err: &Error, exit_code: i64, now_ms: i64) {
    record_error(r, err, now_ms);
    r.exit_code = Some(exit_code);
}

/// The outcome every host reports for a terminal record: a run whose
/// container was lost rejects with `CONTAINER_LOST`, as it did for the host
/// that ran it; everything else resolves. `grace` words the message of a
/// record that kept no message of its own.
pub fn outcome_of(r: &RunRecord, grace: Duration) -> Outcome {
    match (r.status, r.lost) {
        (RunStatus::Failed, Some(why)) => Err(SharedError::new(Error::Lost {
            id: r.id.clone(),
            why,
            message: r.error.clone().unwrap_or_else(|| why.message(grace)),
        })),
        (RunStatus::Failed, None) => match r.error_code.as_deref().and_then(ErrorCode::parse) {
            Some(code) => Err(SharedError::new(Error::Recorded {
                id: r.id.clone(),
                code,
                message: r.error.clone().unwrap_or_default(),
            })),
            None => Ok(r.result()),
        },
        _ => Ok(r.result()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCode;
    use crate::record::Lost;
    use crate::time::Stamp;

    #[test]
    fn a_lost_container_rejects_everywhere_else_resolves() {
        let grace = Duration::from_secs(120);
        let mut r = RunRecord::new("x", "i", "/app", Stamp::at(0));
        r.finish(RunStatus::Failed, None, 10);
        r.oom_killed = Some(true);
        let ok = outcome_of(&r, grace).unwrap();
        assert!(ok.oom_killed && !ok.success && ok.exit_code == -1);
        r.lost = Some(Lost::DaemonStopped);
        r.error = Some("the daemon stopped".into());
        let e = outcome_of(&r, grace).unwrap_err();
        assert!(matches!(
            *e,
            Error::Lost {
                why: Lost::DaemonStopped,
                ..
            }
        ));
        assert_eq!(e.to_string(), "the daemon stopped");
        let p = e.public();
        assert_eq!(p.code, Some(ErrorCode::ContainerLost));
        assert_eq!(p.container_id.as_deref(), Some("x"));
        r.error = None;
        assert!(outcome_of(&r, grace)
            .unwrap_err()
            .to_string()
            .contains("live-restore"));
    }

    #[test]
    fn an_extraction_that_failed_as_a_whole_rejects_for_every_host() {
        let mut r = RunRecord::new("x", "i", "/app", Stamp::at(0));
        let e = Error::docker(
            DockerOp::ExtractFromVolume,
            Some("x"),
            bollard::errors::Error::RequestTimeoutError,
        );
        record_extract_failure(&mut r, &e, 0, 10);
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.error_code.as_deref(), Some("EXTRACT_FAILED"));
        let back = outcome_of(&r, Duration::from_secs(1)).unwrap_err();
        let p = back.public();
        assert_eq!(p.code, Some(ErrorCode::ExtractFailed));
        assert_eq!(p.message, e.to_string());
        assert_eq!(p.container_id.as_deref(), Some("x"));
    }

    #[test]
    fn a_failed_build_leaves_no_built_image() {
        let mut r = RunRecord::new("x", "i", "/app", Stamp::at(0));
        r.built_image = Some("light-runner-cache:abc".into());
        record_error(
            &mut r,
            &Error::BuildStep {
                step: "false".into(),
                output: "".into(),
            },
            5,
        );
        assert_eq!(r.built_image, None);
        assert_eq!(r.status, RunStatus::Failed);
    }
}
