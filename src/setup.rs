//! The one setup path of a run, attached or detached: from a checked request
//! to a created, seeded container that is ready to start.
//!
//! Order: networks (a missing one fails before anything exists) → image
//! (the build of `run` steps) → volume → container (pulling a missing image)
//! → extra networks → seed. Whatever was created is the caller's to remove,
//! on every path.

use std::path::Path;

use bollard::Docker;
use tokio_util::sync::CancellationToken;

use crate::config::{RunRequest, RunnerConfig};
use crate::container::create_body;
use crate::errors::{is_not_found, Error, Result};
use crate::image::{self, BuildLog};
use crate::network::{self, NetworkPlan};
use crate::resources;
use crate::seed;

/// Checks that need no daemon: a runner option the original reports per
/// run, and the seed directory. Nothing is created before they pass.
pub fn precheck(cfg: &RunnerConfig, req: &RunRequest) -> Result<()> {
    if let Some(bad) = &cfg.invalid {
        return Err(Error::InvalidOption(bad.clone()));
    }
    if let Some(dir) = &req.dir {
        seed::check_dir(dir)?;
    }
    Ok(())
}

/// A run's phases, reported as they complete (for tracing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Created,
    Seeded,
    Started,
    Exited,
    Extracted,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Created => "created",
            Phase::Seeded => "seeded",
            Phase::Started => "started",
            Phase::Exited => "exited",
            Phase::Extracted => "extracted",
        }
    }
}

/// What setup produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The image the container runs (the build of `run` steps, if any).
    pub image: String,
}

/// Everything setup needs besides the request.
pub struct Context<'a> {
    pub docker: &'a Docker,
    pub cfg: &'a RunnerConfig,
    pub id: &'a str,
    /// Fired by `cancel()`: seeding stops (the run will not start).
    pub cancel: &'a CancellationToken,
    pub build_log: Option<BuildLog>,
    /// Where the use of cache images is recorded.
    pub cache_uses: &'a Path,
}

/// Sets run `ctx.id` up. `on_phase` hears `Created` and `Seeded`.
pub async fn set_up(
    ctx: &Context<'_>,
    req: &RunRequest,
    on_phase: &(dyn Fn(Phase) + Send + Sync),
) -> Result<Ready> {
    let docker = ctx.docker;
    let mut plan = network::plan(docker, &req.networks).await?;
    let prepared = image::prepare(
        docker,
        &req.image,
        &req.run,
        ctx.build_log.clone(),
        ctx.cache_uses,
    )
    .await?;
    resources::create_volume(docker, ctx.id, req.detached).await?;
    create_container(ctx, req, &prepared.image, &mut plan).await?;
    network::connect_all(docker, &plan, ctx.id).await?;
    on_phase(Phase::Created);
    if let Some(dir) = &req.dir {
        if !ctx.cancel.is_cancelled() {
            seed::upload(docker, ctx.id, dir, &req.workdir, &req.ignore, ctx.cancel).await?;
            on_phase(Phase::Seeded);
        }
    }
    Ok(Ready {
        image: prepared.image,
    })
}

/// Creates the container. A 404 means the image or the network is missing:
/// a missing image is pulled, a shared bridge removed behind our back is
/// created again, and the create is tried once more.
async fn create_container(
    ctx: &Context<'_>,
    req: &RunRequest,
    image: &str,
    plan: &mut NetworkPlan,
) -> Result<()> {
    let docker = ctx.docker;
    let mut pulled = false;
    let mut renewed = false;
    loop {
        let body = create_body(ctx.id, ctx.cfg, req, image, &plan.mode);
        let err = match resources::create_container(docker, ctx.id, body).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !is_not_found(&err) {
            return Err(Error::docker("createContainer", Some(ctx.id), err));
        }
        if !pulled && !image::is_local(docker, image).await? {
            image::pull(docker, image, Some(ctx.id)).await?;
            pulled = true;
        } else if plan.isolated && !renewed {
            network::forget_isolated().await;
            plan.mode = network::ensure_isolated(docker).await?;
            renewed = true;
        } else if let Some(name) = missing_network(docker, plan).await? {
            return Err(Error::NetworkNotFound { name });
        } else {
            return Err(Error::docker("createContainer", Some(ctx.id), err));
        }
    }
}

/// A named network of the plan that does not exist (any more).
async fn missing_network(docker: &Docker, plan: &NetworkPlan) -> Result<Option<String>> {
    if plan.isolated || plan.mode == crate::config::NO_NETWORK {
        return Ok(None);
    }
    for name in std::iter::once(&plan.mode).chain(&plan.connect) {
        if !network::exists(docker, name).await? {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}
