//! The one setup path of a run, attached or detached: from a checked
//! request to a created, seeded container that is ready to start.
//!
//! Order: networks (a missing one fails before anything exists) → image
//! (the build of `run` steps) → volume → container (pulling a missing image)
//! → extra networks → seed. Whatever was created is the caller's to remove,
//! on every path.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::client::within;
use super::image::{self, BuildLog};
use super::network::{self, NetworkPlan};
use super::spec::{create_body, twin_body, twin_name};
use super::{container, seed, Daemon};
use crate::backend::SetupStep;
use crate::config::{Hardening, RunRequest, RunnerConfig, NO_NETWORK};
use crate::errors::{is_not_found, DockerOp, Error, InvalidInput, Result};

/// What setup produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The image the container runs (the build of `run` steps, if any).
    pub image: String,
}

/// Everything setup needs besides the request.
pub struct Setup<'a> {
    pub daemon: &'a Daemon,
    pub cfg: &'a RunnerConfig,
    /// What the run's container gets, its profile decided.
    pub hardening: &'a Hardening,
    /// The bound on creates (`LIGHT_RUNNER_START_TIMEOUT_MS`).
    pub create_timeout: Duration,
    pub id: &'a str,
    /// Fired by `cancel()`: seeding stops (the run will not start).
    pub cancel: &'a CancellationToken,
    pub build_log: Option<BuildLog>,
    /// Where the use of cache images is recorded.
    pub cache_uses: &'a Path,
}

/// Sets run `s.id` up. `reached` hears `Created` and `Seeded`. Cancelled
/// while its image is built, it returns at once with nothing created.
pub async fn set_up(
    s: &Setup<'_>,
    req: &RunRequest,
    reached: &(dyn Fn(SetupStep) + Send + Sync),
) -> Result<Ready> {
    let docker = &s.daemon.docker;
    let h = s.hardening;
    if let Some(name) = &s.cfg.runtime {
        check_runtime(s, name).await?;
    }
    let mut plan = network::plan(s.daemon, &networks(h, req)).await?;
    let prepare = image::prepare(
        s.daemon,
        &req.image,
        &req.run,
        s.build_log.clone(),
        s.cache_uses,
    );
    // A build may take minutes: a cancel stops waiting for it (a build this
    // run drives is abandoned; the daemon stops it) and nothing is created.
    let prepared = tokio::select! {
        p = prepare => p?,
        _ = s.cancel.cancelled() => return Ok(Ready { image: req.image.clone() }),
    };
    container::create_volume(docker, s.id, req.detached).await?;
    create_container(s, &prepared.image, &mut plan, &|mode| {
        create_body(s.id, s.cfg, h, req, &prepared.image, mode)
    })
    .await?;
    network::connect_all(docker, &plan, s.id).await?;
    reached(SetupStep::Created);
    // A job that runs as another user than root needs the volume root
    // writable, `dir` or not.
    if (req.dir.is_some() || h.non_root()) && !s.cancel.is_cancelled() {
        seed(s, req, &prepared.image).await?;
        if req.dir.is_some() {
            reached(SetupStep::Seeded);
        }
    }
    Ok(Ready {
        image: prepared.image,
    })
}

/// The networks of a run: restricted, none unless the request names one.
fn networks(h: &Hardening, req: &RunRequest) -> Vec<String> {
    match req.networks.is_empty() && h.network_by_request_only {
        true => vec![NO_NETWORK.to_string()],
        false => req.networks.clone(),
    }
}

/// Refuses a runtime the daemon did not register, naming those it did.
async fn check_runtime(s: &Setup<'_>, name: &str) -> Result<()> {
    let info = within(s.create_timeout, s.daemon.docker.info())
        .await
        .map_err(|e| Error::docker(DockerOp::Info, None, e))?;
    let mut known: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
    if known.iter().any(|k| k == name) {
        return Ok(());
    }
    known.sort();
    Err(Error::InvalidOption(InvalidInput::new(
        "runtime",
        format!(
            "Invalid runtime: {name:?} is not registered with the Docker daemon at {} (it knows: {})",
            s.daemon.endpoint.host,
            known.join(", ")
        ),
    )))
}

