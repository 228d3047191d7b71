//! Detached runs: the container outlives its host, and any host on the
//! machine can reconnect to it by id and collect its result.
//!
//! The state file is the contract between hosts. The launcher writes it
//! synchronously before any async work, then sets the run up. Every host that
//! watches the run (the launcher, `attach()`, `cleanupOrphanStates()`) waits
//! for the exit, enforces the recorded deadline, and races to *claim* the
//! finalization under the state directory lock: exactly one host extracts to
//! the recorded destinations, records the result and removes the container
//! and volume; every other host resolves from the recorded result. A claim
//! whose holder died is taken over.

use std::path::Path;
use std::time::{Duration, Instant};

use bollard::Docker;

use crate::config::{RunRequest, RunnerConfig};
use crate::docker;
use crate::errors::{Error, Lost, Result};
use crate::execution::{Execution, Outcome};
use crate::extract::extract_all;
use crate::id::new_run_id;
use crate::live;
use crate::output;
use crate::record::{self, outcome_from_state};
use crate::resources::{self, End, Exit, Life};
use crate::setup::{self, Phase};
use crate::state::{
    self, iso_from_ms, now_ms, parse_iso_ms, Claim, HostIdentity, RunState, Status,
};

/// Backoff step of a watcher whose daemon calls fail.
const RETRY_STEP: Duration = Duration::from_millis(500);
/// How often a watcher re-checks a process it cannot be notified about: a
/// launcher still setting the run up, the host of an attached run, the
/// holder of a finalization claim (a signal-0 check and a file read: no
/// daemon request).
const PROCESS_POLL: Duration = Duration::from_secs(1);
/// How long a killed container may keep running before the kill is sent
/// again.
const KILL_RETRY: Duration = Duration::from_secs(5);
/// How long a container may stay absent when nobody is setting it up.
const ABSENCE_GRACE: Duration = Duration::from_secs(3);
/// How long a run that never started is watched for late creates after its
/// removal (its launcher died while setting it up).
const SETUP_LINGER: Duration = Duration::from_secs(5);
/// A claim not refreshed for this long is taken over.
const CLAIM_STALE_MS: i64 = 60_000;

/// [`CLAIM_STALE_MS`], or `LIGHT_RUNNER_CLAIM_STALE_MS` (read at call time;
/// for tests and probes that cannot wait a minute).
fn claim_stale_ms() -> i64 {
    std::env::var("LIGHT_RUNNER_CLAIM_STALE_MS")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(CLAIM_STALE_MS)
}

/// How often a finalizer refreshes its claim: six times per staleness.
fn heartbeat() -> Duration {
    Duration::from_millis((claim_stale_ms() / 6).max(1) as u64)
}
/// Longest setup trusted from a launcher whose liveness cannot be checked.
const REMOTE_SETUP_MS: i64 = 30 * 60 * 1000;

/// Marks the state cancelled when a handle is cancelled or stopped.
fn cancel_hook(exec: &Execution, dir: &Path) {
    let id = exec.id().to_string();
    let dir = dir.to_path_buf();
    exec.set_cancel_hook(Box::new(move |grace_ms| {
        let _ = state::update(&dir, &id, |s| {
            if s.status.is_terminal() {
                return false;
            }
            let now = now_ms();
            s.cancelled = Some(true);
            // The first cancel counts; a later one never extends a grace.
            s.cancelled_at.get_or_insert_with(|| iso_from_ms(now));
            let due = now.saturating_add(grace_ms.min(i64::MAX as u64) as i64);
            let earlier = s.kill_after.as_deref().and_then(parse_iso_ms);
            s.kill_after = Some(iso_from_ms(earlier.map_or(due, |e| e.min(due))));
            true
        });
    }));
}

/// Starts a detached run: writes its state file now, sets it up and watches
/// it in the background. Errs only when the state file cannot be written.
pub fn launch(cfg: &RunnerConfig, req: RunRequest, aborted: bool) -> Result<Execution> {
    let id = new_run_id();
    // The run keeps the state dir it started with, whatever the env says later.
    let dir = state::state_dir();
    state::write_state_in(&dir, &record::initial(&id, &req, cfg)).map_err(|source| {
        Error::StateWrite {
            dir: dir.clone(),
            source,
        }
    })?;
    let exec = Execution::new(id);
    cancel_hook(&exec, &dir);
    live::insert(&exec);
    if aborted {
        exec.cancel();
    }
    let cfg = cfg.clone();
    exec.drive(
        move |driver| async move {
            let endpoint = docker::endpoint();
            match set_up(&cfg, &req, &driver, &dir).await {
                Ok(docker) => watch(&docker, &endpoint, &driver, &dir).await,
                Err(e) => {
                    fail(&driver, &dir, &e).await;
                    Err(e.into())
                }
            }
        },
        |driver| live::remove(driver.id()),
    );
    Ok(exec)
}

