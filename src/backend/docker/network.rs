//! Networks: the shared isolated bridge, a run's `networks[]`, and the
//! exported network functions (create, delete, exists, cleanup).
//!
//! The shared bridge `light-runner-isolated` is created on demand with
//! inter-container communication disabled, exactly once even when many runs
//! (in one process or several) start together. Docker 20.10 does not enforce
//! unique network names, so creation is serialized by a process-wide mutex
//! plus a host-wide file lock, and duplicates found are repaired (the oldest
//! wins). Runs join the shared bridge by id, never by an ambiguous name.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};

use bollard::models::{Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest};
use bollard::query_parameters::{
    InspectNetworkOptions, ListContainersOptions, ListNetworksOptions,
};
use bollard::Docker;
use fs2::FileExt;

use super::client::quick;
use super::Daemon;
pub use crate::config::CreateNetworkOptions as CreateOptions;
use crate::config::NO_NETWORK;
use crate::errors::{is_conflict, is_not_found, status, DockerOp, Error, Result};
use crate::time::{now_ms, parse_iso as parse_iso_ms};

pub const ISOLATED_NETWORK: &str = "light-runner-isolated";
/// Put on every network `createNetwork` makes.
pub const MANAGED_LABEL: &str = "light-runner.managed";
pub const DEFAULT_CLEANUP_PREFIX: &str = "light-runner-";

/// Where a run's container is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// `HostConfig.NetworkMode`: a network id or name, or `none`.
    pub mode: String,
    /// Networks connected after create, before start.
    pub connect: Vec<String>,
    /// The mode is the shared bridge (which may vanish behind our back).
    pub isolated: bool,
}

/// Resolves a request's `networks`: empty = the shared bridge; `["none"]`;
/// else every named network must exist (checked now, so a missing one fails
/// before any resource of the run is created).
pub async fn plan(daemon: &Daemon, networks: &[String]) -> Result<NetworkPlan> {
    let docker = &daemon.docker;
    match networks {
        [] => Ok(NetworkPlan {
            mode: ensure_isolated(daemon).await?,
            connect: Vec::new(),
            isolated: true,
        }),
        [only] if only == NO_NETWORK => Ok(NetworkPlan {
            mode: NO_NETWORK.into(),
            connect: Vec::new(),
            isolated: false,
        }),
        named => {
            let named = distinct(named);
            for name in &named {
                if !exists(docker, name).await? {
                    return Err(Error::NetworkNotFound { name: name.clone() });
                }
            }
            Ok(NetworkPlan {
                mode: named[0].clone(),
                connect: named[1..].to_vec(),
                isolated: false,
            })
        }
    }
}

/// The names in order, each once: one connect per network (dockerd 20.10
/// happens to accept a repeated connect of a created container; nothing
/// says every daemon does).
fn distinct(names: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .cloned()
        .collect()
}

/// Connects a created container to the plan's extra networks.
pub async fn connect_all(docker: &Docker, plan: &NetworkPlan, container: &str) -> Result<()> {
    for name in &plan.connect {
        quick(docker.connect_network(
            name,
            NetworkConnectRequest {
                container: container.to_string(),
                ..Default::default()
            },
        ))
        .await
        .map_err(|e| match status(&e) {
            Some(404) => Error::NetworkNotFound { name: name.clone() },
            _ => Error::docker(DockerOp::ConnectNetwork, Some(container), e),
        })?;
    }
    Ok(())
}

