//! The Docker resources of one run, its volume and its container: creating,
//! starting, signalling, waiting for, inspecting and removing them. Every
//! other module reaches a run's resources through here.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, RemoveContainerOptions,
    RemoveVolumeOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::container::labels;
use crate::docker::quick;
use crate::errors::{is_not_found, is_transport, Error, Lost, Result};

pub async fn create_volume(docker: &Docker, id: &str, detached: bool) -> Result<()> {
    quick(docker.create_volume(VolumeCreateRequest {
        name: Some(id.to_string()),
        labels: Some(labels(id, detached)),
        ..Default::default()
    }))
    .await
    .map(|_| ())
    .map_err(|e| Error::docker("createVolume", Some(id), e))
}

/// Creates the container; the daemon's error is returned as it is, so the
/// caller can decide on its status (a missing image or network is a 404).
pub async fn create_container(
    docker: &Docker,
    id: &str,
    body: ContainerCreateBody,
) -> std::result::Result<(), bollard::errors::Error> {
    let opts = CreateContainerOptions {
        name: Some(id.to_string()),
        platform: String::new(),
    };
    quick(docker.create_container(Some(opts), body))
        .await
        .map(|_| ())
}

pub async fn start(docker: &Docker, id: &str) -> Result<()> {
    quick(docker.start_container(id, None))
        .await
        .map_err(|e| Error::docker("start", Some(id), e))
}

/// SIGKILL, best effort: a container already gone or stopped is fine.
pub async fn kill(docker: &Docker, id: &str) {
    let _ = quick(docker.kill_container(id, None::<KillContainerOptions>)).await;
}

/// Sends `signal` to the container.
pub async fn signal(docker: &Docker, id: &str, signal: &str) -> Result<()> {
    quick(docker.kill_container(
        id,
        Some(KillContainerOptions {
            signal: signal.to_string(),
        }),
    ))
    .await
    .map_err(|e| Error::docker("kill", Some(id), e))
}

pub async fn pause(docker: &Docker, id: &str) -> Result<()> {
    quick(docker.pause_container(id))
        .await
        .map_err(|source| Error::Pause {
            id: id.to_string(),
            source,
        })
}

pub async fn unpause(docker: &Docker, id: &str) -> Result<()> {
    quick(docker.unpause_container(id))
        .await
        .map_err(|source| Error::Unpause {
            id: id.to_string(),
            source,
        })
}

/// How a container ended, as the daemon recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exit {
    pub code: i64,
    /// The memory cap killed it.
    pub oom_killed: bool,
    /// ms since epoch, when known.
    pub finished_at: Option<i64>,
}

/// What the daemon says about a container's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Life {
    Gone,
    /// Created, not started yet.
    Created,
    Running,
    Paused,
    /// Being removed (`docker rm -f`): as good as gone.
    Removing,
    Exited(Exit),
}

pub async fn life(docker: &Docker, id: &str) -> Result<Life> {
    match quick(docker.inspect_container(id, None::<InspectContainerOptions>)).await {
        Err(e) if is_not_found(&e) => Ok(Life::Gone),
        Err(e) => Err(Error::docker("inspect", Some(id), e)),
        Ok(info) => {
            let s = info.state.unwrap_or_default();
            let status = s.status.map(|x| x.to_string()).unwrap_or_default();
            Ok(match status.as_str() {
                "created" => Life::Created,
                "running" | "restarting" => Life::Running,
                "paused" => Life::Paused,
                "removing" => Life::Removing,
                _ => Life::Exited(Exit {
                    code: s.exit_code.unwrap_or(-1),
                    oom_killed: s.oom_killed.unwrap_or(false),
                    finished_at: s
                        .finished_at
                        .as_deref()
                        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                        .map(|d| d.timestamp_millis())
                        .filter(|ms| *ms > 0),
                }),
            })
        }
    }
}

