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

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::Docker;

use crate::config::RunRequest;
use crate::docker;
use crate::errors::{ErrorCode, RunError};
use crate::execution::{Execution, Outcome, RunResult};
use crate::extract::{extract_all, ExtractSpec};
use crate::resources::{self, Life};
use crate::runner::{create_resources, new_run_id, seed_dir, Runner};
use crate::seed;
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

/// Runs this process watches, so every handle on one id shares one watcher.
static LIVE: Mutex<Option<HashMap<String, Execution>>> = Mutex::new(None);

fn live_get(id: &str) -> Option<Execution> {
    LIVE.lock().unwrap().as_ref()?.get(id).cloned()
}

fn live_insert(exec: &Execution) {
    LIVE.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(exec.id().to_string(), exec.clone());
}

fn live_remove(id: &str) {
    if let Some(m) = LIVE.lock().unwrap().as_mut() {
        m.remove(id);
    }
}

/// Ids this process is setting up or watching (never reaped from here).
pub fn live_ids() -> Vec<String> {
    LIVE.lock()
        .unwrap()
        .as_ref()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn absolute(to: &str) -> String {
    let p = Path::new(to);
    if p.is_absolute() || to.is_empty() {
        return to.to_string();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(p).to_string_lossy().into_owned())
        .unwrap_or_else(|_| to.to_string())
}

fn initial_state(id: &str, req: &RunRequest) -> RunState {
    let started = now_ms();
    let mut s: RunState = serde_json::from_value(serde_json::json!({
        "id": id, "container": id, "volume": id, "image": req.image,
        "workdir": req.workdir, "startedAt": iso_from_ms(started), "status": "running",
    }))
    .expect("static state shape");
    s.entrypoint = req.command.clone();
    s.command = req.command.clone();
    s.timeout = Some(req.timeout_ms.unwrap_or(0));
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
    s.deadline = req.timeout_ms.map(|t| iso_from_ms(started + t as i64));
    s.host = Some(HostIdentity::current());
    s.phase = Some("setup".into());
    s.cancelled = Some(false);
    s
}

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
            let due = now + grace_ms as i64;
            let earlier = s.kill_after.as_deref().and_then(parse_iso_ms);
            s.kill_after = Some(iso_from_ms(earlier.map_or(due, |e| e.min(due))));
            true
        });
    }));
}

/// Starts a detached run: writes its state file now, sets it up and watches
/// it in the background. Errs only when the state file cannot be written.
pub fn launch(runner: &Runner, req: RunRequest, aborted: bool) -> Result<Execution, String> {
    let id = new_run_id();
    // The run keeps the state dir it started with, whatever the env says later.
    let dir = state::state_dir();
    let mut st = initial_state(&id, &req);
    st.extra.insert(
        "maxExtractBytes".into(),
        serde_json::json!(runner.config().max_extract_bytes),
    );
    state::write_state_in(&dir, &st)
        .map_err(|e| format!("cannot write the state file in {}: {e}", dir.display()))?;
    let exec = Execution::new(id.clone());
    cancel_hook(&exec, &dir);
    live_insert(&exec);
    if aborted {
        exec.cancel();
    }
    let cfg = runner.config().clone();
    exec.drive(
        move |driver| async move {
            match set_up(&cfg, &req, &driver, &dir).await {
                Ok(docker) => watch(&docker, &driver, &dir).await,
                Err(e) => {
                    fail(&driver, &dir, &e.message).await;
                    Err(e)
                }
            }
        },
        |driver| live_remove(driver.id()),
    );
    Ok(exec)
}

/// Creates, seeds and starts the container; records the start.
async fn set_up(
    cfg: &crate::config::RunnerConfig,
    req: &RunRequest,
    exec: &Execution,
    dir: &Path,
) -> Result<Docker, RunError> {
    if let Some(seed_dir) = &req.dir {
        seed::check_dir(seed_dir)?;
    }
    let docker = docker::connected().await?;
    let id = exec.id().to_string();
    if !exec.is_cancelled() {
        create_resources(&docker, cfg, req, &id).await?;
        seed_dir(&docker, req, exec).await?;
    }
    // Another host may have cancelled the run while it was set up.
    let cancelled_elsewhere =
        state::read_state_in(dir, &id).is_some_and(|s| s.cancelled == Some(true));
    if !exec.is_cancelled() && !cancelled_elsewhere {
        resources::start(&docker, &id).await?;
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
        finish(s, Status::Failed, None);
        s.error = Some(why.to_string());
        true
    });
    if let Ok(d) = docker::client() {
        let _ = resources::remove_all(&d, &id).await;
    }
}

/// Sets the terminal fields of a state.
fn finish(s: &mut RunState, status: Status, exit_code: Option<i64>) {
    let now = now_ms();
    s.status = status;
    s.exit_code = exit_code.or(s.exit_code).or(Some(-1));
    s.finished_at = Some(iso_from_ms(now));
    let started = parse_iso_ms(&s.started_at).unwrap_or(now);
    s.duration_ms = Some((now - started).max(0) as u64);
    s.phase = None;
    s.finalizing = None;
}