/// Creates, seeds and starts the container; records the start.
async fn set_up(
    cfg: &RunnerConfig,
    req: &RunRequest,
    exec: &Execution,
    dir: &Path,
) -> Result<Docker> {
    setup::precheck(cfg, req)?;
    let docker = docker::connected().await?;
    let id = exec.id().to_string();
    if !exec.is_cancelled() {
        let cache_uses = state::cache_use_dir(dir);
        let ctx = setup::Context {
            docker: &docker,
            cfg,
            id: &id,
            cancel: &exec.shared.token,
            build_log: None,
            cache_uses: &cache_uses,
        };
        setup::set_up(&ctx, req, &|p| exec.mark_phase(p)).await?;
    }
    // Another host may have cancelled the run while it was set up.
    let cancelled_elsewhere =
        state::read_state_in(dir, &id).is_some_and(|s| s.cancelled == Some(true));
    if !exec.is_cancelled() && !cancelled_elsewhere {
        resources::start(&docker, &id).await?;
        exec.mark_phase(Phase::Started);
    }
    let _ = state::update(dir, &id, |s| {
        s.phase = Some("started".into());
        true
    });
    exec.mark_started();
    Ok(docker)
}

/// Records a failed setup and removes whatever was created.
async fn fail(exec: &Execution, dir: &Path, why: &Error) {
    let id = exec.id().to_string();
    let _ = state::update(dir, &id, |s| {
        if s.status.is_terminal() {
            return false;
        }
        record::record_error(s, why);
        true
    });
    if let Ok(d) = docker::client() {
        resources::remove_all_eventually(&d, &id, || {}).await;
    }
}

/// Reconnects to a run by id: `None` without a state file.
pub fn attach(id: &str) -> Option<Execution> {
    if let Some(exec) = live::get(id) {
        return Some(exec);
    }
    let dir = state::state_dir();
    let st = state::read_state_in(&dir, id)?;
    if st.status.is_terminal() {
        let outcome = outcome_from_state(&st);
        if st.is_attached() {
            return Some(Execution::finished(id.to_string(), outcome));
        }
        // Its finalizer may have died between recording the result and
        // removing the container and volume, with nobody watching: what is
        // left goes before the result is given (bounded: a hung daemon
        // delays an attach to a finished run by SWEEP_FOR at most). The
        // sweep runs as its own task: the bound ends the wait, never the
        // removal (a volume still in use is retried past it).
        let owned = id.to_string();
        return Some(Execution::finished_after(
            id.to_string(),
            outcome,
            async move {
                if let Ok(d) = docker::client() {
                    let task = crate::rt::spawn(async move { sweep(&d, &owned).await });
                    let _ = tokio::time::timeout(SWEEP_FOR, task).await;
                }
            },
        ));
    }
    let exec = Execution::new(id.to_string());
    cancel_hook(&exec, &dir);
    live::insert(&exec);
    exec.drive(
        move |driver| async move {
            let endpoint = docker::endpoint();
            let docker = docker::connected().await?;
            watch(&docker, &endpoint, &driver, &dir).await
        },
        |driver| live::remove(driver.id()),
    );
    Some(exec)
}

fn launcher_busy(s: &RunState) -> bool {
    if !s.is_setting_up() {
        return false;
    }
    match s.host.as_ref().and_then(HostIdentity::is_alive) {
        Some(alive) => alive,
        None if s.host.is_some() => {
            parse_iso_ms(&s.started_at).is_some_and(|t| now_ms() - t < REMOTE_SETUP_MS)
        }
        None => false,
    }
}

fn past_deadline(s: &RunState) -> bool {
    s.deadline
        .as_deref()
        .and_then(parse_iso_ms)
        .is_some_and(|d| now_ms() >= d)
}

fn deadline_instant(s: &RunState) -> Option<tokio::time::Instant> {
    let d = parse_iso_ms(s.deadline.as_deref()?)?;
    crate::rt::deadline_in((d - now_ms()).max(0) as u64)
}

