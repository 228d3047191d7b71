//! The one driver of every run: it does what a run's [`Lifecycle`] decides,
//! against the backend and the store, and feeds back what it observed.
//!
//! A launcher first sets the run up (checks, daemon, create and seed), then
//! the driver loops: step the lifecycle, carry out its actions, and when
//! there is nothing to do, sleep until news (the container's events, the
//! record's changes, this handle's cancel or stop, the end of the attached
//! output) or the time the lifecycle asked for. Attached and detached runs
//! differ only in who may finalize ([`Finalizer`]) and where the output
//! goes: an attached launcher attaches to the container and delivers its
//! lines to `onLog` as they come; everyone else keeps the output from the
//! daemon's log when the run ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use super::ctx::Ctx;
use super::execution::{Control, Execution, Milestone, Outcome};
use super::lifecycle::{
    self, Action, Ending, Failure, Finalizer, Lifecycle, Linger, Liveness, Observation, Terminal,
    Verdict,
};
use super::outcome::{outcome_of, record_error, record_extract_failure};
use super::output::{keep_output, Capture};
use super::setup;
use super::waiter::{Waiter, Wake};
use super::warm::Warm;
use crate::backend::{Backend, Life, SetupRequest, SetupStep};
use crate::config::{RunRequest, RunnerConfig, DEFAULT_MAX_EXTRACT_BYTES};
use crate::errors::{Error, Result, SharedError};
use crate::lines::LogSink;
use crate::record::{Claim, ExtractResult, HostIdentity, Kept, Lost, RunPhase, RunRecord};
use crate::watchdog;

/// How long output may keep arriving after the exit before it is cut off.
const LOG_DRAIN: Duration = Duration::from_secs(5);
/// ... after a container the daemon lost (its stream may never close).
const LOG_DRAIN_LOST: Duration = Duration::from_millis(200);

/// What the launcher of an attached run holds of its output.
struct LiveOutput {
    /// Where lines go as they come (besides the kept copy).
    sink: Option<LogSink>,
    /// The output as it flows: capped (`maxLogBytes`) and kept.
    capture: Arc<Mutex<Capture>>,
    /// The task reading the container's output; told when it ends, and
    /// whether it ended broken (the connection to the daemon, not the
    /// container, ended it).
    pump: Option<tokio::task::JoinHandle<()>>,
    ended: Arc<Notify>,
    ended_seen: bool,
    /// A wait on the container: told when it returns, and whether the
    /// daemon said the container stopped (or the wait broke).
    waiting: bool,
    stopped: Arc<Notify>,
    stopped_said: Arc<std::sync::atomic::AtomicBool>,
    stopped_seen: bool,
    /// The task writing `input` to stdin.
    feeder: Option<tokio::task::JoinHandle<()>>,
}

