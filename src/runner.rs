//! Attached runs: one run from request to cleanup, living and dying with its
//! host process.
//!
//! Order: state file (synchronously, in `run()`) → checks → ping → setup
//! (networks, image, volume, container, seed) → attach → start → input →
//! logs/timeout/cancel → wait → extract → remove container and volume →
//! terminal state. The removal happens on every path, including a panic
//! inside the run, and a watchdog process removes the container if the host
//! process dies first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::query_parameters::AttachContainerOptions;
use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::config::{RunRequest, RunnerConfig};
use crate::docker;
use crate::errors::{Error, Result};
use crate::execution::{panic_error, Execution, Outcome, RunResult};
use crate::extract::extract_all;
use crate::id::new_run_id;
use crate::live;
use crate::logs::{LineSplitter, LogSink};
use crate::record;
use crate::resources;
use crate::setup::{self, Phase};
use crate::state;
use crate::watchdog;

/// How long output may keep arriving after the exit before it is cut off.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// Runs jobs with one set of options.
#[derive(Clone)]
pub struct Runner {
    cfg: Arc<RunnerConfig>,
}

impl Runner {
    pub fn new(cfg: RunnerConfig) -> Self {
        Runner { cfg: Arc::new(cfg) }
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.cfg
    }

    /// Starts an attached run. `aborted`: the caller's signal was already
    /// aborted, so the container is never started. Fails only when the state
    /// file cannot be written.
    pub fn run_attached(
        &self,
        req: RunRequest,
        on_log: Option<LogSink>,
        aborted: bool,
    ) -> Result<Execution> {
        let id = new_run_id();
        let dir = state::state_dir();
        state::write_state_in(&dir, &record::initial(&id, &req, &self.cfg)).map_err(|source| {
            Error::StateWrite {
                dir: dir.clone(),
                source,
            }
        })?;
        let exec = Execution::new(id);
        live::insert(&exec);
        if aborted {
            exec.cancel();
        }
        let cfg = self.cfg.clone();
        let started = Instant::now();
        exec.drive(
            move |driver| async move {
                let outcome = attached(&cfg, &req, on_log, &driver, started, &dir).await;
                record_outcome(&dir, &driver, &outcome);
                outcome
            },
            |driver| live::remove(driver.id()),
        );
        Ok(exec)
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Writes the terminal record of an attached run (a host that watches it
/// from another process resolves from it).
fn record_outcome(dir: &Path, exec: &Execution, outcome: &Outcome) {
    let _ = state::update(dir, exec.id(), |s| {
        if s.status.is_terminal() {
            return false;
        }
        match outcome {
            Ok(r) => record::record_result(s, r),
            Err(e) => record::record_failure(s, &e.to_string()),
        }
        true
    });
}

/// True when another host recorded a cancel of this run.
fn cancelled_elsewhere(dir: &Path, id: &str) -> bool {
    state::read_state_in(dir, id).is_some_and(|s| s.cancelled == Some(true))
}

async fn attached(
    cfg: &RunnerConfig,
    req: &RunRequest,
    on_log: Option<LogSink>,
    exec: &Execution,
    started: Instant,
    dir: &Path,
) -> Outcome {
    setup::precheck(cfg, req)?;
    if exec.is_cancelled() {
        return Ok(RunResult::new(-1, elapsed_ms(started), true, false));
    }
    let docker = docker::connected().await?;
    let id = exec.id().to_string();
    watchdog::guard(&id);
    let run = Attached {
        docker: &docker,
        cfg,
        req,
        exec,
        dir: dir.to_path_buf(),
    };
    // The run itself may panic; cleanup must still happen.
    let result = std::panic::AssertUnwindSafe(run.execute(on_log, started))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(panic_error(exec, panic)));
    if resources::remove_all(&docker, &id).await.is_ok() {
        watchdog::release(&id);
    }
    result
}

struct Attached<'a> {
    docker: &'a Docker,
    cfg: &'a RunnerConfig,
    req: &'a RunRequest,
    exec: &'a Execution,
    dir: PathBuf,
}

impl Attached<'_> {
    async fn execute(&self, on_log: Option<LogSink>, started: Instant) -> Outcome {
        let (docker, req, exec) = (self.docker, self.req, self.exec);
        let id = exec.id().to_string();
        let cache_uses = state::cache_use_dir(&self.dir);
        let ctx = setup::Context {
            docker,
            cfg: self.cfg,
            id: &id,
            cancel: &exec.shared.token,
            build_log: on_log.clone(),
            cache_uses: &cache_uses,
        };
        let ready = setup::set_up(&ctx, req, &|p| exec.mark_phase(p)).await?;
        if ready.image != req.image {
            let _ = state::update(&self.dir, &id, |s| {
                s.built_image = Some(ready.image.clone());
                true
            });
        }
        if exec.is_cancelled() {
            return Ok(RunResult::new(-1, elapsed_ms(started), true, false));
        }

        // Attach before start so no output and no stdin byte is missed.
        let wants_stdin = req.input.is_some();
        let attachment = if on_log.is_some() || wants_stdin {
            let a = docker
                .attach_container(
                    &id,
                    Some(AttachContainerOptions {
                        stream: true,
                        stdin: wants_stdin,
                        stdout: on_log.is_some(),
                        stderr: on_log.is_some(),
                        logs: false,
                        detach_keys: None,
                    }),
                )
                .await
                .map_err(|e| Error::docker("attach", Some(&id), e))?;
            Some(a)
        } else {
            None
        };

        resources::start(docker, &id).await?;
        exec.mark_phase(Phase::Started);
        exec.mark_started();

        let mut pump = None;
        let mut feeder = None;
        if let Some(a) = attachment {
            let mut input = a.input;
            if let Some(json) = req.input.clone() {
                // Fed concurrently with the wait: a container that never reads
                // stdin must not block the run, its timeout or its cancel.
                feeder = Some(tokio::spawn(async move {
                    let _ = input.write_all(json.as_bytes()).await;
                    let _ = input.shutdown().await;
                }));
            } else {
                drop(input);
            }
            if let Some(sink) = on_log {
                pump = Some(tokio::spawn(pump_logs(a.output, sink)));
            }
        }

        let deadline = req.timeout_ms.and_then(crate::rt::deadline_in);
        let mut timed_out = false;
        let mut killed = false;
        let wait = resources::wait_exit(docker, &id);
        tokio::pin!(wait);
        let exit = loop {
            tokio::select! {
                code = &mut wait => break code?,
                _ = crate::rt::sleep_until(deadline), if !timed_out && !killed => {
                    timed_out = true;
                    killed = true;
                    resources::kill(docker, &id).await;
                }
                _ = exec.shared.token.cancelled(), if !killed => {
                    killed = true;
                    resources::kill(docker, &id).await;
                }
            }
        };
        if let Some(f) = feeder {
            f.abort();
        }
        if let Some(p) = pump {
            let _ = tokio::time::timeout(LOG_DRAIN, p).await;
        }
        let Some(exit_code) = exit else {
            return Err(Error::Vanished { id: id.clone() }.into());
        };
        exec.mark_phase(Phase::Exited);

        let cancelled = exec.is_cancelled() || cancelled_elsewhere(&self.dir, &id);
        let mut result = RunResult::new(exit_code, 0, cancelled, timed_out);
        // Only a SIGKILL (137) can be the memory cap's doing: ask then.
        if exit_code == 137 {
            result.oom_killed = resources::exit_details(docker, &id, exit_code)
                .await
                .oom_killed;
        }
        if !req.extract.is_empty() && result.success {
            result.extracted = Some(
                extract_all(
                    docker,
                    &id,
                    &req.workdir,
                    &req.extract,
                    self.cfg.max_extract_bytes,
                )
                .await,
            );
            exec.mark_phase(Phase::Extracted);
        }
        result.duration = elapsed_ms(started);
        Ok(result)
    }
}

/// Splits the attach stream into lines, per stream, in order.
async fn pump_logs(
    mut output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    sink: LogSink,
) {
    let mut out = LineSplitter::new();
    let mut err = LineSplitter::new();
    while let Some(item) = output.next().await {
        let mut batch = Vec::new();
        match item {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                out.push(&message, |l| batch.push(l))
            }
            Ok(LogOutput::StdErr { message }) => err.push(&message, |l| batch.push(l)),
            Ok(LogOutput::StdIn { .. }) => {}
            Err(_) => break,
        }
        if !batch.is_empty() {
            sink(batch).await;
        }
    }
    let mut rest = Vec::new();
    out.finish(|l| rest.push(l));
    err.finish(|l| rest.push(l));
    if !rest.is_empty() {
        sink(rest).await;
    }
}
