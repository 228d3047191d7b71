//! A run's record in its state file: what is written when it starts, the
//! terminal fields written when it ends, and the result every host reports
//! from a terminal record. Attached and detached runs share it.

use std::path::Path;

use crate::config::{RunRequest, RunnerConfig};
use crate::errors::{Error, SharedError};
use crate::execution::{Outcome, RunResult};
use crate::extract::ExtractSpec;
use crate::state::{iso_from_ms, now_ms, parse_iso_ms, HostIdentity, RunState, Status};

fn absolute(to: &str) -> String {
    let p = Path::new(to);
    if p.is_absolute() || to.is_empty() {
        return to.to_string();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(p).to_string_lossy().into_owned())
        .unwrap_or_else(|_| to.to_string())
}

/// The record of a run written synchronously inside `run()`: the seed's
/// fields plus deadline, launcher, mode and build steps. No env, no input.
pub fn initial(id: &str, req: &RunRequest, cfg: &RunnerConfig) -> RunState {
    let started = now_ms();
    let mut s: RunState = serde_json::from_value(serde_json::json!({
        "id": id, "container": id, "volume": id, "image": req.image,
        "workdir": req.workdir, "startedAt": iso_from_ms(started), "status": "running",
    }))
    .expect("static state shape");
    s.entrypoint = req.command.clone();
    s.command = req.command.clone();
    s.timeout = Some(req.timeout_ms.unwrap_or(0).into());
    // Destinations are recorded absolute: the finalizing host may have
    // another working directory than the launcher.
    s.extract = Some(
        req.extract
            .iter()
            .map(|e| ExtractSpec {
                from: e.from.clone(),
                to: absolute(&e.to),
            })
            .collect(),
    );
    s.deadline = req
        .timeout_ms
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| started.checked_add(t))
        .map(iso_from_ms);
    s.host = Some(HostIdentity::current());
    s.detached = Some(req.detached);
    s.phase = Some("setup".into());
    s.cancelled = Some(false);
    if !req.run.is_empty() {
        s.run = Some(req.run.clone());
        // Known now (the tag is a hash of image + steps), so a cached run
        // writes no extra record; a build that fails clears it.
        s.built_image = Some(crate::image::cache_tag(&req.image, &req.run));
    }
    s.extra.insert(
        "maxExtractBytes".into(),
        serde_json::json!(cfg.max_extract_bytes),
    );
    if let Some(cap) = cfg.max_log_bytes {
        s.extra.insert("maxLogBytes".into(), serde_json::json!(cap));
    }
    s
}

/// Sets the terminal fields of a record.
pub fn finish(s: &mut RunState, status: Status, exit_code: Option<i64>) {
    let now = now_ms();
    s.status = status;
    s.exit_code = exit_code.or(s.exit_code).or(Some(-1));
    s.finished_at = Some(iso_from_ms(now));
    let started = parse_iso_ms(&s.started_at).unwrap_or(now);
    s.duration_ms = Some((now - started).max(0) as u64);
    s.phase = None;
    s.finalizing = None;
}

/// Records how an attached run ended.
pub fn record_result(s: &mut RunState, r: &RunResult) {
    if r.exit_code == -1 {
        // Cancelled before its container ran: no image was used.
        s.built_image = None;
    }
    let status = if r.cancelled {
        Status::Cancelled
    } else {
        Status::Exited
    };
    finish(s, status, Some(r.exit_code));
    s.duration_ms = Some(r.duration);
    s.cancelled = Some(r.cancelled);
    s.timed_out = Some(r.timed_out);
    if r.oom_killed {
        s.oom_killed = Some(true);
    }
    if r.logs_truncated {
        s.extra.insert("logsTruncated".into(), true.into());
    }
    s.extracted = r.extracted.clone();
}

/// Records a run that failed with `why`.
pub fn record_failure(s: &mut RunState, why: &str) {
    finish(s, Status::Failed, None);
    s.error = Some(why.to_string());
}

/// Records a run that failed with `err`: a failed build leaves no built
/// image; a lost container is marked `lost`.
pub fn record_error(s: &mut RunState, err: &Error) {
    record_failure(s, &err.to_string());
    match err {
        Error::Build { .. } | Error::BuildStep { .. } => s.built_image = None,
        Error::Lost { why, .. } => s.lost = Some(*why),
        _ => {}
    }
}

/// The outcome every host reports for a terminal record: a run whose
/// container was lost rejects with `CONTAINER_LOST`, as it did for the host
/// that ran it; everything else resolves.
pub fn outcome_from_state(s: &RunState) -> Outcome {
    match (s.status, s.lost) {
        (Status::Failed, Some(why)) => Err(SharedError::new(Error::Lost {
            id: s.id.clone(),
            why,
            message: s
                .error
                .clone()
                .unwrap_or_else(|| why.message(crate::resources::daemon_grace())),
        })),
        _ => Ok(result_from_state(s)),
    }
}

