//! Runs started elsewhere (another process, or before this one): `attach`
//! reconnects a handle by id, and `reconcile` is one pass of
//! `cleanupOrphanStates()` over a run nobody here watches. Both are a
//! driver on a record written elsewhere.

use super::ctx::Ctx;
use super::driver::{sweep, Driver};
use super::execution::Execution;
use super::lifecycle::{Finalizer, Lifecycle, Liveness, Observation};
use super::outcome::outcome_of;
use super::runner::cancel_hook;
use crate::record::{HostIdentity, RunRecord};

fn finalizer_of(r: &RunRecord) -> Finalizer {
    if r.is_attached() {
        Finalizer::Never
    } else {
        Finalizer::Claim
    }
}

/// Reconnects to a run by id: `None` without a state file.
pub fn attach(ctx: Ctx, id: &str) -> Option<Execution> {
    if let Some(exec) = ctx.host.run(id) {
        return Some(exec);
    }
    let record = ctx.store.read_now(id)?;
    if record.is_terminal() {
        let outcome = outcome_of(&record, ctx.limits.daemon_grace);
        if record.is_attached() {
            return Some(Execution::finished(id.to_string(), ctx.clock, outcome));
        }
        // Its finalizer may have died between recording the result and
        // removing the container and volume, with nobody watching: what is
        // left goes before the result is given (bounded: a hung daemon
        // delays an attach to a finished run by `sweep_for` at most). The
        // sweep runs as its own task: the bound ends the wait, never the
        // removal (a volume still in use is retried past it).
        let owned = id.to_string();
        let daemon = ctx.daemon();
        let bound = ctx.limits.sweep_for;
        return Some(Execution::finished_after(
            id.to_string(),
            ctx.clock.clone(),
            outcome,
            async move {
                if let Ok(d) = daemon {
                    let task = crate::rt::spawn(async move { sweep(&d, &owned).await });
                    let _ = tokio::time::timeout(bound, task).await;
                }
            },
        ));
    }
    let exec = Execution::new(
        id.to_string(),
        ctx.daemon().map_err(Into::into),
        ctx.clock.clone(),
    );
    cancel_hook(&ctx, &exec);
    ctx.host.add_run(&exec);
    let host = ctx.host.clone();
    let finalizer = finalizer_of(&record);
    exec.drive(
        move |exec| async move {
            let daemon = ctx.connected().await?;
            let lc = Lifecycle::watcher(finalizer, ctx.limits.clone());
            Driver::watcher(ctx, exec, daemon, lc).run().await.outcome
        },
        move |exec| host.remove_run(exec.id()),
    );
    Some(exec)
}

/// One step of `cleanupOrphanStates()` for a running record nobody in this
/// process watches: a vanished container → failed; an exited run nobody
/// finalized → finalized; a run past its deadline → killed and finalized;
/// an attached run whose host died → failed. Never waits for a grace, nor
/// for a launcher still setting its run up. True when this call changed
/// the record.
pub async fn reconcile(
    ctx: &Ctx,
    daemon: &crate::backend::docker::Daemon,
    record: RunRecord,
) -> bool {
    if record.is_terminal() {
        return false;
    }
    let id = record.id.clone();
    let launcher = Liveness::of(record.host.as_ref().map(HostIdentity::is_alive));
    let mut lc = Lifecycle::reclaimer(finalizer_of(&record), ctx.limits.clone());
    lc.observe(
        Observation::Record {
            record: Box::new(record),
            launcher,
        },
        ctx.now_ms(),
    );
    // A handle of its own, that nobody holds: the driver reports through it.
    let exec = Execution::new(id, Ok(daemon.clone()), ctx.clock.clone());
    Driver::watcher(ctx.clone(), exec, daemon.clone(), lc)
        .run()
        .await
        .won
}
