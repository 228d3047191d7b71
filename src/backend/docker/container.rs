//! The Docker resources of one run, its volume and its container: creating,
//! starting, signalling, waiting for, inspecting and removing them. Every
//! other module reaches a run's resources through here.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ContainerWaitResponse, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, RemoveContainerOptions,
    RemoveVolumeOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::client::{quick, within};
use super::labels::labels;
use super::spec::twin_name;
use crate::backend::{Exit, Life};
use crate::errors::{is_not_found, is_transport, DockerOp, Error, Result};

pub async fn create_volume(docker: &Docker, id: &str, detached: bool) -> Result<()> {
    quick(docker.create_volume(VolumeCreateRequest {
        name: Some(id.to_string()),
        labels: Some(labels(id, detached)),
        ..Default::default()
    }))
    .await
    .map(|_| ())
    .map_err(|e| Error::docker(DockerOp::CreateVolume, Some(id), e))
}

/// Creates the container within `deadline`; the daemon's error is returned
/// as it is, so the caller can decide on its status (a missing image or
/// network is a 404).
pub async fn create_container(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
    deadline: Duration,
) -> std::result::Result<(), bollard::errors::Error> {
    let opts = CreateContainerOptions {
        name: Some(name.to_string()),
        platform: String::new(),
    };
    within(deadline, docker.create_container(Some(opts), body))
        .await
        .map(|_| ())
}

/// Containers whose start did not answer within its bound: a runtime that
/// never returns holds the container's lock in the daemon, so every call on
/// it (inspect, remove) waits as long. Their removal is tried with a short
/// bound, in the background, until the runtime lets go.
/// Process-wide, as the daemon's lock is: every run, runner and sweep of
/// this process must see that a container is hung, whichever call found it
/// (not a `Ctx` field: a Ctx is made per call).
static HUNG: Mutex<Option<HashSet<String>>> = Mutex::new(None);
/// The bound on one removal attempt of a hung container.
const HUNG_REMOVE_DEADLINE: Duration = Duration::from_secs(2);

fn with_hung<T>(f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
    let mut g = HUNG.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashSet::new))
}

/// True when run `id`'s start was abandoned after its bound.
pub fn is_hung(id: &str) -> bool {
    with_hung(|h| h.contains(id))
}

/// Starts the container within `deadline`. A start that does not answer in
/// time is a `CONTAINER_START_FAILED` naming the bound; the container is
/// then treated as hung (see [`remove_all_eventually`]).
pub async fn start(docker: &Docker, id: &str, deadline: Duration) -> Result<()> {
    match tokio::time::timeout(deadline, docker.start_container(id, None)).await {
        Ok(r) => r.map_err(|e| Error::docker(DockerOp::Start, Some(id), e)),
        Err(_) => {
            with_hung(|h| h.insert(id.to_string()));
            Err(Error::Timeout {
                op: DockerOp::Start,
                id: id.to_string(),
                ms: deadline.as_millis() as u64,
            })
        }
    }
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
    .map_err(|e| Error::docker(DockerOp::Kill, Some(id), e))
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

pub async fn life(docker: &Docker, id: &str) -> Result<Life> {
    match quick(docker.inspect_container(id, None::<InspectContainerOptions>)).await {
        Err(e) if is_not_found(&e) => Ok(Life::Gone),
        Err(e) => Err(Error::docker(DockerOp::Inspect, Some(id), e)),
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
                    memory_capped: info
                        .host_config
                        .as_ref()
                        .and_then(|h| h.memory)
                        .is_some_and(|m| m > 0),
                }),
            })
        }
    }
}

/// True when the daemon keeps containers running while it is down.
pub async fn live_restore(docker: &Docker) -> bool {
    quick(docker.info())
        .await
        .ok()
        .and_then(|i| i.live_restore_enabled)
        .unwrap_or(false)
}

/// The daemon's first answer to a wait for the container to be not running
/// (`None`: the stream ended without one).
async fn not_running(
    docker: &Docker,
    id: &str,
) -> Option<std::result::Result<ContainerWaitResponse, bollard::errors::Error>> {
    docker
        .wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        )
        .next()
        .await
}

