//! Docker through the Engine API (bollard): the client, a run's container
//! and volume, the create body, images, networks, seeding and extraction,
//! the daemon's log and its events.

pub mod client;
pub mod container;
pub mod endpoint;
pub mod events;
pub mod extract;
pub mod image;
pub mod labels;
pub mod logs;
pub mod network;
pub mod seed;
pub mod setup;
pub mod spec;
pub mod ssh;
pub mod tls;
pub mod warm;

pub use client::quick;

use std::sync::Arc;

use crate::errors::{DockerOp, Error, Result};
pub use client::Endpoint;

/// What `light-runner doctor` says about a daemon (`/version` and `/info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonInfo {
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub kernel_version: Option<String>,
    pub name: Option<String>,
    /// The runtimes the daemon registered (sorted), and its default.
    pub runtimes: Vec<String>,
    pub default_runtime: Option<String>,
    pub live_restore: Option<bool>,
    pub storage_driver: Option<String>,
    pub root_dir: Option<String>,
}

/// A Docker daemon as this process talks to it: a client for its endpoint,
/// and what is worth remembering about it between runs (the id of its
/// shared bridge, the builds under way). One per endpoint per [`Host`]
/// (`crate::engine::ctx::Host`); cheap to clone.
#[derive(Clone)]
pub struct Daemon {
    pub docker: bollard::Docker,
    pub endpoint: Endpoint,
    /// The ssh connections of an `ssh://` endpoint.
    ssh: Option<Arc<ssh::Pool>>,
    /// The id of the shared bridge found or created here (checked before
    /// each use).
    pub(crate) isolated: Arc<tokio::sync::Mutex<Option<String>>>,
    pub(crate) builds: Arc<image::BuildLocks>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Daemon {
    /// A client for `endpoint` (no request is made yet).
    pub fn connect(endpoint: &Endpoint) -> Result<Self> {
        let (docker, ssh) = client::connect_with_pool(endpoint)?;
        Ok(Daemon {
            docker,
            endpoint: endpoint.clone(),
            ssh,
            isolated: Arc::default(),
            builds: Arc::default(),
        })
    }

    /// The daemon's version and registered runtimes, once it answered a ping.
    pub async fn describe(&self) -> Result<DaemonInfo> {
        self.ping().await?;
        let v = quick(self.docker.version())
            .await
            .map_err(|e| Error::docker(DockerOp::Info, None, e))?;
        let i = quick(self.docker.info())
            .await
            .map_err(|e| Error::docker(DockerOp::Info, None, e))?;
        let mut runtimes: Vec<String> = i.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        Ok(DaemonInfo {
            version: v.version,
            api_version: v.api_version,
            os: v.os,
            arch: v.arch,
            kernel_version: v.kernel_version,
            name: i.name,
            runtimes,
            default_runtime: i.default_runtime,
            live_restore: i.live_restore_enabled,
            storage_driver: i.driver,
            root_dir: i.docker_root_dir,
        })
    }

    /// Pings the daemon (5 s deadline).
    pub async fn ping(&self) -> Result<()> {
        match &self.ssh {
            Some(pool) => client::ping_ssh(pool, &self.endpoint, client::PING_DEADLINE).await,
            None => client::ping(&self.docker, &self.endpoint, client::PING_DEADLINE).await,
        }
    }
}

mod backend;
