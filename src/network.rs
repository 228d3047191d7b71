//! The shared bridge `light-runner-isolated`: created on demand with
//! inter-container communication disabled, exactly once even when many runs
//! (in one process or several) start together.
//!
//! Docker 20.10 does not enforce unique network names, so creation is
//! serialized by a process-wide mutex plus a host-wide file lock, and any
//! duplicates found are repaired (the oldest wins, the others are removed
//! when unused). Runs join the network by id, never by an ambiguous name.

use std::collections::HashMap;
use std::fs::OpenOptions;

use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptions};
use bollard::Docker;
use fs2::FileExt;
use tokio::sync::Mutex;

use crate::docker::quick;
use crate::errors::{is_not_found, ErrorCode, RunError};

pub const ISOLATED_NETWORK: &str = "light-runner-isolated";

/// Network id found or created by this process (checked before each use).
static KNOWN: Mutex<Option<String>> = Mutex::const_new(None);

fn err(e: impl std::fmt::Display) -> RunError {
    RunError::docker(ErrorCode::ContainerStartFailed, "createNetwork", None, e)
}

/// The id of the isolated network, creating it if needed.
pub async fn ensure_isolated(docker: &Docker) -> Result<String, RunError> {
    let mut known = KNOWN.lock().await;
    if let Some(id) = known.clone() {
        // One cheap request: the network may have been removed behind our
        // back, and Docker only notices a dangling id at container start.
        match quick(docker.inspect_network(&id, None::<InspectNetworkOptions>)).await {
            Ok(_) => return Ok(id),
            Err(e) if is_not_found(&e) => *known = None,
            Err(e) => return Err(err(e)),
        }
    }
    if let Some(id) = find(docker).await? {
        *known = Some(id.clone());
        return Ok(id);
    }
    // Another process may be creating it: take the host-wide lock, look again.
    let lock_path = std::env::temp_dir().join("light-runner-network.lock");
    let lock = tokio::task::spawn_blocking(move || {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        f.lock_exclusive()?;
        Ok::<_, std::io::Error>(f)
    })
    .await
    .map_err(err)?
    .map_err(err)?;
    let result = async {
        if let Some(id) = find(docker).await? {
            return Ok(id);
        }
        let created = quick(docker.create_network(NetworkCreateRequest {
            name: ISOLATED_NETWORK.to_string(),
            driver: Some("bridge".into()),
            options: Some(HashMap::from([(
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string(),
            )])),
            labels: Some(HashMap::from([(
                "light-runner.network".to_string(),
                "isolated".to_string(),
            )])),
            ..Default::default()
        }))
        .await
        .map_err(err)?;
        // Someone on another machine may have raced us: settle on one.
        Ok(find(docker).await?.unwrap_or(created.id))
    }
    .await;
    let _ = FileExt::unlock(&lock);
    let id = result?;
    *known = Some(id.clone());
    Ok(id)
}

/// Forgets the cached id (the network was removed behind our back).
pub async fn forget() {
    *KNOWN.lock().await = None;
}

/// Finds the network by exact name; with duplicates, keeps the oldest and
/// removes the rest when they are unused.
async fn find(docker: &Docker) -> Result<Option<String>, RunError> {
    let list = quick(docker.list_networks(Some(ListNetworksOptions {
        filters: Some(HashMap::from([(
            "name".to_string(),
            vec![ISOLATED_NETWORK.to_string()],
        )])),
    })))
    .await
    .map_err(err)?;
    let mut matches: Vec<_> = list
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(ISOLATED_NETWORK))
        .filter_map(|n| Some((n.created.clone().unwrap_or_default(), n.id?)))
        .collect();
    matches.sort();
    let Some((_, keep)) = matches.first().cloned() else {
        return Ok(None);
    };
    for (_, dup) in matches.iter().skip(1) {
        let _ = quick(docker.remove_network(dup)).await;
    }
    Ok(Some(keep))
}