/// Kills a run past its deadline, recording why.
async fn enforce_deadline(docker: &Docker, dir: &Path, id: &str) {
    let _ = state::update(dir, id, |s| {
        if s.status.is_terminal() || s.timed_out == Some(true) {
            return false;
        }
        s.timed_out = Some(true);
        true
    });
    resources::kill(docker, id).await;
}

/// How long an attach to a finished run spends removing what its finalizer left.
const SWEEP_FOR: Duration = Duration::from_secs(5);

/// Removes what a finalized run left: its finalizer records the result
/// before it removes the container and the volume, and may die in between
/// (the container may be gone and the volume not). A container that still
/// runs is not this host's to stop. Racing a live finalizer is harmless;
/// what the daemon refuses now (a volume still in use while the other host
/// removes the container) is retried in the background, so the two hosts
/// never both give up on it.
async fn sweep(docker: &Docker, id: &str) {
    if !matches!(
        resources::life(docker, id).await,
        Ok(Life::Running | Life::Paused) | Err(_)
    ) {
        resources::remove_all_eventually(docker, id, || {}).await;
    }
}

fn in_(d: Duration) -> Option<tokio::time::Instant> {
    Some(tokio::time::Instant::now() + d)
}

fn earliest(
    a: Option<tokio::time::Instant>,
    b: Option<tokio::time::Instant>,
) -> Option<tokio::time::Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What one watcher knows and has done about its run between two wake-ups.
struct Watcher<'a> {
    docker: &'a Docker,
    exec: &'a Execution,
    dir: &'a Path,
    waiter: crate::watch::Waiter,
    /// The container as last inspected; None: inspect on the next turn.
    /// Only news about the container (or a failed inspect) clears it.
    life: Option<Life>,
    absent_since: Option<Instant>,
    killed: bool,
    /// When this watcher last sent a kill for a cancel or a deadline.
    last_kill: Option<Instant>,
    daemon_errors: u32,
    /// Since when the daemon has not answered.
    daemon_down: Option<Instant>,
    /// The daemon failed to answer since the container was last seen
    /// running: a container found stopped then may have been stopped by it.
    outage: bool,
}

impl Watcher<'_> {
    /// The container's life, inspecting it only when news may have changed
    /// it. Err: give up (the daemon failed for `LIGHT_RUNNER_DAEMON_GRACE_MS`;
    /// not recorded: the run may well go on, with live-restore, and a later
    /// attach() collects it); Ok(None): the daemon failed, retry after the
    /// backoff already slept.
    async fn life(&mut self) -> std::result::Result<Option<Life>, Error> {
        if let Some(l) = &self.life {
            return Ok(Some(l.clone()));
        }
        match resources::life(self.docker, self.exec.id()).await {
            Ok(l) => {
                self.daemon_errors = 0;
                self.daemon_down = None;
                if matches!(l, Life::Running | Life::Paused) {
                    self.outage = false;
                }
                self.life = Some(l.clone());
                Ok(Some(l))
            }
            // A daemon hiccup (restart, overload) must not abandon a long run.
            Err(_)
                if self.daemon_down.get_or_insert_with(Instant::now).elapsed()
                    < resources::daemon_grace() =>
            {
                self.outage = true;
                self.daemon_errors += 1;
                tokio::time::sleep(RETRY_STEP * self.daemon_errors.min(10)).await;
                Ok(None)
            }
            Err(_) => Err(Error::lost(
                self.exec.id(),
                Lost::DaemonUnreachable,
                resources::daemon_grace(),
            )),
        }
    }

    /// Sleeps until news, `until`, or this handle's own cancel.
    async fn wait(&mut self, until: Option<tokio::time::Instant>) {
        let token = self.exec.shared.token.clone();
        let wake = tokio::select! {
            w = self.waiter.next(until) => w,
            _ = token.cancelled(), if !self.killed => crate::watch::Wake::Timer,
        };
        if wake == crate::watch::Wake::Container {
            self.life = None;
        }
    }
}

