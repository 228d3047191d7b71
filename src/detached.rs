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
use crate::errors::{Error, Result};
use crate::execution::{Execution, Outcome};
use crate::extract::extract_all;
use crate::id::new_run_id;
use crate::live;
use crate::output;
use crate::record::{self, result_from_state};
use crate::resources::{self, Exit, Life};
use crate::setup::{self, Phase};
use crate::state::{
    self, iso_from_ms, now_ms, parse_iso_ms, Claim, HostIdentity, RunState, Status,
};

/// How often a watcher looks at the state file for news from other hosts.
const STATE_POLL: Duration = Duration::from_millis(500);
/// How long a container may stay absent when nobody is setting it up.
const ABSENCE_GRACE: Duration = Duration::from_secs(3);
/// A claim not refreshed for this long is taken over.
const CLAIM_STALE_MS: i64 = 60_000;
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Failed daemon calls in a row a watcher tolerates (about 2 minutes).
const DAEMON_RETRIES: u32 = 30;
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
            match set_up(&cfg, &req, &driver, &dir).await {
                Ok(docker) => watch(&docker, &driver, &dir).await,
                Err(e) => {
                    fail(&driver, &dir, &e.to_string()).await;
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
        let ready = setup::set_up(&ctx, req, &|p| exec.mark_phase(p)).await?;
        if ready.image != req.image {
            let _ = state::update(dir, &id, |s| {
                s.built_image = Some(ready.image.clone());
                true
            });
        }
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
async fn fail(exec: &Execution, dir: &Path, why: &str) {
    let id = exec.id().to_string();
    let _ = state::update(dir, &id, |s| {
        if s.status.is_terminal() {
            return false;
        }
        record::record_failure(s, why);
        true
    });
    if let Ok(d) = docker::client() {
        let _ = resources::remove_all(&d, &id).await;
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
        return Some(Execution::finished(
            id.to_string(),
            Ok(result_from_state(&st)),
        ));
    }
    let exec = Execution::new(id.to_string());
    cancel_hook(&exec, &dir);
    live::insert(&exec);
    exec.drive(
        move |driver| async move {
            let docker = docker::connected().await?;
            watch(&docker, &driver, &dir).await
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

/// Watches a run until it is terminal, finalizing it if this host wins.
async fn watch(docker: &Docker, exec: &Execution, dir: &Path) -> Outcome {
    let id = exec.id().to_string();
    let mut absent_since: Option<Instant> = None;
    let mut killed = false;
    let mut daemon_errors: u32 = 0;
    loop {
        let Some(st) = state::read_state_in(dir, &id) else {
            return Err(Error::StateGone { id }.into());
        };
        if st.status.is_terminal() {
            return Ok(result_from_state(&st));
        }
        if st.is_attached() {
            // An attached run is its own host's to finalize.
            if let Some(done) = watch_attached(docker, exec, dir, &st, &mut absent_since).await {
                return done;
            }
            continue;
        }
        if exec.shared.token.is_cancelled() && !killed {
            killed = true;
            resources::kill(docker, &id).await;
        }
        // A daemon hiccup (restart, overload) must not abandon a long run.
        let life = match resources::life(docker, &id).await {
            Ok(l) => {
                daemon_errors = 0;
                l
            }
            Err(_) if daemon_errors < DAEMON_RETRIES => {
                daemon_errors += 1;
                tokio::time::sleep(STATE_POLL * daemon_errors.min(10)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match life {
            Life::Exited(exit) => {
                if let Some((done, _)) = finalize(docker, dir, &id, Some(exit)).await {
                    return Ok(result_from_state(&done));
                }
                tokio::time::sleep(STATE_POLL).await;
            }
            Life::Gone | Life::Created => {
                if launcher_busy(&st) {
                    absent_since = None;
                } else if exec.is_cancelled()
                    || st.cancelled == Some(true)
                    || absent_since.get_or_insert_with(Instant::now).elapsed() >= ABSENCE_GRACE
                {
                    if let Some((done, _)) = finalize(docker, dir, &id, None).await {
                        return Ok(result_from_state(&done));
                    }
                }
                if past_deadline(&st) && life == Life::Created {
                    enforce_deadline(docker, dir, &id).await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Life::Running | Life::Paused => {
                absent_since = None;
                // A cancel recorded by any host (e.g. one that raced a start)
                // wins, once the grace of a graceful stop has passed.
                let kill_at = st.kill_after.as_deref().and_then(parse_iso_ms).unwrap_or(0);
                if st.cancelled == Some(true) && now_ms() >= kill_at {
                    resources::kill(docker, &id).await;
                }
                if past_deadline(&st) && st.timed_out != Some(true) {
                    enforce_deadline(docker, dir, &id).await;
                    continue;
                }
                let deadline = deadline_instant(&st).filter(|_| st.timed_out != Some(true));
                tokio::select! {
                    _ = resources::wait_exit(docker, &id) => {}
                    _ = crate::rt::sleep_until(deadline) => {}
                    _ = tokio::time::sleep(STATE_POLL * 4) => {}
                    _ = exec.shared.token.cancelled(), if !killed => {}
                }
            }
        }
    }
}

/// One look at an attached run of another host: resolved once its host
/// recorded the end; failed when its host died and the container is gone
/// (the host's watchdog removes it). None: keep waiting.
async fn watch_attached(
    docker: &Docker,
    exec: &Execution,
    dir: &Path,
    st: &RunState,
    absent_since: &mut Option<Instant>,
) -> Option<Outcome> {
    let id = exec.id();
    if exec.shared.token.is_cancelled() {
        resources::kill(docker, id).await;
    }
    let host_alive = st.host.as_ref().and_then(HostIdentity::is_alive);
    if host_alive != Some(true) {
        let gone = matches!(resources::life(docker, id).await, Ok(Life::Gone));
        if gone && absent_since.get_or_insert_with(Instant::now).elapsed() >= ABSENCE_GRACE {
            let done = state::update(dir, id, |s| {
                if s.status.is_terminal() {
                    return false;
                }
                record::record_failure(s, "the host process that ran this attached run died");
                true
            });
            return done.ok().flatten().map(|s| Ok(result_from_state(&s)));
        }
        if !gone {
            *absent_since = None;
        }
    }
    tokio::time::sleep(STATE_POLL).await;
    None
}

fn claim_is_stale(c: &Claim) -> bool {
    c.host.is_alive() == Some(false) || now_ms() - c.heartbeat > CLAIM_STALE_MS
}

/// Tries to become the one host that finalizes `id`. `exit` None: the
/// container is gone or never started (the run failed). Returns the terminal
/// state and whether this host wrote it; None while another host holds the
/// claim.
async fn finalize(
    docker: &Docker,
    dir: &Path,
    id: &str,
    exit: Option<Exit>,
) -> Option<(RunState, bool)> {
    let exit_code = exit.as_ref().map(|e| e.code);
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

    // Keep the claim fresh while extraction runs.
    let beat_id = id.to_string();
    let beat_dir = dir.to_path_buf();
    let beat_me = me.clone();
    let heartbeat = crate::rt::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
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
    let kept = match exit {
        Some(_) => {
            Some(output::keep_from_daemon(docker, dir, id, output::max_log_bytes(&claimed)).await)
        }
        None => None,
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
        if exit_code.is_none() && s.error.is_none() {
            s.error = Some("container vanished or never started".into());
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
    let _ = resources::remove_all(docker, id).await;
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
    let exit = match life {
        Life::Gone | Life::Created => None,
        Life::Exited(exit) => Some(exit),
        Life::Running | Life::Paused => {
            if !past_deadline(st) {
                return false;
            }
            enforce_deadline(docker, dir, &st.id).await;
            match resources::wait_exit(docker, &st.id).await {
                Ok(Some(code)) => Some(resources::exit_details(docker, &st.id, code).await),
                Ok(None) => None,
                Err(_) => return false,
            }
        }
    };
    matches!(finalize(docker, dir, &st.id, exit).await, Some((_, true)))
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