/// How long a run rides out an unreachable daemon before it gives up:
/// `LIGHT_RUNNER_DAEMON_GRACE_MS` (default 120000), read at call time.
pub fn daemon_grace() -> Duration {
    let ms = std::env::var("LIGHT_RUNNER_DAEMON_GRACE_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(120_000);
    Duration::from_millis(ms)
}

/// True when the daemon keeps containers running while it is down.
pub async fn live_restore(docker: &Docker) -> bool {
    quick(docker.info())
        .await
        .ok()
        .and_then(|i| i.live_restore_enabled)
        .unwrap_or(false)
}

/// How a started container's life ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// It stopped, and the daemon recorded how.
    Exited(Exit),
    /// The daemon lost it: there is no exit of the job's own.
    Lost(Lost),
}

/// After the daemon was unreachable while the container ran, the daemon
/// answers again and says the container has stopped: a daemon without
/// live-restore stopped it; with live-restore it ended by itself.
async fn after_outage(docker: &Docker, exit: Exit) -> End {
    if live_restore(docker).await {
        End::Exited(exit)
    } else {
        End::Lost(Lost::DaemonStopped)
    }
}

/// Waits for a started container to stop and says how it ended.
///
/// The wait is followed by an inspect, which gives the exit as the daemon
/// recorded it (code, `OOMKilled`, time) and tells a container that was
/// removed under the run (status `removing` or 404) from one that exited.
/// When the daemon cannot be reached the wait is retried until it answers
/// again, for up to [`daemon_grace`]: a container that kept running
/// (live-restore) is waited for again; one that stopped while the daemon was
/// away was stopped by the daemon, unless it runs with live-restore. A wait
/// that returned an exit code just before the daemon became unreachable is
/// the daemon stopping the container on its way down.
pub async fn wait_end(docker: &Docker, id: &str) -> End {
    let grace = daemon_grace();
    // When the daemon was first found unreachable in the current outage.
    let mut outage: Option<tokio::time::Instant> = None;
    let mut failures: u32 = 0;
    // Inspects that failed right after the wait said the container stopped.
    let mut down_after_wait = 0;
    let mut waited = false;
    loop {
        if outage.is_none() && down_after_wait == 0 {
            waited = false;
            let asked = tokio::time::Instant::now();
            let mut stream = docker
                .wait_container(
                    id,
                    Some(WaitContainerOptions {
                        condition: "not-running".into(),
                    }),
                )
                .boxed();
            let answer = stream.next().await;
            if asked.elapsed() >= Duration::from_secs(1) {
                // A wait that blocked was a real wait: earlier hiccups are over.
                failures = 0;
            }
            match answer {
                Some(Ok(_))
                | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => {
                    waited = true
                }
                Some(Err(e)) if is_not_found(&e) => return End::Lost(Lost::Removed),
                Some(Err(e)) if is_transport(&e) => {
                    outage = Some(tokio::time::Instant::now());
                }
                Some(Err(_)) | None => failures += 1,
            }
        }
        match life(docker, id).await {
            Ok(Life::Exited(exit)) => {
                return match outage {
                    Some(_) => after_outage(docker, exit).await,
                    None => End::Exited(exit),
                };
            }
            Ok(Life::Gone | Life::Removing) => return End::Lost(Lost::Removed),
            // Still there (it lived through an outage: live-restore): wait again.
            Ok(Life::Running | Life::Paused) => {
                outage = None;
                down_after_wait = 0;
            }
            // Started, yet never ran: not something a wait can end.
            Ok(Life::Created) => failures += 1,
            Err(e) if e.is_transport() => {
                // The wait said it stopped, then the daemon went away (asked
                // a few times, so a local hiccup is not taken for it): the
                // daemon stopped it on its way down.
                if waited && outage.is_none() {
                    down_after_wait += 1;
                    if down_after_wait >= 3 {
                        return End::Lost(Lost::DaemonStopped);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let since = *outage.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= grace {
                    return End::Lost(Lost::DaemonUnreachable);
                }
            }
            Err(_) => {
                down_after_wait = 0;
                failures += 1;
            }
        }
        if failures >= 30 {
            return End::Lost(Lost::DaemonUnreachable);
        }
        if outage.is_some() || failures > 0 || waited {
            let n = u64::from(failures.clamp(1, 5));
            tokio::time::sleep(Duration::from_millis(200 * n)).await;
        }
    }
}

/// `stop()`: `signal`, up to `grace` for the exit, then SIGKILL if it still
/// runs. A container that is already gone is not an error.
pub async fn stop(docker: &Docker, id: &str, sig: &str, grace: Duration) -> Result<()> {
    let sent = signal(docker, id, sig).await;
    if sent.is_ok() && !grace.is_zero() {
        let mut exited = docker
            .wait_container(
                id,
                Some(WaitContainerOptions {
                    condition: "not-running".into(),
                }),
            )
            .boxed();
        let _ = tokio::time::timeout(grace, exited.next()).await;
    }
    if matches!(life(docker, id).await, Ok(Life::Running | Life::Paused)) {
        kill(docker, id).await;
    }
    Ok(())
}

/// Removes the container and its volume; a resource already gone is fine.
pub async fn remove_all(docker: &Docker, id: &str) -> Result<()> {
    let mut first_error = None;
    let rc = quick(docker.remove_container(
        id,
        Some(RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        }),
    ))
    .await;
    // A transport error may come after the daemon removed the container (a
    // connection cut mid-answer): the volume is still tried, once (the loop
    // below stops at the first transport error, so an absent daemon costs
    // one more refused request, not a retry loop).
    if let Err(e) = rc {
        if !is_not_found(&e) {
            first_error = Some(Error::docker("removeContainer", Some(id), e));
        }
    }
    // A volume can stay "in use" for a moment after its container is removed.
    for attempt in 0..20 {
        match quick(docker.remove_volume(id, Some(RemoveVolumeOptions { force: true }))).await {
            Ok(()) => break,
            Err(e) if is_not_found(&e) => break,
            Err(e) if attempt == 19 || is_transport(&e) => {
                first_error.get_or_insert(Error::docker("removeVolume", Some(id), e));
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await,
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// True while the daemon still has the container or the volume `id`.
async fn anything_left(docker: &Docker, id: &str) -> bool {
    let container = quick(docker.inspect_container(id, None::<InspectContainerOptions>)).await;
    let volume = quick(docker.inspect_volume(id)).await;
    !matches!(&container, Err(e) if is_not_found(e))
        || !matches!(&volume, Err(e) if is_not_found(e))
}

/// Removes the container and volume of a run whose host died while it set
/// the run up, then keeps looking for `linger`: a create the host sent just
/// before it died may still land after the first removal (a container
/// create also re-creates its named volume), and is removed too.
pub async fn remove_all_settled(docker: &Docker, id: &str, linger: Duration) {
    let until = tokio::time::Instant::now() + linger;
    let _ = remove_all(docker, id).await;
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if anything_left(docker, id).await {
            let _ = remove_all(docker, id).await;
        }
    }
}

/// How long a removal the daemon could not take is retried in the background.
const REMOVE_RETRY_FOR: Duration = Duration::from_secs(3600);
/// How long a removal the daemon refused (a volume still in use, a conflict)
/// is retried in the background.
const REMOVE_REFUSED_RETRY_FOR: Duration = Duration::from_secs(60);

/// Removes the container and volume now, or, when the daemon cannot be
/// reached (retried for an hour) or refuses (retried for a minute), in the
/// background; `removed` is called once they are gone. Returns at once
/// either way.
pub async fn remove_all_eventually(
    docker: &Docker,
    id: &str,
    removed: impl FnOnce() + Send + 'static,
) {
    let first = match remove_all(docker, id).await {
        Ok(()) => return removed(),
        Err(e) => e,
    };
    let (docker, id) = (docker.clone(), id.to_string());
    crate::rt::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut transport = first.is_transport();
        let mut pause = Duration::from_millis(500);
        loop {
            let budget = if transport {
                REMOVE_RETRY_FOR
            } else {
                REMOVE_REFUSED_RETRY_FOR
            };
            if start.elapsed() >= budget {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
            match remove_all(&docker, &id).await {
                Ok(()) => return removed(),
                Err(e) => transport = e.is_transport(),
            }
        }
    });
}

/// A `label` filter for listing what this package created.
pub fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}
