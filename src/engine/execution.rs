//! The handle a caller holds on one run: its id, its result, and control
//! (cancel, stop, pause, resume). Whatever drives the run (the launcher, or a
//! host attached later) publishes the outcome here exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backend::docker::Daemon;
use crate::backend::Backend;
use crate::errors::{Error, SharedError};
pub use crate::record::RunResult;
use crate::time::Clock;

/// The milestones of a run, reported as they are reached (the events of
/// its OpenTelemetry span).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    Created,
    Seeded,
    Started,
    Exited,
    Extracted,
}

impl Milestone {
    pub fn as_str(self) -> &'static str {
        match self {
            Milestone::Created => "created",
            Milestone::Seeded => "seeded",
            Milestone::Started => "started",
            Milestone::Exited => "exited",
            Milestone::Extracted => "extracted",
        }
    }
}

pub type Outcome = std::result::Result<RunResult, SharedError>;

/// What the caller asked of a run, for its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Cancel,
    /// `stop()`: the signal went out; a kill is due after `grace_ms`.
    Stop {
        grace_ms: u64,
    },
}

/// Called when the run is cancelled or stopped (e.g. to mark a state file),
/// with the grace in ms before a kill is due (0 for `cancel()`).
pub type CancelHook = Box<dyn Fn(u64) + Send + Sync>;

pub(crate) struct Shared {
    pub id: String,
    /// The run's daemon (or why there is no client for it).
    daemon: std::result::Result<Daemon, SharedError>,
    clock: Arc<dyn Clock>,
    cancelled: AtomicBool,
    /// The run took a warm container.
    warm: AtomicBool,
    /// Fired by `cancel()`: the driver kills the container at once.
    pub token: CancellationToken,
    outcome: watch::Sender<Option<Outcome>>,
    /// True once the container started, or setup ended without starting it.
    started: watch::Sender<bool>,
    on_cancel: std::sync::Mutex<Option<CancelHook>>,
    /// `cancel()` and `stop()` calls not yet taken by the run's driver.
    controls: std::sync::Mutex<Vec<Control>>,
    control: tokio::sync::Notify,
    /// Milestones reached, with their time (ms since epoch).
    milestones: std::sync::Mutex<Vec<(Milestone, i64)>>,
    /// Bumped on each milestone and on the outcome: what `stop()` waits on.
    progress: watch::Sender<u64>,
}

/// A handle on one run. Cheap to clone; all clones see the same run.
#[derive(Clone)]
pub struct Execution {
    pub(crate) shared: Arc<Shared>,
}

impl Execution {
    /// A handle on run `id`, on `daemon` (or the error making its client
    /// met), reading time from `clock`.
    pub fn new(
        id: String,
        daemon: std::result::Result<Daemon, SharedError>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Execution {
            shared: Arc::new(Shared {
                id,
                daemon,
                clock,
                cancelled: AtomicBool::new(false),
                warm: AtomicBool::new(false),
                token: CancellationToken::new(),
                outcome: watch::channel(None).0,
                started: watch::channel(false).0,
                on_cancel: std::sync::Mutex::new(None),
                controls: std::sync::Mutex::new(Vec::new()),
                control: tokio::sync::Notify::new(),
                milestones: std::sync::Mutex::new(Vec::new()),
                progress: watch::channel(0).0,
            }),
        }
    }