fn lock(c: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// The launcher's request, for its start.
struct Launch {
    req: RunRequest,
    /// The warm container it took, if any.
    warm: Option<Warm>,
}

/// Drives one run until it is over for its handle.
pub struct Driver<B: Backend> {
    ctx: Ctx,
    exec: Execution,
    backend: Option<B>,
    lc: Lifecycle,
    waiter: Option<Waiter<B::Subscription>>,
    launch: Option<Launch>,
    output: Option<LiveOutput>,
    /// The launcher's setup or start failure, its verdict.
    setup_error: Option<SharedError>,
    cancel_seen: bool,
    /// This host wrote the run's terminal record.
    won: bool,
    /// What the end's actions gathered: the record as claimed (and when),
    /// the claim's heartbeat, the results read out, the output kept.
    end: EndWork,
}

/// What a run's end gathers between its claim and its record.
#[derive(Default)]
struct EndWork {
    claimed: Option<(RunRecord, i64)>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    extracted: Option<std::result::Result<Vec<ExtractResult>, SharedError>>,
    kept: Option<(Kept, bool)>,
}

/// How a drive ended: the handle's outcome, and whether this host wrote
/// the terminal record.
pub struct Driven {
    pub outcome: Outcome,
    pub won: bool,
}

impl<B: Backend> Driver<B> {
    fn new(ctx: Ctx, exec: Execution, backend: Option<B>, lc: Lifecycle) -> Self {
        Driver {
            ctx,
            exec,
            backend,
            lc,
            waiter: None,
            launch: None,
            output: None,
            setup_error: None,
            cancel_seen: false,
            won: false,
            end: EndWork::default(),
        }
    }

    /// A driver for a run this host watches (attach) or reclaims.
    pub fn watcher(ctx: Ctx, exec: Execution, backend: B, lc: Lifecycle) -> Self {
        Driver::new(ctx, exec, Some(backend), lc)
    }

    fn id(&self) -> &str {
        self.exec.id()
    }

    fn now(&self) -> i64 {
        self.ctx.now_ms()
    }

    fn observe(&mut self, obs: Observation) {
        let now = self.now();
        self.lc.observe(obs, now);
    }

    /// Reads the record and tells the lifecycle, with its launcher's
    /// liveness (a signal-0 check: no daemon request).
    async fn read_record(&mut self) {
        match self.ctx.store.read(self.exec.id()).await {
            Some(record) => {
                let launcher = Liveness::of(record.host.as_ref().map(HostIdentity::is_alive));
                self.observe(Observation::Record {
                    record: Box::new(record),
                    launcher,
                });
            }
            None => self.observe(Observation::RecordGone),
        }
    }

    /// Takes this handle's cancel and stop calls.
    fn take_controls(&mut self) {
        for c in self.exec.take_controls() {
            self.observe(match c {
                Control::Cancel => Observation::Cancel,
                Control::Stop { grace_ms } => Observation::Stop { grace_ms },
            });
        }
        if self.exec.shared.token.is_cancelled() && !self.cancel_seen {
            self.cancel_seen = true;
            self.observe(Observation::Cancel);
        }
    }

    /// Steps the lifecycle until it resolves.
    pub async fn run(mut self) -> Driven {
        if let Some(b) = &self.backend {
            if self.waiter.is_none() {
                self.waiter = Some(Waiter::new(b, self.ctx.store.dir(), self.exec.id()));
            }
        }
        // As it is now: another host may have cancelled the run while it
        // was set up.
        self.read_record().await;
        loop {
            self.take_controls();
            let now = self.now();
            let step = self.lc.step(now);
            if step.actions.is_empty() {
                self.wait(step.wake_at).await;
                continue;
            }
            for action in step.actions {
                if let Some(outcome) = self.act(action).await {
                    return Driven {
                        outcome,
                        won: self.won,
                    };
                }
            }
        }
    }

    /// Sleeps until news or `until` (ms since the epoch), then re-reads the
    /// record.
    async fn wait(&mut self, until: Option<i64>) {
        let at = until.map(|t| {
            let ms = (t - self.now()).max(0) as u64;
            tokio::time::Instant::now() + Duration::from_millis(ms)
        });
        let token = self.exec.shared.token.clone();
        let exec = self.exec.clone();
        let cancel_seen = self.cancel_seen;
        let output_end = self
            .output
            .as_ref()
            .filter(|o| !o.ended_seen)
            .map(|o| o.ended.clone());
        let stopped = self
            .output
            .as_ref()
            .filter(|o| !o.stopped_seen && o.waiting)
            .map(|o| o.stopped.clone());
        let Some(waiter) = self.waiter.as_mut() else {
            // Nothing to watch (no daemon): only time and this handle.
            tokio::select! {
                _ = crate::rt::sleep_until(at) => {}
                _ = token.cancelled(), if !cancel_seen => {}
                _ = exec.controlled() => {}
            }
            return;
        };
        let news = tokio::select! {
            w = waiter.next(at) => Some(w),
            _ = token.cancelled(), if !cancel_seen => None,
            _ = exec.controlled() => None,
            _ = async { output_end.as_ref().expect("guarded").notified().await }, if output_end.is_some() => {
                if let Some(o) = self.output.as_mut() {
                    o.ended_seen = true;
                }
                Some(Wake::Container)
            }
            _ = async { stopped.as_ref().expect("guarded").notified().await }, if stopped.is_some() => {
                let said = self.output.as_mut().is_some_and(|o| {
                    o.stopped_seen = true;
                    o.stopped_said.load(std::sync::atomic::Ordering::SeqCst)
                });
                // The daemon said it stopped; a wait cut by the daemon going
                // away is only news (the daemon's answers tell the rest).
                let news = if said {
                    Observation::Stopped
                } else {
                    Observation::ContainerNews
                };
                self.lc.observe(news, self.ctx.now_ms());
                None
            }
        };
        match news {
            Some(Wake::Container) => self.observe(Observation::ContainerNews),
            Some(Wake::State) => self.read_record().await,
            Some(Wake::Timer) | None => {}
        }
        if news != Some(Wake::State) {
            self.read_record().await;
        }
    }

    /// Carries out one action; `Some` when the run is over for the handle.
    async fn act(&mut self, action: Action) -> Option<Outcome> {
        let id = self.id().to_string();
        match action {
            Action::Inspect => {
                let backend = self.backend.clone()?;
                let obs = match backend.inspect(&id).await {
                    Ok(life) => {
                        let exited_in_gap = matches!(&life, Life::Exited(e)
                            if e.finished_at.is_some_and(|at| backend.exited_in_gap(at)));
                        // What the platform's news said, an inspect may not.
                        let said = backend.said(&id);
                        if said.oom {
                            self.observe(Observation::Oom);
                        }
                        if said.killed {
                            self.observe(Observation::Signalled);
                        }
                        Observation::Container {
                            life,
                            exited_in_gap,
                        }
                    }
                    Err(_) => Observation::DaemonUnreachable,
                };
                self.observe(obs);
            }
            Action::AskLiveRestore => {
                let on = match &self.backend {
                    Some(b) => b.live_restore().await,
                    None => false,
                };
                self.observe(Observation::LiveRestore(on));
            }
            Action::Start => {
                let obs = match self.start().await {
                    Ok(()) => Observation::Started,
                    Err(e) => {
                        self.setup_error = Some(e.into());
                        Observation::SetupFailed
                    }
                };
                self.observe(obs);
            }
            Action::Kill => {
                if let Some(b) = &self.backend {
                    b.kill(&id).await;
                }
            }
            Action::RecordTimedOut => {
                self.ctx
                    .store
                    .change(&id, |s| {
                        if s.is_terminal() || s.is_timed_out() {
                            return false;
                        }
                        s.timed_out = Some(true);
                        true
                    })
                    .await;
            }
            Action::Claim(ending) => {
                let obs = self.claim_end(&ending).await;
                self.observe(obs);
            }
            Action::Heartbeat => {
                if self.end.heartbeat.is_none() {
                    self.end.heartbeat = Some(self.heartbeat());
                }
            }
            Action::Halted => self.exec.reached(Milestone::Exited),
            Action::Extract => self.end.extracted = self.extract().await,
            Action::KeepOutput { lost } => self.end.kept = self.keep(lost).await,
            Action::Record(t) => {
                let obs = self.record(&t).await;
                self.observe(obs);
            }
            Action::RecordFailure(f) => {
                let obs = self.record_failure(f).await;
                self.observe(obs);
            }
            Action::Remove { never_started } => self.remove(never_started).await,
            Action::Sweep => {
                if let Some(b) = &self.backend {
                    sweep(b, &id).await;
                }
            }
            Action::Resolve(v) => return Some(self.verdict(v)),
        }
        None
    }

    fn verdict(&mut self, v: Verdict) -> Outcome {
        let grace = self.ctx.limits.daemon_grace;
        match v {
            Verdict::Record(r) => outcome_of(&r, grace),
            Verdict::SetupFailed => Err(self
                .setup_error
                .clone()
                .unwrap_or_else(|| SharedError::new(Error::Internal("setup failed".into())))),
            Verdict::DaemonUnreachable => Err(SharedError::new(Error::lost(
                self.id(),
                Lost::DaemonUnreachable,
                grace,
            ))),
            Verdict::RecordGone => Err(SharedError::new(Error::StateGone {
                id: self.id().to_string(),
            })),
            Verdict::Left => Err(SharedError::new(Error::Internal(
                "left to whoever watches the run".into(),
            ))),
        }
    }

    /// Starts the created container: an attached launcher attaches first
    /// (nothing of the output or of stdin is missed), then feeds `input`
    /// and reads the output as it comes.
    async fn start(&mut self) -> Result<()> {
        let backend = self
            .backend
            .clone()
            .ok_or_else(|| Error::Internal("start without a daemon".into()))?;
        let id = self.id().to_string();
        let attached = self.lc.finalizer() == Finalizer::Sole;
        if attached {
            let launch = self.launch.as_ref().expect("a launcher");
            let input = launch.req.input.clone();
            let launch_is_warm = launch.warm.is_some();
            let io = match &launch.warm {
                // Warm: it runs already; the job goes to its idle shell.
                Some(w) => {
                    let command = launch.req.command.as_deref().unwrap_or_default();
                    let io = backend
                        .start_warm(&id, &w.token, &launch.req.env, command)
                        .await?;
                    // The timeout starts with the job.
                    if let Some(ms) = launch.req.timeout_ms.and_then(|t| i64::try_from(t).ok()) {
                        let at = self.now().saturating_add(ms);
                        self.ctx
                            .store
                            .change(&id, move |s| {
                                s.deadline = Some(crate::time::Stamp::at(at));
                                true
                            })
                            .await;
                    }
                    io
                }
                None => {
                    let io = backend.attach(&id, input.is_some()).await?;
                    backend.start(&id, self.ctx.limits.start_timeout).await?;
                    io
                }
            };
            let out = self.output.as_mut().expect("attached output");
            let mut stdin = io.input;
            // Fed concurrently with the run: a container that never reads
            // stdin must not block it, its timeout or its cancel. A warm
            // job's stdin is the container's: closed after its input (or at
            // once without one), so it sees EOF as a cold run does.
            let warm = launch_is_warm;
            out.feeder = (warm || input.is_some()).then(|| {
                crate::rt::spawn(async move {
                    if let Some(json) = input {
                        let _ = stdin.write_all(json.as_bytes()).await;
                    }
                    let _ = stdin.shutdown().await;
                })
            });
            out.pump = Some(crate::rt::spawn(pump(
                io.output,
                out.sink.clone(),
                out.capture.clone(),
                out.ended.clone(),
            )));
            // The fastest word of the exit, and the daemon's own: a daemon
            // that stops the container on its way down says so here first.
            out.waiting = true;
            let (said, told, waiter, wid) = (
                out.stopped_said.clone(),
                out.stopped.clone(),
                backend.clone(),
                id.clone(),
            );
            crate::rt::spawn(async move {
                if waiter.wait(&wid).await.is_ok() {
                    said.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                told.notify_one();
            });
            self.exec.reached(Milestone::Started);
            self.exec.mark_started();
            // Off the run's path: the record says the setup is over.
            let store = self.ctx.store.clone();
            crate::rt::spawn(async move {
                store.change(&id, mark_started).await;
            });
        } else {
            backend.start(&id, self.ctx.limits.start_timeout).await?;
            self.exec.reached(Milestone::Started);
            // Recorded before the host may go: watchers never wait for a
            // launcher that is done.
            self.ctx.store.change(&id, mark_started).await;
            self.exec.mark_started();
        }
        Ok(())
    }

    /// Takes the right to write the run's end: the claim (detached runs),
    /// or the record as it is now.
    async fn claim_end(&mut self, ending: &Ending) -> Observation {
        let id = self.id().to_string();
        let now = self.now();
        let fallback = self.lc.record().cloned();
        let claimed = if ending.failed_setup || ending.host_died {
            // Nothing of the record is needed: the failure is written as is.
            fallback.unwrap_or_else(|| gone(&id))
        } else {
            match self.lc.finalizer() {
                Finalizer::Claim => match self.claim().await {
                    Claimed::Won(r) => r,
                    // Another host ended it meanwhile, and may have died
                    // before removing everything.
                    Claimed::Over(r) => {
                        return Observation::ClaimOver {
                            record: Box::new(r),
                            sweep: true,
                        }
                    }
                    Claimed::Held => return Observation::ClaimHeld,
                },
                Finalizer::Sole | Finalizer::Never => {
                    match self.ctx.store.read(&id).await.or(fallback) {
                        Some(r) => r,
                        None => {
                            return Observation::ClaimOver {
                                record: Box::new(gone(&id)),
                                sweep: false,
                            }
                        }
                    }
                }
            }
        };
        self.end.claimed = Some((claimed.clone(), now));
        Observation::Claimed(Box::new(claimed))
    }

    /// Reads the results out of the exited container.
    async fn extract(&mut self) -> Option<std::result::Result<Vec<ExtractResult>, SharedError>> {
        let b = self.backend.clone()?;
        let (claimed, _) = self.end.claimed.as_ref()?;
        let specs = claimed.extract.clone().unwrap_or_default();
        let cap = claimed
            .max_extract_bytes
            .unwrap_or(DEFAULT_MAX_EXTRACT_BYTES);
        let x = b.extract(self.id(), &claimed.workdir, &specs, cap).await;
        if x.is_ok() {
            self.exec.reached(Milestone::Extracted);
        }
        Some(x.map_err(SharedError::new))
    }

    /// Writes the run's terminal record: `t`, with what was read out and
    /// kept. Answers `Recorded`.
    async fn record(&mut self, t: &Terminal) -> Observation {
        let id = self.id().to_string();
        if let Some(h) = self.end.heartbeat.take() {
            h.abort();
        }
        let (claimed, now) = self
            .end
            .claimed
            .clone()
            .unwrap_or_else(|| (gone(&id), self.now()));
        let grace = self.ctx.limits.daemon_grace;
        let (extracted, kept) = (self.end.extracted.take(), self.end.kept.take());
        let mut done = claimed;
        apply_terminal(&mut done, t, &extracted, &kept, now, grace);
        let t2 = t.clone();
        let written = self
            .ctx
            .store
            .update(&id, move |s| {
                if s.is_terminal() {
                    return false;
                }
                apply_terminal(s, &t2, &extracted, &kept, now, grace);
                true
            })
            .await
            .ok()
            .flatten();
        self.won = written.as_ref().is_some_and(|(_, w)| *w);
        self.exec.mark_started();
        Observation::Recorded(Box::new(match written {
            Some((r, _)) if r.is_terminal() => r,
            // The disk failed: the result is what this host found.
            _ => done,
        }))
    }

    /// Writes a failure as the run's end. Answers `Recorded`.
    async fn record_failure(&mut self, f: Failure) -> Observation {
        let id = self.id().to_string();
        let now = self.now();
        let store = self.ctx.store.clone();
        let fallback = self.lc.record().cloned();
        let record = match f {
            Failure::SetupFailed => {
                let err = self
                    .setup_error
                    .clone()
                    .unwrap_or_else(|| SharedError::new(Error::Internal("setup failed".into())));
                let written = store
                    .change(&id, move |s| {
                        if s.is_terminal() {
                            return false;
                        }
                        record_error(s, &err, now);
                        true
                    })
                    .await;
                written.or(fallback)
            }
            Failure::HostDied => {
                let written = store
                    .update(&id, move |s| {
                        if s.is_terminal() {
                            return false;
                        }
                        s.record_failure("the host process that ran this attached run died", now);
                        true
                    })
                    .await
                    .ok()
                    .flatten();
                self.won = written.as_ref().is_some_and(|(_, w)| *w);
                written.map(|(r, _)| r).or(fallback)
            }
        };
        self.exec.mark_started();
        Observation::Recorded(Box::new(record.unwrap_or_else(|| gone(&id))))
    }

    /// The run's output kept beside its record: the attached launcher's
    /// own copy (after the stream ends, within a drain bound, shorter for
    /// a container the daemon lost), or the daemon's log of an exited
    /// container.
    async fn keep(&mut self, lost: bool) -> Option<(Kept, bool)> {
        if let Some(out) = self.output.as_mut() {
            let pump = out.pump.take()?;
            if let Some(f) = out.feeder.take() {
                f.abort();
            }
            let drain = if lost { LOG_DRAIN_LOST } else { LOG_DRAIN };
            let _ = tokio::time::timeout(drain, pump).await;
            let capture = out.capture.clone();
            let (kept, truncated) = self
                .ctx
                .store
                .blocking(move || {
                    let mut c = lock(&capture);
                    let truncated = c.truncated();
                    (c.commit(), truncated)
                })
                .await;
            return kept.map(|k| (k, truncated));
        }
        let b = self.backend.as_ref()?;
        let max_log_bytes = self.end.claimed.as_ref()?.0.max_log_bytes;
        let cap = self.ctx.limits.max_kept_log_bytes;
        Some(keep_output(b, &self.ctx.store, self.exec.id(), max_log_bytes, cap).await)
    }

    /// Claims the finalization under the state directory's lock.
    async fn claim(&mut self) -> Claimed {
        let id = self.id().to_string();
        let me = self.ctx.host.identity.clone();
        let now = self.now();
        let stale = self
            .ctx
            .limits
            .claim_stale
            .as_millis()
            .min(i64::MAX as u128) as i64;
        let claimer = me.clone();
        let result = self
            .ctx
            .store
            .update(&id, move |s| {
                if s.is_terminal() {
                    return false;
                }
                let holder = s.finalizing.as_ref().map(|c| c.host.is_alive());
                let holder = Liveness::of(holder);
                if !lifecycle::may_claim(s.finalizing.as_ref(), &claimer, holder, now, stale) {
                    return false;
                }
                s.finalizing = Some(Claim {
                    host: claimer,
                    heartbeat: now,
                });
                true
            })
            .await;
        match result {
            Ok(Some((r, true))) => Claimed::Won(r),
            Ok(Some((r, false))) if r.is_terminal() => Claimed::Over(r),
            Ok(None) => Claimed::Over(self.lc.record().cloned().unwrap_or_else(|| gone(&id))),
            _ => Claimed::Held,
        }
    }

    /// Keeps this host's claim fresh while it finalizes.
    fn heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let store = self.ctx.store.clone();
        let id = self.id().to_string();
        let me = self.ctx.host.identity.clone();
        let every = self.ctx.limits.heartbeat();
        let clock = self.ctx.clock.clone();
        crate::rt::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let (me, now) = (me.clone(), clock.now_ms());
                store
                    .change(&id, move |s| match &mut s.finalizing {
                        Some(c) if c.host == me => {
                            c.heartbeat = now;
                            true
                        }
                        _ => false,
                    })
                    .await;
            }
        })
    }

    /// Removes the container and volume: at once, retried in the background
    /// when the daemon cannot take it now (the result is recorded first and
    /// never waits for it). A run that never started may still get a create
    /// its launcher sent before it died: a background pass looks for it for
    /// a while. An attached run's watchdog guard goes once it is removed.
    async fn remove(&mut self, never_started: bool) {
        let id = self.id().to_string();
        let sole = self.lc.finalizer() == Finalizer::Sole;
        let Some(b) = self.backend.clone() else {
            if sole {
                watchdog::release(&id);
            }
            return;
        };
        if self.launch.as_ref().is_some_and(|l| l.warm.is_some()) {
            // A warm run's removal may end after its result: recorded first,
            // guarded by the watchdog until it is gone.
            let owned = id.clone();
            crate::rt::spawn(async move {
                b.remove_eventually(&id, move || watchdog::release(&owned))
                    .await;
            });
            return;
        }
        if never_started && !sole {
            // Its launcher may have sent a create before it died: a
            // background pass looks again, as `Linger` says (off the run's
            // path: the result is recorded already).
            let _ = b.remove(&id).await;
            let clock = self.ctx.clock.clone();
            let mut linger = Linger::new(clock.now_ms(), self.ctx.limits.setup_linger);
            crate::rt::spawn(async move {
                while let Some(at) = linger.next_look(clock.now_ms()) {
                    let wait = (at - clock.now_ms()).max(0) as u64;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    if !b.remove_late(&id).await {
                        break;
                    }
                }
            });
            return;
        }
        let owned = id.clone();
        b.remove_eventually(&id, move || {
            if sole {
                watchdog::release(&owned);
            }
        })
        .await;
    }
}

