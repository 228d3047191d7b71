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
use std::sync::{Arc, Mutex};
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
use crate::logs::{LogSink, Stream};
use crate::output::{self, Capture, Kept};
use crate::record;
use crate::resources::{self, End};
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
                let (outcome, kept) = attached(&cfg, &req, on_log, &driver, started, &dir).await;
                record_outcome(&dir, &driver, &outcome, kept.as_ref());
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
/// from another process resolves from it), with what was kept of its output.
fn record_outcome(dir: &Path, exec: &Execution, outcome: &Outcome, kept: Option<&Kept>) {
    let _ = state::update(dir, exec.id(), |s| {
        if s.status.is_terminal() {
            return false;
        }
        match outcome {
            Ok(r) => record::record_result(s, r),
            Err(e) => record::record_error(s, e),
        }
        if let Some(k) = kept {
            output::record(s, k, false);
        }
        true
    });
}

/// Records that the container started (`phase: started`), off the run's
/// path: the write (fsync under the directory lock) does not delay the
/// run, and a terminal record written first is left as it is.
fn record_started(dir: &Path, id: &str) {
    let (dir, id) = (dir.to_path_buf(), id.to_string());
    tokio::task::spawn_blocking(move || {
        let _ = state::update(&dir, &id, |s| {
            if s.status.is_terminal() || !s.is_setting_up() {
                return false;
            }
            s.phase = Some("started".into());
            true
        });
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
) -> (Outcome, Option<Kept>) {
    if let Err(e) = setup::precheck(cfg, req) {
        return (Err(e.into()), None);
    }
    if exec.is_cancelled() {
        return (
            Ok(RunResult::new(-1, elapsed_ms(started), true, false)),
            None,
        );
    }
    let docker = match docker::connected().await {
        Ok(d) => d,
        Err(e) => return (Err(e.into()), None),
    };
    let id = exec.id().to_string();
    watchdog::guard(&id);
    let output = Arc::new(Mutex::new(Capture::new(dir, &id, cfg.max_log_bytes)));
    let run = Attached {
        docker: &docker,
        cfg,
        req,
        exec,
        dir: dir.to_path_buf(),
        output: output.clone(),
    };
    // The run itself may panic; cleanup must still happen.
    let result = std::panic::AssertUnwindSafe(run.execute(on_log, started))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(panic_error(exec, panic)));
    // The output is kept before the container goes; a run that never
    // started has none.
    let started = exec.phases().iter().any(|(p, _)| *p == Phase::Started);
    let kept = started.then(|| lock(&output).commit()).flatten();
    clean_up(&docker, &id).await;
    (result, kept)
}

fn lock(c: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes the run's container and volume, then stops guarding it. When
/// the daemon cannot be reached the result is not held back: the removal
/// goes on in the background (the watchdog keeps guarding the run meanwhile,
/// and `reapOrphans()` remains the backstop).
async fn clean_up(docker: &Docker, id: &str) {
    let owned = id.to_string();
    resources::remove_all_eventually(docker, id, move || watchdog::release(&owned)).await;
}

struct Attached<'a> {
    docker: &'a Docker,
    cfg: &'a RunnerConfig,
    req: &'a RunRequest,
    exec: &'a Execution,
    dir: PathBuf,
    /// The output as it flows: capped (`maxLogBytes`) and kept.
    output: Arc<Mutex<Capture>>,
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
        setup::set_up(&ctx, req, &|p| exec.mark_phase(p)).await?;
        if exec.is_cancelled() {
            return Ok(RunResult::new(-1, elapsed_ms(started), true, false));
        }

        // Attach before start so no output and no stdin byte is missed; the
        // output is read even without `onLog`, to be kept.
        let wants_stdin = req.input.is_some();
        let attachment = docker
            .attach_container(
                &id,
                Some(AttachContainerOptions {
                    stream: true,
                    stdin: wants_stdin,
                    stdout: true,
                    stderr: true,
                    logs: false,
                    detach_keys: None,
                }),
            )
            .await
            .map_err(|e| Error::docker("attach", Some(&id), e))?;

        resources::start(docker, &id).await?;
        exec.mark_phase(Phase::Started);
        exec.mark_started();
        record_started(&self.dir, &id);

        let mut feeder = None;
        let mut input = attachment.input;
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
        let pump = tokio::spawn(pump_logs(attachment.output, on_log, self.output.clone()));

        let deadline = req.timeout_ms.and_then(crate::rt::deadline_in);
        let mut timed_out = false;
        let mut killed = false;
        let wait = resources::wait_end(docker, &id);
        tokio::pin!(wait);
        let end = loop {
            tokio::select! {
                end = &mut wait => break end,
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
        // A daemon that went away may never close the stream.
        let drain = match end {
            End::Exited(_) => LOG_DRAIN,
            End::Lost(_) => Duration::from_millis(200),
        };
        let _ = tokio::time::timeout(drain, pump).await;
        let exit = match end {
            End::Exited(exit) => exit,
            End::Lost(why) => {
                return Err(Error::lost(&id, why, resources::daemon_grace()).into());
            }
        };
        exec.mark_phase(Phase::Exited);

        let cancelled = exec.is_cancelled() || cancelled_elsewhere(&self.dir, &id);
        let mut result = RunResult::new(exit.code, 0, cancelled, timed_out);
        result.logs_truncated = lock(&self.output).truncated();
        result.oom_killed = exit.oom_killed;
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

/// Splits the attach stream into lines, per stream, in order, for `onLog`
/// and for the kept output; past `maxLogBytes` the stream is still drained
/// (the container keeps running) but nothing is delivered or kept.
async fn pump_logs(
    mut stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    sink: Option<LogSink>,
    output: Arc<Mutex<Capture>>,
) {
    while let Some(item) = stream.next().await {
        let (which, message) = match item {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                (Stream::Stdout, message)
            }
            Ok(LogOutput::StdErr { message }) => (Stream::Stderr, message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(_) => break,
        };
        let batch = lock(&output).push(which, &message, state::now_ms());
        if let (Some(sink), false) = (&sink, batch.is_empty()) {
            sink(batch).await;
        }
    }
    let rest = lock(&output).finish(state::now_ms());
    if let (Some(sink), false) = (&sink, rest.is_empty()) {
        sink(rest).await;
    }
}
