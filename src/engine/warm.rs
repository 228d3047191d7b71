//! Warm containers: ready containers kept per run shape, so a run's create
//! and start are paid before it is asked for (`RunnerOptions.warm`).
//!
//! A shape is what Docker fixes at create: the image after `run` steps,
//! the networks, the workdir (and the runner's options, the pool's own).
//! A shape that has run is kept at `warm` ready containers while it is used;
//! a shape idle for [`SHAPE_IDLE`], or past [`MAX_SHAPES`] shapes (the
//! least recently used first), is let go. A run takes one ready container
//! (never waiting: none ready means the cold path at once), which serves it
//! alone and is removed after it; refilling runs in the background, a few
//! creations at a time. An idle pool makes no daemon request: its only
//! timer is local. Every warm container is labelled, owned by this process
//! (its watchdog removes them if the process dies) and guarded until it is
//! removed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::ctx::{Ctx, Host, WarmKeeper};
use crate::backend::docker::image::cache_tag;
use crate::backend::docker::labels::WARM_LABEL;
use crate::backend::{Backend, SetupRequest};
use crate::config::security::Profile;
use crate::config::{Hardening, RunRequest, RunnerConfig};
use crate::errors::{Error, Result};
use crate::id::new_run_id;
use crate::watchdog;

/// Shapes kept at most (the least recently used is let go past this).
pub const MAX_SHAPES: usize = 8;
/// A shape unused this long is let go.
pub const SHAPE_IDLE: Duration = Duration::from_secs(10 * 60);
/// Warm containers created at once, per pool.
const FILL_AT_ONCE: usize = 2;

/// What Docker fixes at create for a run, besides the runner's options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShapeKey {
    endpoint: String,
    /// The image the container runs: the request's, or the build of its
    /// `run` steps.
    image: String,
    networks: Vec<String>,
    workdir: String,
    /// The security profile in force (the runner's options are the pool's).
    profile: Profile,
}

/// A ready container, taken by one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warm {
    /// Its container and volume name: the run's id.
    pub id: String,
    /// The line that ends the job it is sent.
    pub token: String,
}

struct Shape {
    key: ShapeKey,
    /// The shape fields of the request it came from.
    req: RunRequest,
    /// What its containers get, its profile decided.
    hardening: Hardening,
    ready: VecDeque<Warm>,
    creating: usize,
    target: usize,
    last_used: i64,
    /// The last creation's failure (for `prewarm`).
    failed: Option<String>,
}

struct Inner {
    /// Least recently used first.
    shapes: Vec<Shape>,
    closed: bool,
    /// The context of the last call (the daemon to refill and remove on).
    ctx: Option<Ctx>,
    timer: bool,
}

/// The warm containers of one runner.
pub struct Pool {
    cfg: Arc<RunnerConfig>,
    target: usize,
    inner: Mutex<Inner>,
    fills: Semaphore,
    /// Creations and removals under way (`close` waits for them).
    pending: AtomicUsize,
    changed: Notify,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// True when the warm path can serve `req` exactly: a shell command (the
/// job is sent to the idle `sh`), attached (a detached run outlives its
/// host; warm containers die with it).
pub fn can_serve(req: &RunRequest) -> bool {
    req.command.is_some() && !req.detached
}

impl Pool {
    pub fn new(cfg: Arc<RunnerConfig>, target: usize) -> Arc<Self> {
        Arc::new(Pool {
            cfg,
            target,
            inner: Mutex::new(Inner {
                shapes: Vec::new(),
                closed: false,
                ctx: None,
                timer: false,
            }),
            fills: Semaphore::new(FILL_AT_ONCE),
            pending: AtomicUsize::new(0),
            changed: Notify::new(),
        })
    }

    fn key(&self, ctx: &Ctx, req: &RunRequest) -> Option<(ShapeKey, Hardening)> {
        // A profile in error is the cold path's to report.
        let hardening = super::setup::hardening(ctx, &self.cfg).ok()?;
        let endpoint = ctx.endpoint.as_ref().ok()?.host.clone();
        let image = if req.run.is_empty() {
            req.image.clone()
        } else {
            cache_tag(&req.image, &req.run)
        };
        let key = ShapeKey {
            endpoint,
            image,
            networks: req.networks.clone(),
            workdir: req.workdir.clone(),
            profile: hardening.profile,
        };
        Some((key, hardening))
    }