/// The id of the shared bridge, creating it if needed.
pub async fn ensure_isolated(daemon: &Daemon) -> Result<String> {
    let docker = &daemon.docker;
    let mut known = daemon.isolated.lock().await;
    if let Some(id) = known.clone() {
        // One cheap request: the network may have been removed behind our
        // back, and Docker only notices a dangling id at container start.
        match quick(docker.inspect_network(&id, None::<InspectNetworkOptions>)).await {
            Ok(_) => return Ok(id),
            Err(e) if is_not_found(&e) => *known = None,
            Err(e) => return Err(Error::docker(DockerOp::InspectNetwork, None, e)),
        }
    }
    if let Some(id) = find_isolated(docker).await? {
        *known = Some(id.clone());
        return Ok(id);
    }
    // Another process may be creating it: take the host-wide lock, look again.
    let lock = host_lock().await?;
    let result: Result<String> = async {
        if let Some(id) = find_isolated(docker).await? {
            return Ok(id);
        }
        let created = quick(docker.create_network(NetworkCreateRequest {
            name: ISOLATED_NETWORK.to_string(),
            driver: Some("bridge".into()),
            options: Some(icc_option(false)),
            labels: Some(HashMap::from([(
                "light-runner.network".to_string(),
                "isolated".to_string(),
            )])),
            ..Default::default()
        }))
        .await
        .map_err(|e| Error::docker(DockerOp::CreateNetwork, None, e))?;
        // Someone on another machine may have raced us: settle on one.
        Ok(find_isolated(docker).await?.unwrap_or(created.id))
    }
    .await;
    let _ = FileExt::unlock(&lock);
    let id = result?;
    *known = Some(id.clone());
    Ok(id)
}

/// Forgets the cached id (the network was removed behind our back).
pub async fn forget_isolated(daemon: &Daemon) {
    *daemon.isolated.lock().await = None;
}

fn icc_option(enabled: bool) -> HashMap<String, String> {
    HashMap::from([(
        "com.docker.network.bridge.enable_icc".to_string(),
        enabled.to_string(),
    )])
}

/// A host-wide lock serializing network creation across processes.
async fn host_lock() -> Result<File> {
    let path = std::env::temp_dir().join("light-runner-network.lock");
    let locked = tokio::task::spawn_blocking(move || {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        f.lock_exclusive()?;
        Ok::<_, std::io::Error>(f)
    })
    .await
    .map_err(|e| Error::Internal(format!("network lock task: {e}")))?;
    locked.map_err(|e| Error::Internal(format!("network lock: {e}")))
}

/// Networks named exactly `name`, oldest first, as (created, id).
async fn named(docker: &Docker, name: &str) -> Result<Vec<(String, String)>> {
    let list = quick(docker.list_networks(Some(ListNetworksOptions {
        filters: Some(HashMap::from([(
            "name".to_string(),
            vec![name.to_string()],
        )])),
    })))
    .await
    .map_err(|e| Error::docker(DockerOp::ListNetworks, None, e))?;
    let mut matches: Vec<_> = list
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name))
        .filter_map(|n| Some((n.created.clone().unwrap_or_default(), n.id?)))
        .collect();
    matches.sort();
    Ok(matches)
}

/// Finds the shared bridge; with duplicates, keeps the oldest and removes
/// the others when they are unused.
async fn find_isolated(docker: &Docker) -> Result<Option<String>> {
    let matches = named(docker, ISOLATED_NETWORK).await?;
    let Some((_, keep)) = matches.first().cloned() else {
        return Ok(None);
    };
    for (_, dup) in matches.iter().skip(1) {
        let _ = quick(docker.remove_network(dup)).await;
    }
    Ok(Some(keep))
}

/// `networkExists(name)`: by id or name. Docker 20.10 lets two networks
/// share a name, and then refuses to inspect it by name (400, ambiguous):
/// the name exists all the same.
pub async fn exists(docker: &Docker, name: &str) -> Result<bool> {
    match quick(docker.inspect_network(name, None::<InspectNetworkOptions>)).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) if status(&e) == Some(400) && !named(docker, name).await?.is_empty() => Ok(true),
        Err(e) => Err(Error::docker(DockerOp::InspectNetwork, None, e)),
    }
}