    /// An execution that is already over (attach to a terminal state).
    pub fn finished(id: String, clock: Arc<dyn Clock>, outcome: Outcome) -> Self {
        let e = Execution::new(id, Err(no_daemon()), clock);
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
    pub(crate) fn finished_after<F>(
        id: String,
        clock: Arc<dyn Clock>,
        outcome: Outcome,
        tidy: F,
    ) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let e = Execution::new(id, Err(no_daemon()), clock);
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

    fn daemon(&self) -> std::result::Result<&Daemon, SharedError> {
        self.shared.daemon.as_ref().map_err(SharedError::clone)
    }

    pub fn set_warm(&self) {
        self.shared.warm.store(true, Ordering::SeqCst);
    }

    pub fn is_warm(&self) -> bool {
        self.shared.warm.load(Ordering::SeqCst)
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

    fn send(&self, c: Control) {
        self.shared.controls.lock().unwrap().push(c);
        self.shared.control.notify_one();
    }

    /// The controls sent since the last call (for the driver).
    pub fn take_controls(&self) -> Vec<Control> {
        std::mem::take(&mut *self.shared.controls.lock().unwrap())
    }

    /// Resolves when a control was sent (and not taken yet).
    pub async fn controlled(&self) {
        loop {
            let notified = self.shared.control.notified();
            if !self.shared.controls.lock().unwrap().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Records that the run reached `m`.
    pub fn reached(&self, m: Milestone) {
        let now = self.shared.clock.now_ms();
        self.shared.milestones.lock().unwrap().push((m, now));
        self.shared.progress.send_modify(|n| *n += 1);
    }

    /// Resolves once the container no longer runs, as far as this handle's
    /// driver knows: the run reached `Exited`, or it is over.
    async fn halted(&self) {
        let mut rx = self.shared.progress.subscribe();
        loop {
            if self.has_reached(Milestone::Exited) || self.is_finished() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// True once the run reached `m`.
    pub fn has_reached(&self, m: Milestone) -> bool {
        self.shared
            .milestones
            .lock()
            .unwrap()
            .iter()
            .any(|(x, _)| *x == m)
    }

    /// The milestones reached so far, in order, with their time (ms since
    /// epoch).
    pub fn milestones(&self) -> Vec<(Milestone, i64)> {
        self.shared.milestones.lock().unwrap().clone()
    }

    /// Synchronous, fire-and-forget: marks cancelled, prevents a start that
    /// has not happened yet, and kills the container if it runs.
    /// The returned handle completes once the kill request was answered, so
    /// a host that exits right after `cancel()` can wait for it.
    pub fn cancel(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.is_finished() {
            return None;
        }
        // On record first: no host kills the container before the record
        // says when the cancel came (a container that exits before that
        // time exited by itself, and keeps its result). Then to the driver,
        // then the token: whoever sees the token fired finds the call too.
        self.mark_cancelled(0);
        self.send(Control::Cancel);
        self.shared.token.cancel();
        let id = self.shared.id.clone();
        let daemon = self.shared.daemon.clone();
        Some(crate::rt::spawn(async move {
            if let Ok(d) = daemon {
                d.kill(&id).await;
            }
        }))
    }

    /// Sends `signal`; the run's driver SIGKILLs the container once `grace`
    /// has passed (its lifecycle keeps that time, and sends the kill again
    /// while the container runs). Resolves once the container no longer
    /// runs. A signal the container cannot take now (created, paused,
    /// gone) makes it a cancel: killed at once, never started. Marks
    /// cancelled. A finished run is left alone.
    pub async fn stop(
        &self,
        signal: &str,
        grace: Duration,
    ) -> std::result::Result<(), SharedError> {
        if self.is_finished() {
            return Ok(());
        }
        let grace_ms = grace.as_millis().min(u64::MAX as u128) as u64;
        // On record before the driver can kill (see `cancel`). The hook
        // writes the state file (lock, fsync): not on a worker.
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.mark_cancelled(grace_ms)).await;
        self.send(Control::Stop { grace_ms });
        let d = self.daemon()?;
        if d.signal(&self.shared.id, signal).await.is_err() {
            self.shared.token.cancel();
        }
        self.halted().await;
        // A run that never started must not start now.
        self.shared.token.cancel();
        Ok(())
    }

    pub async fn pause(&self) -> std::result::Result<(), SharedError> {
        let d = self.daemon()?;
        Ok(d.pause(&self.shared.id).await?)
    }

    pub async fn resume(&self) -> std::result::Result<(), SharedError> {
        let d = self.daemon()?;
        Ok(d.resume(&self.shared.id).await?)
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
        self.shared.progress.send_modify(|n| *n += 1);
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

/// The daemon of a handle that needs none (a run already over).
fn no_daemon() -> SharedError {
    SharedError::new(Error::Internal("the run is over".into()))
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

    fn handle(id: &str) -> Execution {
        Execution::new(
            id.into(),
            Err(no_daemon()),
            Arc::new(crate::time::SystemClock),
        )
    }

    #[tokio::test]
    async fn a_panicking_driver_becomes_an_error_outcome() {
        let e = handle("light-runner-0123456789ab");
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
        let e = handle("x");
        e.shared.cancelled.store(true, Ordering::SeqCst);
        e.publish(Ok(RunResult::new(0, 0, false, false)));
        assert!(!e.is_cancelled());
    }

    /// The hook of `h` records how many controls the driver had been sent
    /// when it ran (taking them).
    fn sent_before_the_hook(h: &Execution) -> Arc<std::sync::Mutex<Option<usize>>> {
        let seen = Arc::new(std::sync::Mutex::new(None));
        let (me, out) = (h.clone(), seen.clone());
        h.set_cancel_hook(Box::new(move |_| {
            *out.lock().unwrap() = Some(me.take_controls().len());
        }));
        seen
    }

    // Found under load (20 hosts cancelling one run): a host whose driver
    // killed the container before its cancel was on record, while another
    // host's later cancel time was written first, made the run look as if
    // it had exited by itself ("exited", not "cancelled").
    #[test]
    fn a_cancel_is_on_record_before_the_driver_is_told() {
        let e = handle("x");
        let seen = sent_before_the_hook(&e);
        e.cancel();
        assert_eq!(*seen.lock().unwrap(), Some(0));
        assert_eq!(e.take_controls().len(), 1, "then the driver is told");
    }

    #[tokio::test]
    async fn a_stop_is_on_record_before_the_driver_is_told() {
        let e = handle("x");
        let seen = sent_before_the_hook(&e);
        let _ = e.stop("SIGTERM", Duration::ZERO).await;
        assert_eq!(*seen.lock().unwrap(), Some(0));
        assert_eq!(e.take_controls().len(), 1, "then the driver is told");
    }

    #[tokio::test]
    async fn outcome_is_published_once() {
        let e = handle("x");
        e.publish(Ok(RunResult::new(1, 0, false, false)));
        e.publish(Ok(RunResult::new(2, 0, false, false)));
        assert_eq!(e.outcome().await.unwrap().exit_code, 1);
        e.started().await;
        assert!(e.is_finished());
    }
}