    /// The shape fields of `req`.
    fn shape_req(req: &RunRequest) -> RunRequest {
        let mut s = RunRequest::new(&req.image);
        s.run = req.run.clone();
        s.networks = req.networks.clone();
        s.workdir = req.workdir.clone();
        s
    }

    /// Takes a ready container of `req`'s shape, if there is one (never
    /// waits). The shape is kept warm from now on, and what was taken is
    /// replaced in the background.
    pub fn take(self: &Arc<Self>, ctx: &Ctx, req: &RunRequest) -> Option<Warm> {
        if self.target == 0 || !can_serve(req) {
            return None;
        }
        let (key, hardening) = self.key(ctx, req)?;
        let now = ctx.now_ms();
        let taken = {
            let mut g = lock(&self.inner);
            if g.closed {
                return None;
            }
            g.ctx = Some(ctx.clone());
            let me: Arc<dyn WarmKeeper> = self.clone();
            ctx.host.keep_warm(Arc::downgrade(&me));
            if !g.shapes.iter().any(|s| s.key == key) {
                g.shapes.push(Shape {
                    key: key.clone(),
                    req: Self::shape_req(req),
                    hardening,
                    ready: VecDeque::new(),
                    creating: 0,
                    target: self.target,
                    last_used: now,
                    failed: None,
                });
            }
            touch(&mut g.shapes, &key, now).and_then(|s| s.ready.pop_front())
        };
        self.evict_and_refill(ctx.clone(), key);
        taken
    }

    /// Makes sure `count` containers of `req`'s shape are ready; resolves
    /// once they are (or with the error a creation met).
    pub async fn prewarm(self: &Arc<Self>, ctx: Ctx, req: &RunRequest, count: usize) -> Result<()> {
        let (key, hardening) = match self.key(&ctx, req) {
            Some(k) => k,
            None => {
                return Err(match &ctx.endpoint {
                    Err(e) => Error::from(e.clone()),
                    Ok(_) => match super::setup::hardening(&ctx, &self.cfg) {
                        Err(e) => e,
                        Ok(_) => Error::Internal("no endpoint".into()),
                    },
                })
            }
        };
        {
            let mut g = lock(&self.inner);
            if g.closed {
                return Err(Error::Internal("the runner is closed".into()));
            }
            g.ctx = Some(ctx.clone());
            let me: Arc<dyn WarmKeeper> = self.clone();
            ctx.host.keep_warm(Arc::downgrade(&me));
            let now = ctx.now_ms();
            match touch(&mut g.shapes, &key, now) {
                Some(s) => {
                    s.target = s.target.max(count);
                    s.failed = None;
                }
                None => g.shapes.push(Shape {
                    key: key.clone(),
                    req: Self::shape_req(req),
                    hardening,
                    ready: VecDeque::new(),
                    creating: 0,
                    target: self.target.max(count),
                    last_used: now,
                    failed: None,
                }),
            }
        }
        self.evict_and_refill(ctx, key.clone());
        loop {
            let changed = self.changed.notified();
            {
                let mut g = lock(&self.inner);
                let Some(s) = g.shapes.iter_mut().find(|s| s.key == key) else {
                    return Err(Error::Internal("the shape was let go".into()));
                };
                if s.ready.len() >= count {
                    return Ok(());
                }
                if let Some(why) = s.failed.take() {
                    return Err(Error::Internal(format!(
                        "a warm container could not be made: {why}"
                    )));
                }
            }
            changed.await;
        }
    }

    /// Lets go of shapes past [`MAX_SHAPES`], then refills `key`.
    fn evict_and_refill(self: &Arc<Self>, ctx: Ctx, key: ShapeKey) {
        let evicted = over_limit(&mut lock(&self.inner).shapes);
        for w in evicted {
            self.let_go(ctx.clone(), w);
        }
        self.refill(ctx, key);
        self.start_timer();
    }