enum Claimed {
    Won(RunRecord),
    /// Another host ended it already.
    Over(RunRecord),
    Held,
}

/// A record for a run whose state file is gone.
fn gone(id: &str) -> RunRecord {
    let mut r = RunRecord::new(id, "", "", crate::time::Stamp::at(0));
    r.record_failure("the state file of the run disappeared", 0);
    r
}

fn mark_started(s: &mut RunRecord) -> bool {
    if s.is_terminal() || !s.is_setting_up() {
        return false;
    }
    s.phase = Some(RunPhase::Started);
    true
}

/// Writes the end of a run into its record.
fn apply_terminal(
    s: &mut RunRecord,
    t: &Terminal,
    extracted: &Option<std::result::Result<Vec<ExtractResult>, SharedError>>,
    kept: &Option<(Kept, bool)>,
    now: i64,
    grace: Duration,
) {
    s.finish(t.status, t.exit_code, now);
    s.cancelled = Some(t.cancelled);
    s.timed_out = Some(t.timed_out);
    if t.oom_killed {
        s.oom_killed = Some(true);
    }
    match t.lost {
        Some(why) => {
            s.lost = Some(why);
            s.error = Some(why.message(grace));
        }
        None => s.lost = None,
    }
    if t.exit_code.is_none() && s.error.is_none() {
        s.error = Some("the container never started".into());
    }
    if t.never_started && t.cancelled {
        // Cancelled before its container ran: no image was used.
        s.built_image = None;
    }
    match extracted {
        Some(Ok(x)) => s.extracted = Some(x.clone()),
        Some(Err(e)) => record_extract_failure(s, e, t.exit_code.unwrap_or(-1), now),
        None => {}
    }
    if let Some((k, truncated)) = kept {
        s.record_kept(k, *truncated);
    }
}

