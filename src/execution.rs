//! The handle a caller holds on one run: its id, its result, and control
//! (cancel, stop, pause, resume). Whatever drives the run (the launcher, or a
//! host attached later) publishes the outcome here exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::docker;
use crate::errors::{Error, Result, SharedError};
use crate::extract::ExtractResult;
use crate::resources;
use crate::setup::Phase;

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

pub type Outcome = std::result::Result<RunResult, SharedError>;

/// Called when the run is cancelled or stopped (e.g. to mark a state file),
/// with the grace in ms before a kill is due (0 for `cancel()`).
pub type CancelHook = Box<dyn Fn(u64) + Send + Sync>;

pub(crate) struct Shared {
    pub id: String,
    cancelled: AtomicBool,
    /// Fired by `cancel()`: the driver kills the container at once.
    pub token: CancellationToken,
    outcome: watch::Sender<Option<Outcome>>,
    /// True once the container started, or setup ended without starting it.
    started: watch::Sender<bool>,
    on_cancel: std::sync::Mutex<Option<CancelHook>>,
    /// Phases reached, with their time (ms since epoch).
    phases: std::sync::Mutex<Vec<(Phase, i64)>>,
}

/// A handle on one run. Cheap to clone; all clones see the same run.
#[derive(Clone)]
pub struct Execution {
    pub(crate) shared: Arc<Shared>,
}

