//! Reclaiming what runs and crashed hosts leave behind: labelled containers
//! and volumes (`reapOrphans`, `cleanupOrphanVolumes`), running states
//! nobody watches (`cleanupOrphanStates`), old terminal states
//! (`cleanupOldStates`) and images (`cleanupOrphanCache`,
//! `cleanupDanglingImages`). Nothing without the package's labels or names
//! is ever touched, and a detached run that has not been finalized keeps its
//! container and volume.

use std::collections::{HashMap, HashSet};

use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveImageOptions, RemoveVolumeOptions,
};
use bollard::Docker;

use crate::backend::docker::image::{self, CACHE_REPO};
use crate::backend::docker::labels::{label_filter, DETACHED_LABEL, RUN_ID_LABEL, WARM_LABEL};
use crate::backend::docker::quick;
use crate::engine::ctx::Ctx;
use crate::errors::{DockerOp, Error, Result};
use crate::record::{HostIdentity, RunRecord};
use crate::store::Store;
use crate::time::parse_iso as parse_iso_ms;

/// Ids whose resources must survive: runs this process drives, detached
/// runs whose state is not terminal yet, and attached runs of a live host.
async fn protected_ids(ctx: &Ctx) -> HashSet<String> {
    let mut keep: HashSet<String> = ctx
        .host
        .run_ids()
        .into_iter()
        .chain(crate::watchdog::guarded_ids())
        .collect();
    for st in ctx.store.list().await {
        let host_dead = st.host.as_ref().and_then(HostIdentity::is_alive) == Some(false);
        let abandoned = st.is_attached() && host_dead;
        if !st.is_terminal() && !abandoned {
            keep.insert(st.id);
        }
    }
    keep
}

/// True when a detached resource may go: its state says it was finalized.
/// Without a readable state (another state dir?) it is kept: losing a result
/// is worse than keeping a volume.
async fn detached_removable(store: &Store, id: &str) -> bool {
    store.read(id).await.is_some_and(|s| s.is_terminal())
}