    /// Starts creations until the shape has its target (ready + under way).
    fn refill(self: &Arc<Self>, ctx: Ctx, key: ShapeKey) {
        loop {
            let shape_req = {
                let mut g = lock(&self.inner);
                if g.closed {
                    return;
                }
                let Some(s) = g.shapes.iter_mut().find(|s| s.key == key) else {
                    return;
                };
                if s.ready.len() + s.creating >= s.target {
                    return;
                }
                s.creating += 1;
                (s.req.clone(), s.hardening.clone())
            };
            self.pending.fetch_add(1, Ordering::SeqCst);
            let (pool, ctx, key) = (self.clone(), ctx.clone(), key.clone());
            crate::rt::spawn(async move {
                let made = match pool.fills.acquire().await {
                    Ok(_permit) => create(&ctx, &pool.cfg, &shape_req.0, &shape_req.1).await,
                    Err(_) => Err(Error::Internal("closed".into())),
                };
                pool.created(ctx, key, made);
                pool.pending.fetch_sub(1, Ordering::SeqCst);
                pool.changed.notify_waiters();
            });
        }
    }

    /// A creation ended: the container joins its shape, or goes (the shape
    /// or the pool is gone meanwhile).
    fn created(self: &Arc<Self>, ctx: Ctx, key: ShapeKey, made: Result<Warm>) {
        let orphan = {
            let mut g = lock(&self.inner);
            let closed = g.closed;
            match g.shapes.iter_mut().find(|s| s.key == key) {
                Some(s) => {
                    s.creating -= 1;
                    match made {
                        Ok(w) if !closed => {
                            s.ready.push_back(w);
                            None
                        }
                        Ok(w) => Some(w),
                        Err(e) => {
                            s.failed = Some(e.to_string());
                            None
                        }
                    }
                }
                None => made.ok(),
            }
        };
        if let Some(w) = orphan {
            self.let_go(ctx, w);
        }
    }

    /// Removes a warm container nobody took, counted until it is gone.
    fn let_go(self: &Arc<Self>, ctx: Ctx, w: Warm) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let pool = self.clone();
        crate::rt::spawn(async move {
            if let Ok(d) = ctx.daemon() {
                let id = w.id.clone();
                d.remove_eventually(&w.id, move || watchdog::release(&id))
                    .await;
            }
            pool.pending.fetch_sub(1, Ordering::SeqCst);
            pool.changed.notify_waiters();
        });
    }

    /// The local timer that lets idle shapes go (no daemon request).
    fn start_timer(self: &Arc<Self>) {
        {
            let mut g = lock(&self.inner);
            if g.timer || g.shapes.is_empty() {
                return;
            }
            g.timer = true;
        }
        let pool = Arc::downgrade(self);
        crate::rt::spawn(async move {
            loop {
                let Some(p) = pool.upgrade() else { return };
                let (expired, next, ctx) = {
                    let mut g = lock(&p.inner);
                    let Some(ctx) = g.ctx.clone() else {
                        g.timer = false;
                        return;
                    };
                    let (expired, next) = expire(&mut g.shapes, ctx.now_ms());
                    if next.is_none() {
                        g.timer = false;
                    }
                    (expired, next, ctx)
                };
                for w in expired {
                    p.let_go(ctx.clone(), w);
                }
                let Some(wait) = next else { return };
                drop(p);
                tokio::time::sleep(Duration::from_millis(wait.max(1000) as u64)).await;
            }
        });
    }