/// Waits until the container is not running: its exit code, or the error
/// that ended the wait (a daemon that went away: a transport error).
pub async fn wait_stopped(docker: &Docker, id: &str) -> Result<i64> {
    match not_running(docker, id).await {
        Some(Ok(r)) => Ok(r.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(Error::docker(DockerOp::Wait, Some(id), e)),
        None => Err(Error::Internal("the wait ended without an answer".into())),
    }
}

/// Removes the container, its seed twin and its volume; a resource already
/// gone is fine.
pub async fn remove_all(docker: &Docker, id: &str) -> Result<()> {
    let hung = is_hung(id);
    let remove = |name: String| async move {
        let call = docker.remove_container(
            &name,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            }),
        );
        if hung {
            within(HUNG_REMOVE_DEADLINE, call).await
        } else {
            quick(call).await
        }
    };
    // The twin (a never-started container, absent unless a seed through it
    // was cut short) goes alongside the run's own container.
    let (rc, twin) = tokio::join!(remove(id.to_string()), remove(twin_name(id)));
    let mut first_error = None;
    // A transport error may come after the daemon removed the container (a
    // connection cut mid-answer): the volume is still tried, once (the loop
    // below stops at the first transport error, so an absent daemon costs
    // one more refused request, not a retry loop).
    for r in [rc, twin] {
        if let Err(e) = r {
            if !is_not_found(&e) {
                first_error.get_or_insert(Error::docker(DockerOp::RemoveContainer, Some(id), e));
            }
        }
    }
    if hung {
        if first_error.is_some() {
            // Still held by its runtime: the volume is in use until then.
            return first_error.map_or(Ok(()), Err);
        }
        with_hung(|h| h.remove(id));
    }
    // A volume can stay "in use" for a moment after its container is removed.
    for attempt in 0..20 {
        match quick(docker.remove_volume(id, Some(RemoveVolumeOptions { force: true }))).await {
            Ok(()) => break,
            Err(e) if is_not_found(&e) => break,
            Err(e) if attempt == 19 || is_transport(&e) => {
                first_error.get_or_insert(Error::docker(DockerOp::RemoveVolume, Some(id), e));
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await,
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Creates run `id`'s seed twin (see [`super::spec::twin_body`]).
pub async fn create_twin(
    docker: &Docker,
    id: &str,
    body: ContainerCreateBody,
    deadline: Duration,
) -> Result<()> {
    create_container(docker, &twin_name(id), body, deadline)
        .await
        .map_err(|e| Error::docker(DockerOp::CreateContainer, Some(id), e))
}

/// Removes run `id`'s seed twin (never started: nothing holds it).
pub async fn remove_twin(docker: &Docker, id: &str) -> Result<()> {
    match quick(docker.remove_container(
        &twin_name(id),
        Some(RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        }),
    ))
    .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::docker(DockerOp::RemoveContainer, Some(id), e)),
    }
}

/// True while the daemon still has the container or the volume `id`.
async fn anything_left(docker: &Docker, id: &str) -> bool {
    let container = quick(docker.inspect_container(id, None::<InspectContainerOptions>)).await;
    let twin =
        quick(docker.inspect_container(&twin_name(id), None::<InspectContainerOptions>)).await;
    let volume = quick(docker.inspect_volume(id)).await;
    !matches!(&container, Err(e) if is_not_found(e))
        || !matches!(&twin, Err(e) if is_not_found(e))
        || !matches!(&volume, Err(e) if is_not_found(e))
}

/// Removes what a create that landed late left of run `id`, if anything;
/// false for a hung container (its background retries own it).
pub async fn remove_late(docker: &Docker, id: &str) -> bool {
    if is_hung(id) {
        remove_all_eventually(docker, id, || {}).await;
        return false;
    }
    if anything_left(docker, id).await {
        let _ = remove_all(docker, id).await;
    }
    true
}

/// Removes the container and volume of a run whose host died while it set
/// the run up, then keeps looking for `linger`: a create the host sent just
/// before it died may still land after the first removal (a container
/// create also re-creates its named volume), and is removed too.
pub async fn remove_all_settled(docker: &Docker, id: &str, linger: Duration) {
    // A hung container cannot be inspected nor removed until its runtime
    // lets go: the background retries take it from there.
    if is_hung(id) {
        return remove_all_eventually(docker, id, || {}).await;
    }
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
/// either way. A hung container (its start timed out) is removed in the
/// background only, retried for an hour: its runtime holds it until it
/// returns or is killed, and the run's result is not held back meanwhile.
pub async fn remove_all_eventually(
    docker: &Docker,
    id: &str,
    removed: impl FnOnce() + Send + 'static,
) {
    let first = if is_hung(id) {
        Error::docker(
            DockerOp::RemoveContainer,
            Some(id),
            bollard::errors::Error::RequestTimeoutError,
        )
    } else {
        match remove_all(docker, id).await {
            Ok(()) => return removed(),
            Err(e) => e,
        }
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