/// Watches a run until it is terminal, finalizing it if this host wins.
/// It sleeps between pieces of news (an event of its container, a change of
/// its state file, a deadline, a grace running out): a quiet run costs the
/// daemon nothing.
async fn watch(docker: &Docker, endpoint: &str, exec: &Execution, dir: &Path) -> Outcome {
    let id = exec.id().to_string();
    let mut w = Watcher {
        docker,
        exec,
        dir,
        waiter: crate::watch::Waiter::new(docker, endpoint, dir, &id),
        life: None,
        absent_since: None,
        killed: false,
        last_kill: None,
        daemon_errors: 0,
        daemon_down: None,
        outage: false,
    };
    loop {
        let Some(st) = state::read_state_in(dir, &id) else {
            return Err(Error::StateGone { id }.into());
        };
        if st.status.is_terminal() {
            // Another host finalized it (while this one watched, or before
            // it attached). Should that host have died between recording
            // the result and removing the container and volume, what is
            // left is removed here (a few requests, once per handle).
            if !st.is_attached() {
                sweep(docker, &id).await;
            }
            return outcome_from_state(&st);
        }
        if st.is_attached() {
            // An attached run is its own host's to finalize.
            if let Some(done) = watch_attached(&mut w, &st).await {
                return done;
            }
            continue;
        }
        if exec.shared.token.is_cancelled() && !w.killed {
            w.killed = true;
            resources::kill(docker, &id).await;
            w.last_kill = Some(Instant::now());
        }
        let life = match w.life().await {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => return Err(e.into()),
        };
        let deadline = deadline_instant(&st).filter(|_| st.timed_out != Some(true));
        let until = match life {
            Life::Exited(exit) => {
                // Stopped while the daemon was away (an inspect failed since
                // it was last seen running, or it exited while the events
                // stream was broken and the daemon did not answer): by the
                // daemon, unless it keeps containers running (live-restore).
                let away = w.outage
                    || exit
                        .finished_at
                        .is_some_and(|at| crate::watch::in_gap(endpoint, at));
                let lost = if away && !resources::live_restore(docker).await {
                    Some(Lost::DaemonStopped)
                } else {
                    None
                };
                if let Some((done, _)) = finalize(docker, dir, &id, Some(exit), lost).await {
                    return outcome_from_state(&done);
                }
                // Another host holds the claim: its result lands in the
                // state file; re-check that the holder lives meanwhile.
                in_(PROCESS_POLL)
            }
            Life::Gone | Life::Created | Life::Removing => {
                let until;
                if launcher_busy(&st) {
                    w.absent_since = None;
                    until = in_(PROCESS_POLL);
                } else {
                    let since = *w.absent_since.get_or_insert_with(Instant::now);
                    if exec.is_cancelled()
                        || st.cancelled == Some(true)
                        || since.elapsed() >= ABSENCE_GRACE
                    {
                        if let Some((done, _)) = finalize(docker, dir, &id, None, None).await {
                            return outcome_from_state(&done);
                        }
                        until = in_(PROCESS_POLL);
                    } else {
                        until = Some(tokio::time::Instant::from_std(since + ABSENCE_GRACE));
                    }
                }
                if past_deadline(&st) && life == Life::Created && st.timed_out != Some(true) {
                    enforce_deadline(docker, dir, &id).await;
                    continue;
                }
                earliest(until, deadline)
            }
            Life::Running | Life::Paused => {
                w.absent_since = None;
                if past_deadline(&st) && st.timed_out != Some(true) {
                    enforce_deadline(docker, dir, &id).await;
                    w.last_kill = Some(Instant::now());
                    continue;
                }
                // A cancel recorded by any host (e.g. one that raced a start)
                // wins, once the grace of a graceful stop has passed; so does
                // a deadline. The kill is sent again while the container
                // still runs (a kill the daemon failed to deliver).
                let mut until = deadline;
                let mut must_die = st.timed_out == Some(true);
                if st.cancelled == Some(true) {
                    let kill_at = st.kill_after.as_deref().and_then(parse_iso_ms).unwrap_or(0);
                    let left = kill_at - now_ms();
                    if left <= 0 {
                        must_die = true;
                    } else {
                        until = earliest(until, crate::rt::deadline_in(left as u64));
                    }
                }
                if must_die {
                    if w.last_kill.is_none_or(|t| t.elapsed() >= KILL_RETRY) {
                        resources::kill(docker, &id).await;
                        w.last_kill = Some(Instant::now());
                    }
                    let again = w.last_kill.map(|t| t + KILL_RETRY);
                    until = earliest(until, again.map(tokio::time::Instant::from_std));
                }
                until
            }
        };
        w.wait(until).await;
    }
}

