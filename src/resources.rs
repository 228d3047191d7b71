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
use crate::errors::{is_not_found, Error, Result};

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

/// The exit as inspected, or just the code when inspecting fails.
pub async fn exit_details(docker: &Docker, id: &str, code: i64) -> Exit {
    match life(docker, id).await {
        Ok(Life::Exited(exit)) => Exit { code, ..exit },
        _ => Exit {
            code,
            ..Default::default()
        },
    }
}

/// Waits for a started container to stop and returns its exit code.
/// `Ok(None)` means the container vanished. Transient daemon errors (a
/// broken connection, a restarting daemon) are retried for about 2 minutes.
pub async fn wait_exit(docker: &Docker, id: &str) -> Result<Option<i64>> {
    let mut failures = 0;
    loop {
        let mut stream = docker
            .wait_container(
                id,
                Some(WaitContainerOptions {
                    condition: "not-running".into(),
                }),
            )
            .boxed();
        let err = match stream.next().await {
            Some(Ok(r)) => return Ok(Some(r.status_code)),
            // bollard reports a non-zero exit as an error value: it is a result.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                return Ok(Some(code))
            }
            Some(Err(e)) if is_not_found(&e) => return Ok(None),
            Some(Err(e)) => e,
            None => bollard::errors::Error::RequestTimeoutError,
        };
        // The wait connection broke: ask the daemon directly before retrying.
        match life(docker, id).await {
            Ok(Life::Exited(exit)) => return Ok(Some(exit.code)),
            Ok(Life::Gone) => return Ok(None),
            _ => {}
        }
        failures += 1;
        if failures >= 30 {
            return Err(Error::docker("wait", Some(id), err));
        }
        tokio::time::sleep(Duration::from_millis(200 * failures.min(10))).await;
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
            Err(e) if attempt == 19 => {
                first_error.get_or_insert(Error::docker("removeVolume", Some(id), e));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await,
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A `label` filter for listing what this package created.
pub fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}
