//! Sweeping what crashed hosts left behind: labelled containers and volumes.
//! Nothing without the `light-runner.run-id` label is ever touched, and a
//! detached run that has not been finalized keeps its container and volume.

use std::collections::HashSet;

use bollard::query_parameters::{
    ListContainersOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use bollard::Docker;

use crate::container::{DETACHED_LABEL, RUN_ID_LABEL};
use crate::docker::{self, quick};
use crate::resources::label_filter;
use crate::state::{self, now_ms, parse_iso_ms};

pub const DEFAULT_REAP_AGE_MS: u64 = 300_000;

/// `LIGHT_RUNNER_REAP_AGE_MS`, read at call time.
pub fn reap_age_ms() -> u64 {
    std::env::var("LIGHT_RUNNER_REAP_AGE_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_REAP_AGE_MS)
}

/// Ids whose resources must survive: runs this process drives, and detached
/// runs whose state is not terminal yet.
fn protected_ids() -> HashSet<String> {
    let mut keep: HashSet<String> = crate::detached::live_ids()
        .into_iter()
        .chain(crate::watchdog::guarded_ids())
        .collect();
    for st in state::list_runs_in(&state::state_dir()) {
        if !st.status.is_terminal() {
            keep.insert(st.id);
        }
    }
    keep
}

/// True when a detached resource may go: its state says it was finalized.
/// Without a readable state (another state dir?) it is kept: losing a result
/// is worse than keeping a volume.
fn detached_removable(id: &str) -> bool {
    state::read_state(id).is_some_and(|s| s.status.is_terminal())
}

pub async fn reap_orphans() -> Result<(u32, u32), String> {
    let docker = docker::connected().await.map_err(|e| e.message)?;
    let cutoff_ms = now_ms() - reap_age_ms() as i64;
    let keep = protected_ids();
    let mut containers = 0;
    let list = quick(docker.list_containers(Some(ListContainersOptions {
        all: true,
        filters: Some(label_filter(RUN_ID_LABEL)),
        ..Default::default()
    })))
    .await
    .map_err(|e| format!("listing containers failed: {e}"))?;
    for c in list {
        let state = c.state.map(|s| s.to_string()).unwrap_or_default();
        if !matches!(state.as_str(), "created" | "exited" | "dead") {
            continue;
        }
        if c.created.unwrap_or(i64::MAX).saturating_mul(1000) > cutoff_ms {
            continue;
        }
        let labels = c.labels.unwrap_or_default();
        let Some(run_id) = labels.get(RUN_ID_LABEL) else {
            continue;
        };
        if keep.contains(run_id) {
            continue;
        }
        if labels.contains_key(DETACHED_LABEL) && !detached_removable(run_id) {
            continue;
        }
        let Some(cid) = c.id else { continue };
        let removed = quick(docker.remove_container(
            &cid,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        ))
        .await;
        if removed.is_ok() {
            containers += 1;
        }
    }
    let volumes = remove_volumes(&docker, &keep, Some(cutoff_ms), true).await?;
    Ok((containers, volumes))
}

/// `cleanupOrphanVolumes()`: unused volumes named `light-runner-*`.
pub async fn cleanup_orphan_volumes() -> Result<u32, String> {
    let docker = docker::connected().await.map_err(|e| e.message)?;
    let keep = protected_ids();
    remove_volumes(&docker, &keep, None, false).await
}

async fn remove_volumes(
    docker: &Docker,
    keep: &HashSet<String>,
    cutoff_ms: Option<i64>,
    by_label: bool,
) -> Result<u32, String> {
    let filters = if by_label {
        label_filter(RUN_ID_LABEL)
    } else {
        std::collections::HashMap::from([("name".to_string(), vec!["light-runner-".to_string()])])
    };
    let list = quick(docker.list_volumes(Some(ListVolumesOptions {
        filters: Some(filters),
    })))
    .await
    .map_err(|e| format!("listing volumes failed: {e}"))?;
    let mut removed = 0;
    for v in list.volumes.unwrap_or_default() {
        if !v.name.starts_with("light-runner-") && !by_label {
            continue;
        }
        let run_id = v
            .labels
            .get(RUN_ID_LABEL)
            .cloned()
            .unwrap_or_else(|| v.name.clone());
        if keep.contains(&run_id) || keep.contains(&v.name) {
            continue;
        }
        if v.labels.contains_key(DETACHED_LABEL) && !detached_removable(&run_id) {
            continue;
        }
        if let Some(cutoff) = cutoff_ms {
            // A run being set up owns a volume before it has a container.
            let created = v.created_at.as_deref().and_then(parse_iso_ms);
            if created.is_some_and(|t| t > cutoff) {
                continue;
            }
        }
        // No force: a volume in use by any container is left alone.
        if quick(docker.remove_volume(&v.name, Some(RemoveVolumeOptions { force: false })))
            .await
            .is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}