/// One look at an attached run of another host: resolved once its host
/// recorded the end; failed when its host died and the container is gone
/// (the host's watchdog removes it). None: keep waiting (after waiting for
/// news).
async fn watch_attached(w: &mut Watcher<'_>, st: &RunState) -> Option<Outcome> {
    let id = w.exec.id().to_string();
    if w.exec.shared.token.is_cancelled() && !w.killed {
        w.killed = true;
        resources::kill(w.docker, &id).await;
    }
    let host_alive = st.host.as_ref().and_then(HostIdentity::is_alive);
    // A host on this machine is checked again soon (no daemon request); a
    // host elsewhere cannot be, its container tells.
    let mut until = host_alive.is_some().then(|| in_(PROCESS_POLL)).flatten();
    if host_alive != Some(true) {
        if w.life.is_none() {
            w.life = resources::life(w.docker, &id).await.ok();
        }
        match &w.life {
            Some(Life::Gone) => {
                let since = *w.absent_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= ABSENCE_GRACE {
                    let done = state::update(w.dir, &id, |s| {
                        if s.status.is_terminal() {
                            return false;
                        }
                        record::record_failure(
                            s,
                            "the host process that ran this attached run died",
                        );
                        true
                    });
                    return done.ok().flatten().map(|s| outcome_from_state(&s));
                }
                until = earliest(
                    until,
                    Some(tokio::time::Instant::from_std(since + ABSENCE_GRACE)),
                );
            }
            Some(_) => w.absent_since = None,
            // The daemon did not answer: ask again soon.
            None => {
                w.absent_since = None;
                until = earliest(until, in_(PROCESS_POLL));
            }
        }
    }
    w.wait(until).await;
    None
}

fn claim_is_stale(c: &Claim) -> bool {
    c.host.is_alive() == Some(false) || now_ms() - c.heartbeat > claim_stale_ms()
}

/// Tries to become the one host that finalizes `id`. `exit` None: the
/// container is gone or never started (the run failed); `lost`: the daemon
/// lost the container (the run failed with `CONTAINER_LOST`). Returns the
/// terminal state and whether this host wrote it; None while another host
/// holds the claim.
async fn finalize(
    docker: &Docker,
    dir: &Path,
    id: &str,
    exit: Option<Exit>,
    lost: Option<Lost>,
) -> Option<(RunState, bool)> {
    let me = HostIdentity::current();
    let mut won = false;
    let claimed = state::update(dir, id, |s| {
        if s.status.is_terminal() {
            return false;
        }
        if let Some(c) = &s.finalizing {
            if c.host != me && !claim_is_stale(c) {
                return false;
            }
        }
        s.finalizing = Some(Claim {
            host: me.clone(),
            heartbeat: now_ms(),
        });
        won = true;
        true
    })
    .ok()
    .flatten()?;
    if !won {
        return claimed.status.is_terminal().then_some((claimed, false));
    }
    // A container that started and is gone was removed under the run.
    let started = claimed.phase.as_deref() == Some("started");
    let lost = lost.or_else(|| (exit.is_none() && started).then_some(Lost::Removed));
    // Its output is kept whenever it exited, even if that exit was not its own.
    let exited = exit.is_some();
    let exit = if lost.is_some() { None } else { exit };
    let exit_code = exit.as_ref().map(|e| e.code);

    // Keep the claim fresh while extraction runs.
    let beat_id = id.to_string();
    let beat_dir = dir.to_path_buf();
    let beat_me = me.clone();
    let every = heartbeat();
    let heartbeat = crate::rt::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let _ = state::update(&beat_dir, &beat_id, |s| match &mut s.finalizing {
                Some(c) if c.host == beat_me => {
                    c.heartbeat = now_ms();
                    true
                }
                _ => false,
            });
        }
    });

    let mut cancelled = claimed.cancelled == Some(true);
    // A cancel that arrived after the container had already exited by itself
    // does not discard a finished run's result.
    if cancelled && exit_code.is_some() {
        let cancelled_at = claimed.cancelled_at.as_deref().and_then(parse_iso_ms);
        let finished_at = exit.as_ref().and_then(|e| e.finished_at);
        if let (Some(c), Some(f)) = (cancelled_at, finished_at) {
            if f < c {
                cancelled = false;
            }
        }
    }
    let timed_out = claimed.timed_out == Some(true);
    let mut extracted = None;
    if exit_code == Some(0) && !cancelled && !timed_out {
        if let Some(specs) = claimed.extract.as_ref().filter(|s| !s.is_empty()) {
            let cap = claimed
                .extra
                .get("maxExtractBytes")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(crate::config::DEFAULT_MAX_EXTRACT_BYTES);
            extracted = Some(extract_all(docker, id, &claimed.workdir, specs, cap).await);
        }
    }
    // The output outlives the container: kept before it is removed.
    let kept = match exited {
        true => {
            Some(output::keep_from_daemon(docker, dir, id, output::max_log_bytes(&claimed)).await)
        }
        false => None,
    };
    heartbeat.abort();

    let done = state::update(dir, id, |s| {
        if s.status.is_terminal() {
            return false;
        }
        if exit_code.is_some() && !cancelled {
            s.cancelled = Some(false);
        }
        let status = match exit_code {
            None if s.cancelled == Some(true) => Status::Cancelled,
            None => Status::Failed,
            Some(_) if cancelled => Status::Cancelled,
            Some(_) => Status::Exited,
        };
        record::finish(s, status, exit_code);
        if exit.as_ref().is_some_and(|e| e.oom_killed) {
            s.oom_killed = Some(true);
        }
        match lost {
            Some(why) if s.status == Status::Failed => {
                s.lost = Some(why);
                s.error = Some(why.message(resources::daemon_grace()));
            }
            _ => s.lost = None,
        }
        if exit_code.is_none() && s.error.is_none() {
            s.error = Some("the container never started".into());
        }
        if let Some(x) = extracted.take() {
            s.extracted = Some(x);
        }
        if let Some((k, truncated)) = &kept {
            output::record(s, k, *truncated);
        }
        true
    })
    .ok()
    .flatten();
    if exited || started {
        // Retried in the background if the daemon cannot be reached: the
        // result is recorded, nothing else would remove them.
        resources::remove_all_eventually(docker, id, || {}).await;
    } else {
        // Its launcher died while setting it up: a create it sent just
        // before may still land.
        resources::remove_all_settled(docker, id, SETUP_LINGER).await;
    }
    done.map(|d| (d, true))
}