/// Removes what a finalized run left: its finalizer records the result
/// before it removes the container and the volume, and may die in between.
/// A container that still runs is not this host's to stop; what the daemon
/// refuses now is retried in the background.
pub async fn sweep<B: Backend>(b: &B, id: &str) {
    if !matches!(
        b.inspect(id).await,
        Ok(Life::Running | Life::Paused) | Err(_)
    ) {
        b.remove_eventually(id, || {}).await;
    }
}

/// Splits the attached output into lines, per stream, in order, for
/// `onLog` and for the kept copy; past `maxLogBytes` the stream is still
/// drained (the container keeps running) but nothing is delivered or kept.
async fn pump(
    mut stream: crate::backend::OutputChunks,
    sink: Option<LogSink>,
    capture: Arc<Mutex<Capture>>,
    ended: Arc<Notify>,
) {
    while let Some(item) = stream.next().await {
        let Ok(chunk) = item else { break };
        let batch = lock(&capture).push(chunk.stream, &chunk.bytes, crate::time::now_ms());
        if let (Some(sink), false) = (&sink, batch.is_empty()) {
            sink(batch).await;
        }
    }
    let rest = lock(&capture).finish(crate::time::now_ms());
    if let (Some(sink), false) = (&sink, rest.is_empty()) {
        sink(rest).await;
    }
    // The stream ends when the container stops: look at it now.
    ended.notify_one();
}