/// The create body of `createNetwork` (pure).
pub fn create_body(name: &str, opts: &CreateOptions) -> NetworkCreateRequest {
    let mut labels: HashMap<String, String> = opts.labels.iter().cloned().collect();
    labels.insert(MANAGED_LABEL.to_string(), "true".to_string());
    let ipam =
        (opts.subnet.is_some() || opts.gateway.is_some() || opts.ip_range.is_some()).then(|| {
            Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: opts.subnet.clone(),
                    gateway: opts.gateway.clone(),
                    ip_range: opts.ip_range.clone(),
                    ..Default::default()
                }]),
                ..Default::default()
            }
        });
    NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".into()),
        options: Some(icc_option(opts.icc_enabled)),
        labels: Some(labels),
        ipam,
        ..Default::default()
    }
}

/// `createNetwork(name, options)`: true once the network exists, created now
/// or already there (an error with `exclusive`).
pub async fn create(docker: &Docker, name: &str, opts: &CreateOptions) -> Result<bool> {
    let lock = host_lock().await?;
    let result = async {
        if !named(docker, name).await?.is_empty() {
            return if opts.exclusive {
                Err(Error::NetworkExists {
                    name: name.to_string(),
                })
            } else {
                Ok(true)
            };
        }
        match quick(docker.create_network(create_body(name, opts))).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) && !opts.exclusive => Ok(true),
            Err(e) if is_conflict(&e) => Err(Error::NetworkExists {
                name: name.to_string(),
            }),
            Err(e) => Err(Error::docker(DockerOp::CreateNetwork, None, e)),
        }
    }
    .await;
    let _ = FileExt::unlock(&lock);
    result
}

/// Containers attached to a network, or None when it does not exist.
async fn endpoints(docker: &Docker, name: &str) -> Result<Option<usize>> {
    match quick(docker.inspect_network(name, None::<InspectNetworkOptions>)).await {
        Ok(n) => Ok(Some(n.containers.map(|c| c.len()).unwrap_or(0))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(Error::docker(DockerOp::InspectNetwork, None, e)),
    }
}

/// True when any container, whatever its state, is connected to the
/// network. Both id and name are asked: a created container knows its
/// networks by name only until it starts.
async fn has_containers(docker: &Docker, id: &str, name: &str) -> Result<bool> {
    let list = quick(docker.list_containers(Some(ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "network".to_string(),
            vec![id.to_string(), name.to_string()],
        )])),
        ..Default::default()
    })))
    .await
    .map_err(|e| Error::docker(DockerOp::ListContainers, None, e))?;
    Ok(!list.is_empty())
}

/// Which containers a network may lose on its way out: given a container's
/// name and labels, true when it may be removed (an idle warm container).
pub type Removable<'a> = &'a (dyn Fn(&str, &HashMap<String, String>) -> bool + Sync);

/// Removes the containers attached to network `net` (id or name) when every
/// one of them is `removable`; true when none is left attached.
pub async fn drain_removable(docker: &Docker, net: &str, removable: Removable<'_>) -> Result<bool> {
    let list = quick(docker.list_containers(Some(ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "network".to_string(),
            vec![net.to_string()],
        )])),
        ..Default::default()
    })))
    .await
    .map_err(|e| Error::docker(DockerOp::ListContainers, None, e))?;
    let named: Vec<(String, HashMap<String, String>)> = list
        .into_iter()
        .map(|c| {
            let name = c
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            (name, c.labels.unwrap_or_default())
        })
        .collect();
    if named.is_empty() {
        return Ok(true);
    }
    if !named.iter().all(|(n, l)| removable(n, l)) {
        return Ok(false);
    }
    for (name, _) in named {
        let _ = super::container::remove_all(docker, &name).await;
    }
    Ok(true)
}

/// `deleteNetwork(name)`: absent is fine; a network with active endpoints
/// is `NETWORK_IN_USE`. Several networks sharing the name (Docker 20.10
/// allows it, and then refuses the name as ambiguous) are all removed.
pub async fn delete(docker: &Docker, name: &str) -> Result<()> {
    let same_name = named(docker, name).await?;
    if same_name.len() < 2 {
        return delete_one(docker, name, name).await;
    }
    for (_, id) in same_name {
        delete_one(docker, name, &id).await?;
    }
    Ok(())
}