/// One step of `cleanupOrphanStates()` for a running state nobody in this
/// process watches: a vanished container → failed; an exited run nobody
/// finalized → finalized; a run past its deadline → killed and finalized;
/// an attached run whose host died → failed. True when this call changed
/// the state.
pub async fn reconcile(docker: &Docker, dir: &Path, st: &RunState) -> bool {
    if st.status.is_terminal() || launcher_busy(st) {
        return false;
    }
    if st.is_attached() {
        if st.host.as_ref().and_then(HostIdentity::is_alive) == Some(true) {
            return false;
        }
        // Its host is gone: nothing will ever record its end.
        let _ = resources::remove_all(docker, &st.id).await;
        let changed = state::update(dir, &st.id, |s| {
            if s.status.is_terminal() {
                return false;
            }
            record::record_failure(s, "the host process that ran this attached run died");
            true
        });
        return changed
            .ok()
            .flatten()
            .is_some_and(|s| s.status == Status::Failed);
    }
    if st.finalizing.as_ref().is_some_and(|c| !claim_is_stale(c)) {
        return false;
    }
    let Ok(life) = resources::life(docker, &st.id).await else {
        return false;
    };
    let (exit, lost) = match life {
        Life::Gone | Life::Created | Life::Removing => (None, None),
        Life::Exited(exit) => (Some(exit), None),
        Life::Running | Life::Paused => {
            if !past_deadline(st) {
                return false;
            }
            enforce_deadline(docker, dir, &st.id).await;
            match resources::wait_end(docker, &st.id).await {
                End::Exited(exit) => (Some(exit), None),
                End::Lost(Lost::DaemonUnreachable) => return false,
                End::Lost(why) => (None, Some(why)),
            }
        }
    };
    matches!(
        finalize(docker, dir, &st.id, exit, lost).await,
        Some((_, true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_claims() {
        let dead = Claim {
            host: HostIdentity {
                hostname: state::hostname(),
                pid: u32::MAX / 2,
            },
            heartbeat: now_ms(),
        };
        assert!(claim_is_stale(&dead));
        let me = Claim {
            host: HostIdentity::current(),
            heartbeat: now_ms(),
        };
        assert!(!claim_is_stale(&me));
        let remote_old = Claim {
            host: HostIdentity {
                hostname: "elsewhere".into(),
                pid: 1,
            },
            heartbeat: now_ms() - CLAIM_STALE_MS - 1,
        };
        assert!(claim_is_stale(&remote_old));
    }
}