/// Launches a run this process drives: its setup, then its lifecycle.
/// `on_log` (attached runs) receives its lines as they come.
#[allow(clippy::too_many_arguments)]
pub async fn launch(
    ctx: Ctx,
    exec: Execution,
    cfg: RunnerConfig,
    req: RunRequest,
    record: RunRecord,
    on_log: Option<LogSink>,
    warm: Option<Warm>,
) -> Outcome {
    let finalizer = if req.detached {
        Finalizer::Claim
    } else {
        Finalizer::Sole
    };
    let lc = Lifecycle::launcher(finalizer, record, ctx.limits.clone());
    let mut d = Driver::new(ctx, exec, None, lc);
    if finalizer == Finalizer::Sole {
        let capture = Capture::new(
            d.ctx.store.dir(),
            d.exec.id(),
            cfg.max_log_bytes,
            d.ctx.limits.max_kept_log_bytes,
        );
        d.output = Some(LiveOutput {
            sink: on_log.clone(),
            capture: Arc::new(Mutex::new(capture)),
            pump: None,
            ended: Arc::new(Notify::new()),
            ended_seen: false,
            waiting: false,
            stopped: Arc::new(Notify::new()),
            stopped_said: Arc::default(),
            stopped_seen: false,
            feeder: None,
        });
    }
    d.launch = Some(Launch {
        req: req.clone(),
        warm,
    });
    let set_up = d.set_up(&cfg, &req, on_log).await;
    match set_up {
        Ok(()) => d.observe(Observation::SetupDone),
        Err(e) => {
            d.setup_error = Some(e.into());
            d.observe(Observation::SetupFailed);
        }
    }
    d.run().await.outcome
}