/// The result every host reports for a terminal record.
pub fn result_from_state(s: &RunState) -> RunResult {
    let cancelled = s.cancelled == Some(true) || s.status == Status::Cancelled;
    let timed_out = s.timed_out == Some(true);
    let exit_code = s.exit_code.unwrap_or(-1);
    let mut r = RunResult::new(exit_code, s.duration_ms.unwrap_or(0), cancelled, timed_out);
    r.success = r.success && s.status == Status::Exited;
    r.oom_killed = s.oom_killed == Some(true);
    r.logs_truncated = crate::output::truncated_in(s);
    r.extracted = s.extracted.clone();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Lost;

    #[test]
    fn initial_record_has_the_seed_fields_and_no_secrets() {
        let mut req = RunRequest::new("busybox");
        req.command = Some("echo hi".into());
        req.env = vec![("SECRET".into(), "hunter2".into())];
        req.input = Some("\"hunter3\"".into());
        req.extract = vec![ExtractSpec {
            from: "/app/out".into(),
            to: "out".into(),
        }];
        req.timeout_ms = Some(1000);
        req.run = vec!["echo build".into()];
        let s = initial("light-runner-0123456789ab", &req, &RunnerConfig::default());
        let v = serde_json::to_value(&s).unwrap();
        for f in [
            "id",
            "container",
            "volume",
            "image",
            "workdir",
            "entrypoint",
            "timeout",
            "extract",
            "startedAt",
            "status",
            "command",
            "deadline",
            "host",
            "detached",
            "run",
        ] {
            assert!(v.get(f).is_some(), "missing {f}");
        }
        assert!(!v.to_string().contains("hunter2"));
        assert!(!v.to_string().contains("hunter3"));
        assert!(Path::new(&s.extract.unwrap()[0].to).is_absolute());
        let d = parse_iso_ms(s.deadline.as_deref().unwrap()).unwrap();
        assert_eq!(d - parse_iso_ms(&s.started_at).unwrap(), 1000);
        assert_eq!(v["detached"], false);
    }

    #[test]
    fn no_deadline_without_timeout() {
        let mut req = RunRequest::new("busybox");
        req.timeout_ms = None;
        let s = initial("x", &req, &RunnerConfig::default());
        assert_eq!(s.deadline, None);
        assert_eq!(s.timeout_ms(), None);
        req.timeout_ms = Some(u64::MAX);
        assert_eq!(initial("x", &req, &RunnerConfig::default()).deadline, None);
    }

    #[test]
    fn results_from_terminal_records() {
        let mut s: RunState = serde_json::from_value(serde_json::json!({
            "id": "x", "container": "x", "volume": "x", "image": "i", "workdir": "/app",
            "startedAt": "2026-04-27T10:15:00.000Z", "status": "exited", "exitCode": 0,
            "durationMs": 42
        }))
        .unwrap();
        let r = result_from_state(&s);
        assert!(r.success);
        assert_eq!(r.duration, 42);
        s.status = Status::Cancelled;
        s.cancelled = Some(true);
        assert!(!result_from_state(&s).success);
        assert!(result_from_state(&s).cancelled);
        s.status = Status::Failed;
        s.exit_code = None;
        assert_eq!(result_from_state(&s).exit_code, -1);
        s.oom_killed = Some(true);
        assert!(result_from_state(&s).oom_killed);
        assert!(outcome_from_state(&s).is_ok());
        s.lost = Some(Lost::DaemonStopped);
        s.error = Some("the daemon stopped".into());
        let e = outcome_from_state(&s).unwrap_err();
        assert!(matches!(
            *e,
            Error::Lost {
                why: Lost::DaemonStopped,
                ..
            }
        ));
        assert_eq!(e.to_string(), "the daemon stopped");
        let p = e.public();
        assert_eq!(p.code, Some(crate::errors::ErrorCode::ContainerLost));
        assert_eq!(p.container_id.as_deref(), Some("x"));
    }

    #[test]
    fn the_originals_odd_timeouts_are_read() {
        for t in [-1.0, 1500.5, 0.0] {
            let s: RunState = serde_json::from_value(serde_json::json!({
                "id": "x", "container": "x", "volume": "x", "image": "i", "workdir": "/app",
                "startedAt": "2026-04-27T10:15:00.000Z", "status": "running", "timeout": t
            }))
            .unwrap();
            let back = serde_json::to_value(&s).unwrap();
            assert_eq!(back["timeout"], serde_json::json!(t));
            assert_eq!(s.timeout_ms(), (t >= 1.0).then_some(t as u64));
        }
    }
}