/// The result every host reports for a terminal state.
pub fn result_from_state(s: &RunState) -> RunResult {
    let cancelled = s.cancelled == Some(true) || s.status == Status::Cancelled;
    let timed_out = s.timed_out == Some(true);
    let exit_code = s.exit_code.unwrap_or(-1);
    let mut r = RunResult::new(exit_code, s.duration_ms.unwrap_or(0), cancelled, timed_out);
    r.success = r.success && s.status == Status::Exited;
    r.extracted = s.extracted.clone();
    r
}

/// Reconnects to a run by id: `None` without a state file.
pub fn attach(id: &str) -> Option<Execution> {
    if let Some(exec) = live_get(id) {
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
    live_insert(&exec);
    exec.drive(
        move |driver| async move {
            let docker = docker::connected().await?;
            watch(&docker, &driver, &dir).await
        },
        |driver| live_remove(driver.id()),
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
    let left = (d - now_ms()).max(0) as u64;
    Some(tokio::time::Instant::now() + Duration::from_millis(left))
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
            return Err(RunError::new(
                ErrorCode::ContainerStartFailed,
                format!("state file of {id} disappeared"),
            ));
        };
        if st.status.is_terminal() {
            return Ok(result_from_state(&st));
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
            Err(e) => {
                return Err(RunError::docker(
                    ErrorCode::ContainerStartFailed,
                    "inspect",
                    Some(&id),
                    e,
                ))
            }
        };
        match life {
            Life::Exited(code) => {
                if let Some((done, _)) = finalize(docker, dir, &id, Some(code)).await {
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
                    _ = sleep_until(deadline) => {}
                    _ = tokio::time::sleep(STATE_POLL * 4) => {}
                    _ = exec.shared.token.cancelled(), if !killed => {}
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn claim_is_stale(c: &Claim) -> bool {
    c.host.is_alive() == Some(false) || now_ms() - c.heartbeat > CLAIM_STALE_MS
}

/// Tries to become the one host that finalizes `id`. `exit_code` None: the
/// container is gone or never started (the run failed). Returns the terminal
/// state and whether this host wrote it; None while another host holds the
/// claim.
async fn finalize(
    docker: &Docker,
    dir: &Path,
    id: &str,
    exit_code: Option<i64>,
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
        let finished_at = resources::finished_at(docker, id).await;
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
        finish(s, status, exit_code);
        if exit_code.is_none() && s.error.is_none() {
            s.error = Some("container vanished or never started".into());
        }
        if let Some(x) = extracted.take() {
            s.extracted = Some(x);
        }
        true
    })
    .ok()
    .flatten();
    let _ = resources::remove_all(docker, id).await;
    done.map(|d| (d, true))
}

/// `cleanupOrphanStates()`: reconciles every running state with the daemon.
/// Vanished containers → failed; exited runs nobody finalized → finalized;
/// runs past their deadline → killed and finalized. Returns how many changed.
pub async fn cleanup_orphan_states() -> Result<usize, String> {
    let docker = docker::connected().await.map_err(|e| e.message)?;
    let watched = live_ids();
    let dir = state::state_dir();
    let mut changed = 0;
    for st in state::list_runs_in(&dir) {
        if st.status.is_terminal() || watched.contains(&st.id) || launcher_busy(&st) {
            continue;
        }
        if st.finalizing.as_ref().is_some_and(|c| !claim_is_stale(c)) {
            continue;
        }
        let life = match resources::life(&docker, &st.id).await {
            Ok(l) => l,
            Err(_) => continue,
        };
        let exit = match life {
            Life::Gone | Life::Created => None,
            Life::Exited(code) => Some(code),
            Life::Running | Life::Paused => {
                if !past_deadline(&st) {
                    continue;
                }
                enforce_deadline(&docker, &dir, &st.id).await;
                match resources::wait_exit(&docker, &st.id).await {
                    Ok(code) => code,
                    Err(_) => continue,
                }
            }
        };
        if let Some((_, true)) = finalize(&docker, &dir, &st.id, exit).await {
            changed += 1;
        }
    }
    Ok(changed)
}

/// A new run id is only ever made by the launcher; exposed for tests.
pub fn make_state_for_tests(req: &RunRequest) -> RunState {
    initial_state(&new_run_id(), req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_state_has_the_seed_fields_and_no_secrets() {
        let mut req = RunRequest::new("busybox");
        req.command = Some("echo hi".into());
        req.env = vec![("SECRET".into(), "hunter2".into())];
        req.extract = vec![ExtractSpec {
            from: "/app/out".into(),
            to: "out".into(),
        }];
        req.timeout_ms = Some(1000);
        let s = make_state_for_tests(&req);
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
        ] {
            assert!(v.get(f).is_some(), "missing {f}");
        }
        assert!(!v.to_string().contains("hunter2"));
        assert!(Path::new(&s.extract.unwrap()[0].to).is_absolute());
        let d = parse_iso_ms(s.deadline.as_deref().unwrap()).unwrap();
        assert_eq!(d - parse_iso_ms(&s.started_at).unwrap(), 1000);
    }

    #[test]
    fn results_from_terminal_states() {
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
    }

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
