//! Starting runs: the record written inside `run()`, the handle, and the
//! driver that takes the run from there (attached or detached alike).

use std::sync::Arc;

use super::ctx::Ctx;
use super::driver;
use super::execution::Execution;
use super::setup;
use super::warm::Pool;
use crate::config::{RunRequest, RunnerConfig};
use crate::errors::Result;
use crate::id::new_run_id;
use crate::lines::LogSink;
use crate::time::Stamp;

/// Runs jobs with one set of options.
#[derive(Clone)]
pub struct Runner {
    cfg: Arc<RunnerConfig>,
    /// Its warm containers (`warm > 0`).
    pool: Option<Arc<Pool>>,
}

/// Marks a run's record cancelled when its handle is cancelled or stopped,
/// synchronously (the mark is on disk before `cancel()` returns): any host
/// watching the run then kills it, once a stop's grace has passed.
pub(crate) fn cancel_hook(ctx: &Ctx, exec: &Execution) {
    let id = exec.id().to_string();
    let ctx = ctx.clone();
    exec.set_cancel_hook(Box::new(move |grace_ms| {
        let now = ctx.now_ms();
        let _ = crate::store::state::update(ctx.store.dir(), &id, |s| {
            if s.is_terminal() {
                return false;
            }
            s.cancelled = Some(true);
            // The first cancel counts; a later one never extends a grace.
            s.cancelled_at.get_or_insert_with(|| Stamp::at(now));
            let due = now.saturating_add(grace_ms.min(i64::MAX as u64) as i64);
            let earlier = s.kill_after.as_ref().and_then(Stamp::ms);
            s.kill_after = Some(Stamp::at(earlier.map_or(due, |e| e.min(due))));
            true
        });
    }));
}

impl Runner {
    pub fn new(cfg: RunnerConfig) -> Self {
        let cfg = Arc::new(cfg);
        let pool = (cfg.warm > 0).then(|| Pool::new(cfg.clone(), cfg.warm));
        Runner { cfg, pool }
    }

    pub fn warm_pool(&self) -> Option<&Arc<Pool>> {
        self.pool.as_ref()
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.cfg
    }

    /// Starts a run: its record is written now (the only failure), then a
    /// driver sets it up and drives it on the core's runtime. `aborted`:
    /// the caller's signal was already aborted, so it never starts.
    /// `on_log` receives an attached run's output lines as they come.
    pub fn run(
        &self,
        ctx: Ctx,
        req: RunRequest,
        on_log: Option<LogSink>,
        aborted: bool,
    ) -> Result<Execution> {
        // A ready container of its shape, if the warm path can serve it.
        let warm = match (&self.pool, &self.cfg.invalid) {
            (Some(p), None) => p.take(&ctx, &req),
            _ => None,
        };
        let id = warm.as_ref().map_or_else(new_run_id, |w| w.id.clone());
        let mut record = setup::initial_record(&ctx, &id, &req, &self.cfg);
        if warm.is_some() {
            record.warm = Some(true);
        }
        if let Err(e) = ctx.store.create_now(&record) {
            if let (Some(w), Ok(d)) = (&warm, ctx.daemon()) {
                // Taken, never used: it goes.
                let owned = w.id.clone();
                crate::rt::spawn(async move {
                    use crate::backend::Backend;
                    let id = owned.clone();
                    d.remove_eventually(&owned, move || crate::watchdog::release(&id))
                        .await;
                });
            }
            return Err(e);
        }
        let exec = Execution::new(id, ctx.daemon().map_err(Into::into), ctx.clock.clone());
        cancel_hook(&ctx, &exec);
        if warm.is_some() {
            exec.set_warm();
        }
        ctx.host.add_run(&exec);
        if aborted {
            exec.cancel();
        }
        let cfg = (*self.cfg).clone();
        let host = ctx.host.clone();
        exec.drive(
            move |exec| driver::launch(ctx, exec, cfg, req, record, on_log, warm),
            move |exec| host.remove_run(exec.id()),
        );
        Ok(exec)
    }
}
