//! Reclaiming what runs and crashed hosts leave behind: labelled containers
//! and volumes (`reapOrphans`, `cleanupOrphanVolumes`), running states
//! nobody watches (`cleanupOrphanStates`), old terminal states
//! (`cleanupOldStates`) and images (`cleanupOrphanCache`,
//! `cleanupDanglingImages`). Nothing without the package's labels or names
//! is ever touched, and a detached run that has not been finalized keeps its
//! container and volume.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveImageOptions, RemoveVolumeOptions,
};
use bollard::Docker;

use crate::container::{DETACHED_LABEL, RUN_ID_LABEL};
use crate::docker::{self, quick};
use crate::errors::{Error, Result};
use crate::image::{self, CACHE_REPO};
use crate::resources::label_filter;
use crate::state::{self, now_ms, parse_iso_ms, HostIdentity, RunState};

pub const DEFAULT_REAP_AGE_MS: u64 = 300_000;

/// `LIGHT_RUNNER_REAP_AGE_MS`, read at call time.
pub fn reap_age_ms() -> u64 {
    std::env::var("LIGHT_RUNNER_REAP_AGE_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_REAP_AGE_MS)
}

/// Ids whose resources must survive: runs this process drives, detached
/// runs whose state is not terminal yet, and attached runs of a live host.
fn protected_ids() -> HashSet<String> {
    let mut keep: HashSet<String> = crate::live::ids()
        .into_iter()
        .chain(crate::watchdog::guarded_ids())
        .collect();
    for st in state::list_runs_in(&state::state_dir()) {
        let host_dead = st.host.as_ref().and_then(HostIdentity::is_alive) == Some(false);
        let abandoned = st.is_attached() && host_dead;
        if !st.status.is_terminal() && !abandoned {
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

/// `reapOrphans()`: (containers, volumes) removed.
pub async fn reap_orphans() -> Result<(u32, u32)> {
    let docker = docker::connected().await?;
    let cutoff_ms = now_ms() - reap_age_ms() as i64;
    let keep = protected_ids();
    let mut containers = 0;
    let list = quick(docker.list_containers(Some(ListContainersOptions {
        all: true,
        filters: Some(label_filter(RUN_ID_LABEL)),
        ..Default::default()
    })))
    .await
    .map_err(|e| Error::docker("listContainers", None, e))?;
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
pub async fn cleanup_orphan_volumes() -> Result<u32> {
    let docker = docker::connected().await?;
    let keep = protected_ids();
    remove_volumes(&docker, &keep, None, false).await
}

async fn remove_volumes(
    docker: &Docker,
    keep: &HashSet<String>,
    cutoff_ms: Option<i64>,
    by_label: bool,
) -> Result<u32> {
    let filters = if by_label {
        label_filter(RUN_ID_LABEL)
    } else {
        std::collections::HashMap::from([("name".to_string(), vec!["light-runner-".to_string()])])
    };
    let list = quick(docker.list_volumes(Some(ListVolumesOptions {
        filters: Some(filters),
    })))
    .await
    .map_err(|e| Error::docker("listVolumes", None, e))?;
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

/// `cleanupOrphanStates()`: reconciles every running state this process
/// does not watch with the daemon. Returns how many states changed.
pub async fn cleanup_orphan_states() -> Result<u32> {
    let docker = docker::connected().await?;
    let watched = crate::live::ids();
    let dir = state::state_dir();
    let mut changed = 0;
    for st in state::list_runs_in(&dir) {
        if watched.contains(&st.id) {
            continue;
        }
        if crate::detached::reconcile(&docker, &dir, &st).await {
            changed += 1;
        }
    }
    Ok(changed)
}

pub const DEFAULT_STATE_TTL_MS: u64 = 7 * 24 * 3600 * 1000;
pub const DEFAULT_MAX_STATES: usize = 1000;
pub const DEFAULT_CACHE_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// When a terminal state ended (ms since epoch): `finishedAt`, else
/// `startedAt`.
fn ended_at(s: &RunState) -> i64 {
    s.finished_at
        .as_deref()
        .and_then(parse_iso_ms)
        .or_else(|| parse_iso_ms(&s.started_at))
        .unwrap_or(0)
}

/// Which terminal states to remove: older than `ttl_ms`, then the oldest
/// past `max` terminal states. Running states are never chosen.
pub fn old_states(states: &[RunState], now: i64, ttl_ms: u64, max: usize) -> Vec<String> {
    let mut terminal: Vec<&RunState> = states.iter().filter(|s| s.status.is_terminal()).collect();
    terminal.sort_by_key(|s| std::cmp::Reverse(ended_at(s)));
    let cutoff = now.saturating_sub(ttl_ms.min(i64::MAX as u64) as i64);
    terminal
        .iter()
        .enumerate()
        .filter(|(i, s)| ended_at(s) < cutoff || *i >= max)
        .map(|(_, s)| s.id.clone())
        .collect()
}

/// `cleanupOldStates()`: removes terminal state files older than
/// `LIGHT_RUNNER_STATE_TTL_MS` (default 7 days) and, past
/// `LIGHT_RUNNER_MAX_STATES` terminal files (default 1000), the oldest.
pub fn cleanup_old_states() -> u32 {
    cleanup_old_states_in(
        &state::state_dir(),
        env_number("LIGHT_RUNNER_STATE_TTL_MS", DEFAULT_STATE_TTL_MS),
        env_number("LIGHT_RUNNER_MAX_STATES", DEFAULT_MAX_STATES as u64) as usize,
    )
}

pub fn cleanup_old_states_in(dir: &Path, ttl_ms: u64, max: usize) -> u32 {
    let states = state::list_runs_in(dir);
    let mut removed = 0;
    for id in old_states(&states, now_ms(), ttl_ms, max) {
        // Re-checked under the lock: a state is never removed while running.
        let still_terminal = state::read_state_in(dir, &id).is_some_and(|s| s.status.is_terminal());
        if still_terminal && state::delete_state_in(dir, &id).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Image ids used by any container (running or not).
async fn images_in_use(docker: &Docker) -> Result<HashSet<String>> {
    let list = quick(docker.list_containers(Some(ListContainersOptions {
        all: true,
        ..Default::default()
    })))
    .await
    .map_err(|e| Error::docker("listContainers", None, e))?;
    Ok(list.into_iter().filter_map(|c| c.image_id).collect())
}

async fn remove_image(docker: &Docker, reference: &str) -> bool {
    quick(docker.remove_image(
        reference,
        Some(RemoveImageOptions {
            force: false,
            noprune: false,
            ..Default::default()
        }),
        None,
    ))
    .await
    .is_ok()
}

/// `cleanupOrphanCache()`: removes `light-runner-cache:*` images no
/// container uses and no run used for `LIGHT_RUNNER_CACHE_TTL_MS`.
pub async fn cleanup_orphan_cache() -> Result<u32> {
    let docker = docker::connected().await?;
    let ttl = env_number("LIGHT_RUNNER_CACHE_TTL_MS", DEFAULT_CACHE_TTL_MS);
    let uses = state::cache_use_dir(&state::state_dir());
    let in_use = images_in_use(&docker).await?;
    let list = quick(docker.list_images(Some(ListImagesOptions {
        filters: Some(HashMap::from([(
            "reference".to_string(),
            vec![format!("{CACHE_REPO}:*")],
        )])),
        ..Default::default()
    })))
    .await
    .map_err(|e| Error::docker("listImages", None, e))?;
    let cutoff = now_ms().saturating_sub(ttl.min(i64::MAX as u64) as i64);
    let mut removed = 0;
    for img in list {
        if in_use.contains(&img.id) {
            continue;
        }
        for tag in img
            .repo_tags
            .iter()
            .filter(|t| t.starts_with(&format!("{CACHE_REPO}:")))
        {
            let last = image::last_use(&uses, tag)
                .unwrap_or(0)
                .max(img.created * 1000);
            if last > cutoff {
                continue;
            }
            if remove_image(&docker, tag).await {
                image::forget_use(&uses, tag);
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// `cleanupDanglingImages()`: removes untagged images no container uses.
pub async fn cleanup_dangling_images() -> Result<u32> {
    let docker = docker::connected().await?;
    let in_use = images_in_use(&docker).await?;
    let list = quick(docker.list_images(Some(ListImagesOptions {
        filters: Some(HashMap::from([(
            "dangling".to_string(),
            vec!["true".to_string()],
        )])),
        ..Default::default()
    })))
    .await
    .map_err(|e| Error::docker("listImages", None, e))?;
    let mut removed = 0;
    for img in list {
        if in_use.contains(&img.id) {
            continue;
        }
        if remove_image(&docker, &img.id).await {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(id: &str, status: &str, finished: Option<i64>) -> RunState {
        let mut v = serde_json::json!({
            "id": id, "container": id, "volume": id, "image": "i", "workdir": "/app",
            "startedAt": state::iso_from_ms(0), "status": status,
        });
        if let Some(f) = finished {
            v["finishedAt"] = state::iso_from_ms(f).into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn old_states_by_ttl_then_budget_never_running() {
        let now = 1_000_000;
        let states = vec![
            st("old", "exited", Some(now - 500)),
            st("new1", "failed", Some(now - 10)),
            st("new2", "cancelled", Some(now - 20)),
            st("new3", "exited", Some(now - 30)),
            st("run", "running", None),
        ];
        let mut gone = old_states(&states, now, 100, 10);
        assert_eq!(gone, vec!["old".to_string()]);
        gone = old_states(&states, now, 1_000_000, 2);
        gone.sort();
        assert_eq!(gone, vec!["new3".to_string(), "old".to_string()]);
        assert!(old_states(&states, now, 0, 0).iter().all(|id| id != "run"));
    }
}
