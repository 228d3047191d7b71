//! The context a run is driven in, passed in rather than found in globals.
//!
//! - [`Host`]: what one process shares among all its runs: who it is, the
//!   runs it drives (so every handle on one id shares one driver, and
//!   maintenance never reaps a run this process is setting up or watching),
//!   and one [`Daemon`] per endpoint (a client and what is cached about that
//!   daemon). The binding makes one per process (tests make several).
//! - [`Limits`]: the timings of the lifecycle and the reclaimers: constants
//!   and the environment's settings in production, short ones in tests.
//! - [`Ctx`]: a host, the daemon endpoint, the state store, the clock and
//!   the limits, as they were when a call was made (the environment is read
//!   at call time, by `config::env`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::backend::docker::endpoint::{self, ResolveError};
use crate::backend::docker::{Daemon, Endpoint};
pub use crate::config::Limits;
use crate::config::Settings;
use crate::errors::Result;
use crate::record::HostIdentity;
use crate::store::Store;
use crate::time::{Clock, SystemClock};

use super::execution::Execution;

/// The warm containers a runner keeps, as the rest of the process sees
/// them (the pools live with their runners).
pub trait WarmKeeper: Send + Sync {
    /// True when container `id` is one of its ready (idle) containers.
    fn is_idle(&self, id: &str) -> bool;
    /// Removes its ready containers on network `name`; resolves once gone.
    fn drain_network(&self, name: &str) -> futures_util::future::BoxFuture<'static, ()>;
}

/// What one process shares among its runs.
pub struct Host {
    /// This process, as state files name it.
    pub identity: HostIdentity,
    runs: Mutex<HashMap<String, Execution>>,
    daemons: Mutex<HashMap<Endpoint, Daemon>>,
    warm: Mutex<Vec<std::sync::Weak<dyn WarmKeeper>>>,
}

impl Default for Host {
    fn default() -> Self {
        Host::new(HostIdentity::current())
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("identity", &self.identity)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Host {
    pub fn new(identity: HostIdentity) -> Self {
        Host {
            identity,
            runs: Mutex::default(),
            daemons: Mutex::default(),
            warm: Mutex::default(),
        }
    }

    /// The run `id` this process drives, if it does.
    pub fn run(&self, id: &str) -> Option<Execution> {
        lock(&self.runs).get(id).cloned()
    }

    pub fn add_run(&self, exec: &Execution) {
        lock(&self.runs).insert(exec.id().to_string(), exec.clone());
    }

    pub fn remove_run(&self, id: &str) {
        lock(&self.runs).remove(id);
    }

    /// Ids this process is setting up or watching.
    pub fn run_ids(&self) -> Vec<String> {
        lock(&self.runs).keys().cloned().collect()
    }

    /// A runner's warm containers, so maintenance and the network functions
    /// know them (kept weakly: the pool goes with its runner).
    pub fn keep_warm(&self, keeper: std::sync::Weak<dyn WarmKeeper>) {
        let mut g = lock(&self.warm);
        g.retain(|k| k.strong_count() > 0);
        if !g.iter().any(|k| std::sync::Weak::ptr_eq(k, &keeper)) {
            g.push(keeper);
        }
    }

    fn keepers(&self) -> Vec<Arc<dyn WarmKeeper>> {
        lock(&self.warm)
            .iter()
            .filter_map(|k| k.upgrade())
            .collect()
    }

    /// True when container `id` is a ready warm container of this process.
    pub fn is_idle_warm(&self, id: &str) -> bool {
        self.keepers().iter().any(|k| k.is_idle(id))
    }

    /// Removes this process's ready warm containers on network `name`.
    pub async fn drain_warm_network(&self, name: &str) {
        let jobs: Vec<_> = self
            .keepers()
            .iter()
            .map(|k| k.drain_network(name))
            .collect();
        futures_util::future::join_all(jobs).await;
    }

    /// The daemon at `endpoint`, connected once and then shared.
    pub fn daemon(&self, endpoint: &Endpoint) -> Result<Daemon> {
        let mut daemons = lock(&self.daemons);
        if let Some(d) = daemons.get(endpoint) {
            return Ok(d.clone());
        }
        let d = Daemon::connect(endpoint)?;
        daemons.insert(endpoint.clone(), d.clone());
        Ok(d)
    }
}

/// Everything a call works with.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub host: Arc<Host>,
    /// The daemon's endpoint and how it was found (`endpoint::resolve`),
    /// or why the environment names none that can be used.
    pub endpoint: std::result::Result<Endpoint, ResolveError>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
}

impl Ctx {
    /// A context from settings read now.
    pub fn new(host: Arc<Host>, s: &Settings) -> Self {
        Ctx {
            host,
            endpoint: endpoint::resolve_here(&s.docker),
            store: Store::new(&s.state_dir),
            clock: Arc::new(SystemClock),
            limits: Limits::new(s),
        }
    }

    /// A context from the process environment, now.
    pub fn from_env(host: Arc<Host>) -> Self {
        Ctx::new(host, &Settings::from_env())
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The daemon of this context (no request made).
    pub fn daemon(&self) -> Result<Daemon> {
        match &self.endpoint {
            Ok(ep) => self.host.daemon(ep),
            Err(e) => Err(e.clone().into()),
        }
    }

    /// The daemon of this context, once it answered a ping.
    pub async fn connected(&self) -> Result<Daemon> {
        let d = self.daemon()?;
        d.ping().await?;
        Ok(d)
    }
}