impl Driver<crate::backend::docker::Daemon> {
    /// Checks, daemon, then create and seed (skipped once cancelled: the
    /// lifecycle then never starts the run).
    async fn set_up(
        &mut self,
        cfg: &RunnerConfig,
        req: &RunRequest,
        on_log: Option<LogSink>,
    ) -> Result<()> {
        setup::precheck(&self.ctx, cfg, req)?;
        let hardening = setup::hardening(&self.ctx, cfg)?;
        // Called off (cancel, abort, stop): nothing more is created. The
        // token is fired after the call is handed to the driver, so the
        // lifecycle knows it too.
        let token = self.exec.shared.token.clone();
        if token.is_cancelled() {
            return Ok(());
        }
        let daemon = self.ctx.connected().await?;
        self.backend = Some(daemon.clone());
        let id = self.exec.id().to_string();
        let uses = self.ctx.store.cache_uses();
        let setup = SetupRequest {
            id: &id,
            cfg,
            hardening: &hardening,
            create_timeout: self.ctx.limits.start_timeout,
            req,
            cancel: &self.exec.shared.token,
            build_log: if req.detached { None } else { on_log },
            cache_uses: &uses,
        };
        if self.launch.as_ref().is_some_and(|l| l.warm.is_some()) {
            // Created, started and guarded already: only `dir` is left.
            self.exec.reached(Milestone::Created);
            if req.dir.is_some() && !token.is_cancelled() {
                daemon.seed(setup).await?;
                self.exec.reached(Milestone::Seeded);
            }
            return Ok(());
        }
        if self.lc.finalizer() == Finalizer::Sole {
            watchdog::guard(&id, &daemon.endpoint);
        }
        if token.is_cancelled() {
            return Ok(());
        }
        let exec = self.exec.clone();
        daemon
            .create_and_seed(setup, &move |step| {
                exec.reached(match step {
                    SetupStep::Created => Milestone::Created,
                    SetupStep::Seeded => Milestone::Seeded,
                })
            })
            .await
    }
}