/// Removes network `target` (an id or a name) for `deleteNetwork(name)`.
async fn delete_one(docker: &Docker, name: &str, target: &str) -> Result<()> {
    match quick(docker.remove_network(target)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => match endpoints(docker, target).await? {
            Some(n) if n > 0 => Err(Error::NetworkInUse {
                name: name.to_string(),
                source: e,
            }),
            None => Ok(()),
            Some(_) => Err(Error::docker(DockerOp::RemoveNetwork, None, e)),
        },
    }
}

/// `cleanupOrphanNetworks({ prefix, maxAgeMs })`: removes networks whose name
/// starts with `prefix`, older than `max_age_ms`, with no container
/// attached (running or not). Never the shared bridge, never a network
/// without the prefix.
/// `cleanupOrphanNetworks()`: networks of `prefix`, older than
/// `max_age_ms`, that no container uses. Containers that are `removable`
/// (idle warm containers) do not count as users: they go with it.
/// Returns the names removed.
pub async fn cleanup_orphans(
    docker: &Docker,
    prefix: &str,
    max_age_ms: u64,
    removable: Removable<'_>,
) -> Result<Vec<String>> {
    let list = quick(docker.list_networks(None::<ListNetworksOptions>))
        .await
        .map_err(|e| Error::docker(DockerOp::ListNetworks, None, e))?;
    let cutoff = now_ms().saturating_sub(max_age_ms.min(i64::MAX as u64) as i64);
    let mut removed = Vec::new();
    for n in list {
        let (Some(name), Some(id)) = (n.name, n.id) else {
            continue;
        };
        if name == ISOLATED_NETWORK || prefix.is_empty() || !name.starts_with(prefix) {
            continue;
        }
        let created = n
            .created
            .as_deref()
            .and_then(parse_iso_ms)
            .unwrap_or(i64::MAX);
        if created > cutoff {
            continue;
        }
        // Inspect by id: the list does not say which containers are attached.
        match endpoints(docker, &id).await? {
            Some(0) => {}
            Some(_) if drain_removable(docker, &id, removable).await? => {}
            _ => continue,
        }
        // A created or stopped container has no endpoint yet Docker would
        // let the network go, and the container could never start: a run
        // being set up (created, connected, not started) must keep it.
        if has_containers(docker, &id, &name).await? {
            continue;
        }
        if quick(docker.remove_network(&id)).await.is_ok() {
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_named_twice_is_joined_once_in_first_order() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            distinct(&names(&["a", "b", "a", "c", "b"])),
            names(&["a", "b", "c"])
        );
        assert_eq!(distinct(&names(&["a"])), names(&["a"]));
    }

    #[test]
    fn create_body_has_managed_label_icc_and_ipam() {
        let opts = CreateOptions {
            icc_enabled: false,
            labels: vec![("team".into(), "a".into())],
            subnet: Some("10.99.0.0/24".into()),
            gateway: Some("10.99.0.1".into()),
            ip_range: Some("10.99.0.128/25".into()),
            ..Default::default()
        };
        let b = create_body("light-runner-x", &opts);
        let labels = b.labels.unwrap();
        assert_eq!(labels.get(MANAGED_LABEL).map(String::as_str), Some("true"));
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(
            b.options.unwrap()["com.docker.network.bridge.enable_icc"],
            "false"
        );
        let cfg = &b.ipam.unwrap().config.unwrap()[0];
        assert_eq!(cfg.subnet.as_deref(), Some("10.99.0.0/24"));
        assert_eq!(cfg.gateway.as_deref(), Some("10.99.0.1"));
        assert_eq!(cfg.ip_range.as_deref(), Some("10.99.0.128/25"));
        let plain = create_body("n", &CreateOptions::default());
        assert!(plain.ipam.is_none());
    }
}