/// Uploads the seed into the run's container, or, under a read-only root
/// filesystem, into its seed twin, removed right after (the watchdog and
/// the reclaimers remove it too if this process dies first: it carries
/// the run's label, and every removal of a run takes its twin).
async fn seed(s: &Setup<'_>, req: &RunRequest, image: &str) -> Result<()> {
    let docker = &s.daemon.docker;
    let upload = |target: String| async move {
        let dir = req.dir.as_deref();
        seed::upload(
            docker,
            &target,
            s.id,
            dir,
            &req.workdir,
            &req.ignore,
            s.cancel,
        )
        .await
    };
    if !s.hardening.read_only_rootfs {
        return upload(s.id.to_string()).await;
    }
    let body = twin_body(s.id, req, image);
    container::create_twin(docker, s.id, body, s.create_timeout).await?;
    let seeded = upload(twin_name(s.id)).await;
    let removed = container::remove_twin(docker, s.id).await;
    seeded.and(removed)
}

/// Creates the container. A 404 means the image or the network is missing:
/// a missing image is pulled, a shared bridge removed behind our back is
/// created again, and the create is tried once more.
async fn create_container(
    s: &Setup<'_>,
    image: &str,
    plan: &mut NetworkPlan,
    body_for: &(dyn Fn(&str) -> bollard::models::ContainerCreateBody + Send + Sync),
) -> Result<()> {
    let docker = &s.daemon.docker;
    let mut pulled = false;
    let mut renewed = false;
    loop {
        let body = body_for(&plan.mode);
        let err = match container::create_container(docker, s.id, body, s.create_timeout).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !is_not_found(&err) {
            return Err(Error::docker(DockerOp::CreateContainer, Some(s.id), err));
        }
        if !pulled && !image::is_local(docker, image).await? {
            image::pull(docker, image, Some(s.id)).await?;
            pulled = true;
        } else if plan.isolated && !renewed {
            network::forget_isolated(s.daemon).await;
            plan.mode = network::ensure_isolated(s.daemon).await?;
            renewed = true;
        } else if let Some(name) = missing_network(s.daemon, plan).await? {
            return Err(Error::NetworkNotFound { name });
        } else {
            return Err(Error::docker(DockerOp::CreateContainer, Some(s.id), err));
        }
    }
}

/// Creates and starts a warm container for `shape` (image, `run` steps,
/// networks, workdir): the run's own setup without a job, then the start of
/// its idle process (see `warm`). `token` ends the job it will be sent;
/// `owner` names this process. What was created is the caller's to remove.
pub async fn set_up_warm(
    s: &Setup<'_>,
    shape: &RunRequest,
    token: &str,
    owner: &str,
) -> Result<()> {
    let docker = &s.daemon.docker;
    let h = s.hardening;
    if let Some(name) = &s.cfg.runtime {
        check_runtime(s, name).await?;
    }
    let mut plan = network::plan(s.daemon, &networks(h, shape)).await?;
    let prepared = image::prepare(s.daemon, &shape.image, &shape.run, None, s.cache_uses).await?;
    container::create_volume(docker, s.id, false).await?;
    create_container(s, &prepared.image, &mut plan, &|mode| {
        super::warm::warm_body(s.id, s.cfg, h, shape, &prepared.image, mode, token, owner)
    })
    .await?;
    network::connect_all(docker, &plan, s.id).await?;
    // A job that runs as another user than root finds the volume root
    // writable, as a cold run's.
    if h.non_root() {
        seed(s, shape, &prepared.image).await?;
    }
    container::start(docker, s.id, s.create_timeout).await
}

/// Seeds `req.dir` into a warm container taken by a run (running already:
/// under a read-only root filesystem, through its seed twin).
pub async fn seed_warm(s: &Setup<'_>, req: &RunRequest) -> Result<()> {
    if req.dir.is_none() {
        return Ok(());
    }
    let image = match req.run.is_empty() {
        true => req.image.clone(),
        false => image::cache_tag(&req.image, &req.run),
    };
    seed(s, req, &image).await
}

/// A named network of the plan that does not exist (any more).
async fn missing_network(daemon: &Daemon, plan: &NetworkPlan) -> Result<Option<String>> {
    if plan.isolated || plan.mode == NO_NETWORK {
        return Ok(None);
    }
    for name in std::iter::once(&plan.mode).chain(&plan.connect) {
        if !network::exists(&daemon.docker, name).await? {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}