impl Execution {
    pub fn new(id: String) -> Self {
        Execution {
            shared: Arc::new(Shared {
                id,
                cancelled: AtomicBool::new(false),
                token: CancellationToken::new(),
                outcome: watch::channel(None).0,
                started: watch::channel(false).0,
                on_cancel: std::sync::Mutex::new(None),
                phases: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// An execution that is already over (attach to a terminal state).
    pub fn finished(id: String, outcome: Outcome) -> Self {
        let e = Execution::new(id);
        if let Ok(r) = &outcome {
            e.shared.cancelled.store(r.cancelled, Ordering::SeqCst);
        }
        e.mark_started();
        e.publish(outcome);
        e
    }

    /// A handle on a run that already ended, whose result is published
    /// once `tidy` is done (removing what a finalizer that died mid-removal
    /// left, before anyone sees the result).
    pub(crate) fn finished_after<F>(id: String, outcome: Outcome, tidy: F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let e = Execution::new(id);
        if let Ok(r) = &outcome {
            e.shared.cancelled.store(r.cancelled, Ordering::SeqCst);
        }
        e.mark_started();
        e.drive(
            move |_| async move {
                tidy.await;
                outcome
            },
            |_| {},
        );
        e
    }

    pub fn id(&self) -> &str {
        &self.shared.id
    }

    pub fn is_cancelled(&self) -> bool {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    pub fn is_finished(&self) -> bool {
        self.shared.outcome.borrow().is_some()
    }

    pub fn set_cancel_hook(&self, hook: CancelHook) {
        *self.shared.on_cancel.lock().unwrap() = Some(hook);
    }

    /// Marks cancelled and runs the hook once; false if already cancelled.
    fn mark_cancelled(&self, grace_ms: u64) -> bool {
        if self.shared.cancelled.swap(true, Ordering::SeqCst) {
            return false;
        }
        if let Some(hook) = self.shared.on_cancel.lock().unwrap().as_ref() {
            hook(grace_ms);
        }
        true
    }

    /// Records that the run reached `phase`.
    pub fn mark_phase(&self, phase: Phase) {
        let now = crate::state::now_ms();
        self.shared.phases.lock().unwrap().push((phase, now));
    }

    /// The phases reached so far, in order, with their time (ms since epoch).
    pub fn phases(&self) -> Vec<(Phase, i64)> {
        self.shared.phases.lock().unwrap().clone()
    }

    /// Synchronous, fire-and-forget: marks cancelled, prevents a start that
    /// has not happened yet, and kills the container if it runs.
    /// The returned handle completes once the kill request was answered, so
    /// a host that exits right after `cancel()` can wait for it.
    pub fn cancel(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.is_finished() {
            return None;
        }
        self.mark_cancelled(0);
        self.shared.token.cancel();
        let id = self.shared.id.clone();
        Some(crate::rt::spawn(async move {
            if let Ok(d) = docker::client() {
                resources::kill(&d, &id).await;
            }
        }))
    }

    /// Sends `signal`, waits up to `grace` for the container to exit, then
    /// SIGKILLs it. Marks cancelled. A finished run is left alone.
    pub async fn stop(&self, signal: &str, grace: Duration) -> Result<()> {
        if self.is_finished() {
            return Ok(());
        }
        self.mark_cancelled(grace.as_millis() as u64);
        let d = docker::client()?;
        resources::stop(&d, &self.shared.id, signal, grace).await?;
        // A run that never started must not start now.
        self.shared.token.cancel();
        Ok(())
    }

    pub async fn pause(&self) -> Result<()> {
        let d = docker::client()?;
        resources::pause(&d, &self.shared.id).await
    }

    pub async fn resume(&self) -> Result<()> {
        let d = docker::client()?;
        resources::unpause(&d, &self.shared.id).await
    }

    /// The run's outcome, once it is known.
    pub async fn outcome(&self) -> Outcome {
        let mut rx = self.shared.outcome.subscribe();
        loop {
            if let Some(o) = rx.borrow_and_update().as_ref() {
                return o.clone();
            }
            if rx.changed().await.is_err() {
                // Unreachable while `self` holds the sender; be defensive.
                return Err(SharedError::new(Error::Internal(
                    "run driver stopped without a result".into(),
                )));
            }
        }
    }

    /// Resolves once the container started or setup ended.
    pub async fn started(&self) {
        let mut rx = self.shared.started.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub(crate) fn mark_started(&self) {
        self.shared.started.send_replace(true);
    }

    /// Drives the run on the core's runtime: publishes the outcome of the
    /// future `make` builds, or a panic inside it as an error outcome (never
    /// a crash of the host), then calls `done`.
    pub(crate) fn drive<Fut>(
        &self,
        make: impl FnOnce(Execution) -> Fut + Send + 'static,
        done: impl FnOnce(&Execution) + Send + 'static,
    ) where
        Fut: std::future::Future<Output = Outcome> + Send + 'static,
    {
        let driver = self.clone();
        crate::rt::spawn(async move {
            let outcome = std::panic::AssertUnwindSafe(make(driver.clone()))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(panic_error(&driver, panic)));
            driver.publish(outcome);
            done(&driver);
        });
    }

    /// Publishes the outcome; only the first call counts. Once known, the
    /// result's `cancelled` is what the handle reports (a cancel that came
    /// after the container had exited by itself did not cancel anything).
    pub(crate) fn publish(&self, outcome: Outcome) {
        self.mark_started();
        if let (Ok(r), false) = (&outcome, self.is_finished()) {
            self.shared.cancelled.store(r.cancelled, Ordering::SeqCst);
        }
        self.shared.outcome.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(outcome);
                true
            } else {
                false
            }
        });
    }
}

/// A panic inside a run, as the error its caller sees.
pub(crate) fn panic_error(exec: &Execution, panic: Box<dyn std::any::Any + Send>) -> SharedError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    SharedError::new(Error::Internal(format!("{what} (run {})", exec.id())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_driver_becomes_an_error_outcome() {
        let e = Execution::new("light-runner-0123456789ab".into());
        e.drive(|_| async { panic!("boom") }, |_| {});
        let err = e.outcome().await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("boom"), "{msg}");
        assert!(msg.contains("light-runner-0123456789ab"), "{msg}");
    }

    #[test]
    fn success_requires_zero_exit_and_no_cancel_or_timeout() {
        assert!(RunResult::new(0, 1, false, false).success);
        assert!(!RunResult::new(3, 1, false, false).success);
        assert!(!RunResult::new(0, 1, true, false).success);
        assert!(!RunResult::new(0, 1, false, true).success);
    }

    #[test]
    fn result_serializes_in_camel_case() {
        let v = serde_json::to_value(RunResult::new(137, 5, false, true)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "success": false, "exitCode": 137, "duration": 5,
                                "cancelled": false, "timedOut": true, "oomKilled": false })
        );
    }

    #[tokio::test]
    async fn cancelled_follows_the_published_result() {
        let e = Execution::new("x".into());
        e.shared.cancelled.store(true, Ordering::SeqCst);
        e.publish(Ok(RunResult::new(0, 0, false, false)));
        assert!(!e.is_cancelled());
    }

    #[tokio::test]
    async fn outcome_is_published_once() {
        let e = Execution::new("x".into());
        e.publish(Ok(RunResult::new(1, 0, false, false)));
        e.publish(Ok(RunResult::new(2, 0, false, false)));
        assert_eq!(e.outcome().await.unwrap().exit_code, 1);
        e.started().await;
        assert!(e.is_finished());
    }
}
