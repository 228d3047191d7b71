//! The Docker resources of one run (its volume and its container): creating
//! them, pulling a missing image, waiting for the exit, and removing them.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, KillContainerOptions,
    RemoveContainerOptions, RemoveVolumeOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::container::labels;
use crate::docker::quick;
use crate::errors::{is_not_found, ErrorCode, RunError};

pub async fn create_volume(docker: &Docker, id: &str, detached: bool) -> Result<(), RunError> {
    quick(docker.create_volume(VolumeCreateRequest {
        name: Some(id.to_string()),
        labels: Some(labels(id, detached)),
        ..Default::default()
    }))
    .await
    .map(|_| ())
    .map_err(|e| RunError::docker(ErrorCode::VolumeCreateFailed, "createVolume", Some(id), e))
}

/// Creates the container, pulling its image first when the daemon lacks it.
pub async fn create_container(
    docker: &Docker,
    id: &str,
    body: ContainerCreateBody,
) -> Result<(), RunError> {
    let opts = || CreateContainerOptions {
        name: Some(id.to_string()),
        platform: String::new(),
    };
    let image = body.image.clone().unwrap_or_default();
    match quick(docker.create_container(Some(opts()), body.clone())).await {
        Ok(_) => return Ok(()),
        Err(e) if is_not_found(&e) && e.to_string().contains("image") => {}
        Err(e) => {
            return Err(RunError::docker(
                ErrorCode::ContainerStartFailed,
                "createContainer",
                Some(id),
                e,
            ))
        }
    }
    pull(docker, &image)
        .await
        .map_err(|e| RunError::docker(ErrorCode::ContainerStartFailed, "pull", Some(id), e))?;
    quick(docker.create_container(Some(opts()), body))
        .await
        .map(|_| ())
        .map_err(|e| {
            RunError::docker(
                ErrorCode::ContainerStartFailed,
                "createContainer",
                Some(id),
                e,
            )
        })
}

/// Splits `repo[:tag]` (a digest reference is passed whole).
pub fn split_image(image: &str) -> (String, Option<String>) {
    if image.contains('@') {
        return (image.to_string(), None);
    }
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            Some(image[last_slash + i + 1..].to_string()),
        ),
        None => (image.to_string(), Some("latest".to_string())),
    }
}

async fn pull(docker: &Docker, image: &str) -> Result<(), String> {
    let (from_image, tag) = split_image(image);
    let mut progress = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(from_image),
            tag,
            ..Default::default()
        }),
        None,
        None,
    );
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    return Err(format!("image {image} could not be pulled: {detail}"));
                }
            }
            Err(e) => return Err(format!("image {image} could not be pulled: {e}")),
        }
    }
    Ok(())
}

pub async fn start(docker: &Docker, id: &str) -> Result<(), RunError> {
    quick(docker.start_container(id, None))
        .await
        .map_err(|e| RunError::docker(ErrorCode::ContainerStartFailed, "start", Some(id), e))
}

pub async fn kill(docker: &Docker, id: &str) {
    let _ = quick(docker.kill_container(id, None::<KillContainerOptions>)).await;
}

/// What the daemon says about a container's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Life {
    Gone,
    /// Created, not started yet.
    Created,
    Running,
    Paused,
    Exited(i64),
}

pub async fn life(docker: &Docker, id: &str) -> Result<Life, bollard::errors::Error> {
    match quick(docker.inspect_container(id, None::<InspectContainerOptions>)).await {
        Err(e) if is_not_found(&e) => Ok(Life::Gone),
        Err(e) => Err(e),
        Ok(info) => {
            let s = info.state.unwrap_or_default();
            let status = s.status.map(|x| x.to_string()).unwrap_or_default();
            Ok(match status.as_str() {
                "created" => Life::Created,
                "running" | "restarting" => Life::Running,
                "paused" => Life::Paused,
                _ => Life::Exited(s.exit_code.unwrap_or(-1)),
            })
        }
    }
}

/// When the container exited (ms since epoch), if it did.
pub async fn finished_at(docker: &Docker, id: &str) -> Option<i64> {
    let info = quick(docker.inspect_container(id, None::<InspectContainerOptions>))
        .await
        .ok()?;
    let at = info.state?.finished_at?;
    chrono::DateTime::parse_from_rfc3339(&at)
        .ok()
        .map(|d| d.timestamp_millis())
        .filter(|ms| *ms > 0)
}

/// Waits for a started container to stop and returns its exit code.
/// `Ok(None)` means the container vanished. Transient daemon errors are retried.
pub async fn wait_exit(docker: &Docker, id: &str) -> Result<Option<i64>, RunError> {
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
            Some(Err(e)) => e.to_string(),
            None => "wait stream ended without a status".to_string(),
        };
        // The wait connection broke: ask the daemon directly before retrying.
        match life(docker, id).await {
            Ok(Life::Exited(code)) => return Ok(Some(code)),
            Ok(Life::Gone) => return Ok(None),
            _ => {}
        }
        failures += 1;
        if failures >= 30 {
            return Err(RunError::docker(
                ErrorCode::ContainerStartFailed,
                "wait",
                Some(id),
                err,
            ));
        }
        tokio::time::sleep(Duration::from_millis(200 * failures.min(10))).await;
    }
}

/// Removes the container and its volume; a resource already gone is fine.
pub async fn remove_all(docker: &Docker, id: &str) -> Result<(), String> {
    let mut problems = Vec::new();
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
            problems.push(format!("remove container {id}: {e}"));
        }
    }
    // A volume can stay "in use" for a moment after its container is removed.
    for attempt in 0..20 {
        match quick(docker.remove_volume(id, Some(RemoveVolumeOptions { force: true }))).await {
            Ok(()) => break,
            Err(e) if is_not_found(&e) => break,
            Err(e) if attempt == 19 => problems.push(format!("remove volume {id}: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await,
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Volume labels for listing what this package created.
pub fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        assert_eq!(
            split_image("busybox"),
            ("busybox".into(), Some("latest".into()))
        );
        assert_eq!(
            split_image("busybox:1.36"),
            ("busybox".into(), Some("1.36".into()))
        );
        assert_eq!(
            split_image("127.0.0.1:5000/lr/img"),
            ("127.0.0.1:5000/lr/img".into(), Some("latest".into()))
        );
        assert_eq!(
            split_image("127.0.0.1:5000/lr/img:v2"),
            ("127.0.0.1:5000/lr/img".into(), Some("v2".into()))
        );
        assert_eq!(
            split_image("img@sha256:abc"),
            ("img@sha256:abc".into(), None)
        );
    }
}