/// `reapOrphans()`: (containers, volumes) removed.
pub async fn reap_orphans(ctx: &Ctx) -> Result<(u32, u32)> {
    let docker = ctx.connected().await?.docker;
    let cutoff_ms = ctx.now_ms() - ctx.limits.reap_age.as_millis() as i64;
    let keep = protected_ids(ctx).await;
    let mut containers = 0;
    let list = quick(docker.list_containers(Some(ListContainersOptions {
        all: true,
        filters: Some(label_filter(RUN_ID_LABEL)),
        ..Default::default()
    })))
    .await
    .map_err(|e| Error::docker(DockerOp::ListContainers, None, e))?;
    for c in list {
        let state = c.state.map(|s| s.to_string()).unwrap_or_default();
        // A warm container of a dead owner goes, running (idle) or not:
        // nobody will ever send it a job, or collect the one it ran.
        let warm_owner = c.labels.as_ref().and_then(|l| l.get(WARM_LABEL)).cloned();
        if let (Some(owner), Some(name)) = (&warm_owner, c.names.as_ref().and_then(|n| n.first())) {
            if crate::engine::warm::owner_is_dead(owner) {
                let name = name.trim_start_matches('/');
                if crate::backend::docker::container::remove_all(&docker, name)
                    .await
                    .is_ok()
                {
                    containers += 1;
                }
                continue;
            }
        }
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
        if labels.contains_key(DETACHED_LABEL) && !detached_removable(&ctx.store, run_id).await {
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
    let volumes = remove_volumes(ctx, &docker, &keep, Some(cutoff_ms), true).await?;
    Ok((containers, volumes))
}

/// `cleanupOrphanVolumes()`: unused volumes named `light-runner-*`.
pub async fn cleanup_orphan_volumes(ctx: &Ctx) -> Result<u32> {
    let docker = ctx.connected().await?.docker;
    let keep = protected_ids(ctx).await;
    remove_volumes(ctx, &docker, &keep, None, false).await
}

async fn remove_volumes(
    ctx: &Ctx,
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
    .map_err(|e| Error::docker(DockerOp::ListVolumes, None, e))?;
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
        if v.labels.contains_key(DETACHED_LABEL) && !detached_removable(&ctx.store, &run_id).await {
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
///
/// The states are reconciled concurrently, at most [`RECONCILE_AT_ONCE`] at
/// a time, and none waits on a grace: a run whose launcher died while
/// setting it up is recorded failed at once, and the look for a create that
/// lands late goes on in the background while the process lives (else the
/// next `reapOrphans()` removes it).
pub async fn cleanup_orphan_states(ctx: &Ctx) -> Result<u32> {
    use futures_util::StreamExt;
    let daemon = ctx.connected().await?;
    let watched = ctx.host.run_ids();
    let todo: Vec<RunRecord> = ctx
        .store
        .list()
        .await
        .into_iter()
        .filter(|st| !st.is_terminal() && !watched.contains(&st.id))
        .collect();
    let changed = futures_util::stream::iter(todo)
        .map(|st| crate::engine::attach::reconcile(ctx, &daemon, st))
        .buffer_unordered(RECONCILE_AT_ONCE)
        .filter(|won| std::future::ready(*won))
        .count()
        .await;
    Ok(changed as u32)
}

/// How many states `cleanupOrphanStates()` reconciles at once.
pub const RECONCILE_AT_ONCE: usize = 16;

/// Which terminal states to remove: older than `ttl_ms`, then the oldest
/// past `max` terminal states. Running states are never chosen.
pub fn old_states(states: &[RunRecord], now: i64, ttl_ms: u64, max: usize) -> Vec<String> {
    let mut terminal: Vec<&RunRecord> = states.iter().filter(|s| s.is_terminal()).collect();
    terminal.sort_by_key(|s| std::cmp::Reverse(s.ended_ms()));
    let cutoff = now.saturating_sub(ttl_ms.min(i64::MAX as u64) as i64);
    terminal
        .iter()
        .enumerate()
        .filter(|(i, s)| s.ended_ms() < cutoff || *i >= max)
        .map(|(_, s)| s.id.clone())
        .collect()
}

/// `cleanupOldStates()` (synchronous, as in JS): removes terminal state
/// files older than `LIGHT_RUNNER_STATE_TTL_MS` (default 7 days) and, past
/// `LIGHT_RUNNER_MAX_STATES` terminal files (default 1000), the oldest.
pub fn cleanup_old_states(ctx: &Ctx) -> u32 {
    let store = &ctx.store;
    let ttl = ctx.limits.state_ttl.as_millis().min(u64::MAX as u128) as u64;
    let mut removed = 0;
    for id in old_states(&store.list_now(), ctx.now_ms(), ttl, ctx.limits.max_states) {
        // Re-checked: a state is never removed while running.
        let still_terminal = store.read_now(&id).is_some_and(|s| s.is_terminal());
        if still_terminal && store.delete_now(&id).is_ok() {
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
    .map_err(|e| Error::docker(DockerOp::ListContainers, None, e))?;
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
pub async fn cleanup_orphan_cache(ctx: &Ctx) -> Result<u32> {
    let docker = ctx.connected().await?.docker;
    let ttl = ctx.limits.cache_ttl.as_millis().min(u64::MAX as u128) as u64;
    let uses = ctx.store.cache_uses();
    let in_use = images_in_use(&docker).await?;
    let list = quick(docker.list_images(Some(ListImagesOptions {
        filters: Some(HashMap::from([(
            "reference".to_string(),
            vec![format!("{CACHE_REPO}:*")],
        )])),
        ..Default::default()
    })))
    .await
    .map_err(|e| Error::docker(DockerOp::ListImages, None, e))?;
    let cutoff = ctx.now_ms().saturating_sub(ttl.min(i64::MAX as u64) as i64);
    let existing: HashSet<String> = list.iter().flat_map(|i| i.repo_tags.clone()).collect();
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
    // Records of images removed by other means (or of a build that died)
    // would pile up in the state dir.
    for tag in stale_uses(&image::recorded_uses(&uses), &existing, cutoff) {
        image::forget_use(&uses, &tag);
    }
    Ok(removed)
}

/// Recorded uses of cache tags that no image has, not used since `cutoff`.
pub fn stale_uses(
    recorded: &[(String, i64)],
    existing: &HashSet<String>,
    cutoff: i64,
) -> Vec<String> {
    recorded
        .iter()
        .filter(|(tag, when)| !existing.contains(tag) && *when <= cutoff)
        .map(|(tag, _)| tag.clone())
        .collect()
}

/// `cleanupDanglingImages()`: removes untagged images no container uses.
pub async fn cleanup_dangling_images(ctx: &Ctx) -> Result<u32> {
    let docker = ctx.connected().await?.docker;
    let in_use = images_in_use(&docker).await?;
    let list = quick(docker.list_images(Some(ListImagesOptions {
        filters: Some(HashMap::from([(
            "dangling".to_string(),
            vec!["true".to_string()],
        )])),
        ..Default::default()
    })))
    .await
    .map_err(|e| Error::docker(DockerOp::ListImages, None, e))?;
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

    use crate::time::iso;

    fn st(id: &str, status: &str, finished: Option<i64>) -> RunRecord {
        let mut v = serde_json::json!({
            "id": id, "container": id, "volume": id, "image": "i", "workdir": "/app",
            "startedAt": iso(0), "status": status,
        });
        if let Some(f) = finished {
            v["finishedAt"] = iso(f).into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn use_records_of_absent_images_go_once_past_the_ttl() {
        let recorded = vec![
            ("light-runner-cache:a".to_string(), 100),
            ("light-runner-cache:b".to_string(), 100),
            ("light-runner-cache:c".to_string(), 900),
        ];
        let existing = HashSet::from(["light-runner-cache:a".to_string()]);
        assert_eq!(
            stale_uses(&recorded, &existing, 500),
            vec!["light-runner-cache:b".to_string()]
        );
        assert!(stale_uses(&recorded, &existing, 0).is_empty());
    }

    #[test]
    fn recorded_uses_round_trip_through_the_use_dir() {
        let dir = tempfile::tempdir().unwrap();
        let tag = image::cache_tag("busybox", &["true".into()]);
        assert!(image::recorded_uses(dir.path()).is_empty());
        std::fs::write(dir.path().join("unrelated"), b"").unwrap();
        std::fs::write(dir.path().join(tag.replace(':', "-")), b"").unwrap();
        let uses = image::recorded_uses(dir.path());
        assert_eq!(uses.len(), 1);
        assert_eq!(uses[0].0, tag);
        assert!((uses[0].1 - crate::time::now_ms()).abs() < 60_000);
        image::forget_use(dir.path(), &tag);
        assert!(image::recorded_uses(dir.path()).is_empty());
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