    /// `runner.close()`: no more warm containers; the ready ones are
    /// removed, and so is anything being created; resolves once all are
    /// gone.
    pub async fn close(self: &Arc<Self>) {
        let (gone, ctx) = {
            let mut g = lock(&self.inner);
            g.closed = true;
            let gone: Vec<Warm> = g
                .shapes
                .iter_mut()
                .flat_map(|s| s.ready.drain(..))
                .collect();
            (gone, g.ctx.clone())
        };
        if let Some(ctx) = ctx {
            for w in gone {
                self.let_go(ctx.clone(), w);
            }
        }
        loop {
            let changed = self.changed.notified();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Ready containers, by shape (for tests and bench).
    pub fn ready(&self) -> usize {
        lock(&self.inner).shapes.iter().map(|s| s.ready.len()).sum()
    }
}

impl WarmKeeper for Pool {
    fn is_idle(&self, id: &str) -> bool {
        lock(&self.inner)
            .shapes
            .iter()
            .any(|s| s.ready.iter().any(|w| w.id == id))
    }

    /// The shapes on network `name` are let go (their ready containers
    /// removed now), so the network can be deleted.
    fn drain_network(&self, name: &str) -> futures_util::future::BoxFuture<'static, ()> {
        let (gone, ctx) = {
            let mut g = lock(&self.inner);
            let on = |s: &Shape| s.key.networks.iter().any(|n| n == name);
            let gone: Vec<Warm> = g
                .shapes
                .iter_mut()
                .filter(|s| on(s))
                .flat_map(|s| s.ready.drain(..))
                .collect();
            g.shapes.retain(|s| !on(s));
            (gone, g.ctx.clone())
        };
        Box::pin(async move {
            let Some(d) = ctx.and_then(|c| c.daemon().ok()) else {
                return;
            };
            for w in gone {
                let _ = d.remove(&w.id).await;
                watchdog::release(&w.id);
            }
        })
    }
}

// The shapes' order and idle rule, on the clock passed in (milliseconds):
// kept least recently used first.

/// Marks shape `key` used at `now`: it becomes the most recently used.
fn touch<'a>(shapes: &'a mut Vec<Shape>, key: &ShapeKey, now: i64) -> Option<&'a mut Shape> {
    let at = shapes.iter().position(|s| &s.key == key)?;
    let mut shape = shapes.remove(at);
    shape.last_used = now;
    shapes.push(shape);
    shapes.last_mut()
}

/// Lets go of the least recently used shapes past [`MAX_SHAPES`]: their
/// ready containers, to remove.
fn over_limit(shapes: &mut Vec<Shape>) -> Vec<Warm> {
    let past = shapes.len().saturating_sub(MAX_SHAPES);
    shapes.drain(..past).flat_map(|s| s.ready).collect()
}

/// Lets go of the shapes unused for [`SHAPE_IDLE`] at `now`: their ready
/// containers, to remove, and in how many ms the next shape would go.
fn expire(shapes: &mut Vec<Shape>, now: i64) -> (Vec<Warm>, Option<i64>) {
    let idle = SHAPE_IDLE.as_millis() as i64;
    let mut expired = Vec::new();
    shapes.retain_mut(|s| {
        let keep = now - s.last_used < idle;
        if !keep {
            expired.extend(s.ready.drain(..));
        }
        keep
    });
    let next = shapes.iter().map(|s| s.last_used + idle - now).min();
    (expired, next)
}

/// True when container `name` (with `labels`) is a warm container nobody
/// runs in: a ready one of this process, or any of a dead owner on this
/// machine.
pub fn is_idle_warm(
    host: &Host,
    name: &str,
    labels: &std::collections::HashMap<String, String>,
) -> bool {
    let Some(owner) = labels.get(WARM_LABEL) else {
        return false;
    };
    if host.is_idle_warm(name) {
        return true;
    }
    owner_is_dead(owner)
}

/// True when a warm container's owner (`hostname:pid`) is a process of
/// this machine that no longer runs.
pub fn owner_is_dead(owner: &str) -> bool {
    let Some((hostname, pid)) = owner.rsplit_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    hostname == crate::record::hostname() && !crate::record::pid_alive(pid)
}

/// Creates and starts one warm container of `shape`, guarded by the
/// watchdog from before its first resource exists.
async fn create(
    ctx: &Ctx,
    cfg: &RunnerConfig,
    shape: &RunRequest,
    hardening: &Hardening,
) -> Result<Warm> {
    let daemon = ctx.daemon()?;
    let id = new_run_id();
    let token = format!("lr-job-{:032x}", rand::random::<u128>());
    let me = &ctx.host.identity;
    let owner = format!("{}:{}", me.hostname, me.pid);
    watchdog::guard(&id, &daemon.endpoint);
    let uses = ctx.store.cache_uses();
    let never = CancellationToken::new();
    let setup = SetupRequest {
        id: &id,
        cfg,
        hardening,
        create_timeout: ctx.limits.start_timeout,
        req: shape,
        cancel: &never,
        build_log: None,
        cache_uses: &uses,
    };
    match daemon.create_warm(setup, &token, &owner).await {
        Ok(()) => Ok(Warm { id, token }),
        Err(e) => {
            let owned = id.clone();
            daemon
                .remove_eventually(&id, move || watchdog::release(&owned))
                .await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    /// A shape of workdir `name`, last used at `at`, with ready containers `ready`.
    fn shape(name: &str, at: i64, ready: &[&str]) -> Shape {
        let req = RunRequest::new("img");
        Shape {
            key: key(name),
            req,
            hardening: Hardening {
                profile: Profile::Baseline,
                user: None,
                cap_drop: vec![],
                cap_add: vec![],
                no_new_privileges: true,
                read_only_rootfs: false,
                tmpfs_size: None,
                no_swap: false,
                ulimits: vec![],
                init: false,
                network_by_request_only: false,
            },
            ready: ready
                .iter()
                .map(|id| Warm {
                    id: id.to_string(),
                    token: String::new(),
                })
                .collect(),
            creating: 0,
            target: 1,
            last_used: at,
            failed: None,
        }
    }

    fn key(name: &str) -> ShapeKey {
        ShapeKey {
            endpoint: "unix:///var/run/docker.sock".into(),
            image: "img".into(),
            networks: vec![],
            workdir: name.into(),
            profile: Profile::Baseline,
        }
    }

    fn names(shapes: &[Shape]) -> Vec<&str> {
        shapes.iter().map(|s| s.key.workdir.as_str()).collect()
    }

    fn ids(w: &[Warm]) -> Vec<&str> {
        w.iter().map(|w| w.id.as_str()).collect()
    }

    #[test]
    fn a_shape_unused_for_ten_minutes_is_let_go_with_its_ready_containers() {
        let mut shapes = vec![shape("a", 0, &["a1", "a2"]), shape("b", 4 * MIN, &["b1"])];
        // Just short of 10 min: kept; the timer wakes when `a` turns idle.
        let (gone, next) = expire(&mut shapes, 10 * MIN - 1);
        assert!(gone.is_empty());
        assert_eq!(next, Some(1));
        assert_eq!(names(&shapes), ["a", "b"]);
        // At 10 min: `a` goes with both its containers; `b` in 4 min.
        let (gone, next) = expire(&mut shapes, 10 * MIN);
        assert_eq!(ids(&gone), ["a1", "a2"]);
        assert_eq!(next, Some(4 * MIN));
        assert_eq!(names(&shapes), ["b"]);
        // Nothing left: the timer stops.
        let (gone, next) = expire(&mut shapes, 14 * MIN);
        assert_eq!(ids(&gone), ["b1"]);
        assert_eq!(next, None);
        assert!(shapes.is_empty());
    }

    #[test]
    fn a_shape_used_again_is_not_idle() {
        let mut shapes = vec![shape("a", 0, &["a1"]), shape("b", MIN, &["b1"])];
        touch(&mut shapes, &key("a"), 9 * MIN).unwrap();
        let (gone, next) = expire(&mut shapes, 11 * MIN);
        assert_eq!(ids(&gone), ["b1"], "b was last used at 1 min");
        assert_eq!(next, Some(8 * MIN), "a was used at 9 min");
        assert_eq!(names(&shapes), ["a"]);
    }

    #[test]
    fn past_eight_shapes_the_least_recently_used_go_first() {
        let names9 = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"];
        let mut shapes: Vec<Shape> = names9[..MAX_SHAPES]
            .iter()
            .enumerate()
            .map(|(i, n)| shape(n, i as i64, &[n]))
            .collect();
        assert!(over_limit(&mut shapes).is_empty(), "eight are kept");
        // s0, the oldest, is used again: s1 is now the least recently used.
        touch(&mut shapes, &key("s0"), 100).unwrap();
        shapes.push(shape("s8", 101, &["s8"]));
        let gone = over_limit(&mut shapes);
        assert_eq!(ids(&gone), ["s1"]);
        assert_eq!(shapes.len(), MAX_SHAPES);
        assert_eq!(
            names(&shapes),
            ["s2", "s3", "s4", "s5", "s6", "s7", "s0", "s8"]
        );
        assert!(
            touch(&mut shapes, &key("s1"), 102).is_none(),
            "s1 was let go"
        );
    }
}
