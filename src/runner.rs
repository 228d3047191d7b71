//! Starting runs: one attached run from request to cleanup.
//!
//! Order of a run: check `dir` → ping → network → volume → container (pull if
//! missing) → seed → attach → start → input → logs/timeout/cancel → wait →
//! extract → remove container and volume. The removal happens on every path,
//! including a panic inside the run, and a watchdog process removes the
//! container if the host process dies first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::query_parameters::{AttachContainerOptions, UploadToContainerOptions};
use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use rand::Rng;
use tokio::io::AsyncWriteExt;

use crate::config::{NetworkChoice, RunRequest, RunnerConfig};
use crate::container::create_body;
use crate::docker;
use crate::errors::{ErrorCode, RunError};
use crate::execution::{panic_error, Execution, Outcome, RunResult};
use crate::extract::extract_all;
use crate::logs::LineSplitter;
use crate::network;
use crate::resources;
use crate::seed;
use crate::watchdog;

/// Receives the output lines of an attached run, a batch at a time. The
/// returned future completes when the sink can take more: a slow consumer
/// slows the reading of the container's output (and so the container)
/// instead of queueing lines without bound.
pub type LogSink =
    Arc<dyn Fn(Vec<String>) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// How long output may keep arriving after the exit before it is cut off.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// `light-runner-` + 12 lowercase hex digits.
pub fn new_run_id() -> String {
    let n: u64 = rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff;
    format!("light-runner-{n:012x}")
}

pub fn is_run_id(id: &str) -> bool {
    id.strip_prefix("light-runner-").is_some_and(|h| {
        h.len() == 12
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

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
    /// aborted, so the container is never started.
    pub fn run_attached(
        &self,
        req: RunRequest,
        on_log: Option<LogSink>,
        aborted: bool,
    ) -> Execution {
        let exec = Execution::new(new_run_id());
        if aborted {
            exec.cancel();
        }
        let cfg = self.cfg.clone();
        let started = Instant::now();
        exec.drive(
            move |driver| async move { attached(&cfg, &req, on_log, &driver, started).await },
            |_| {},
        );
        exec
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

async fn attached(
    cfg: &RunnerConfig,
    req: &RunRequest,
    on_log: Option<LogSink>,
    exec: &Execution,
    started: Instant,
) -> Outcome {
    if let Some(dir) = &req.dir {
        seed::check_dir(dir)?;
    }
    if exec.is_cancelled() {
        return Ok(RunResult::new(-1, elapsed_ms(started), true, false));
    }
    let docker = docker::connected().await?;
    let id = exec.id().to_string();
    watchdog::guard(&id);
    // The run itself may panic; cleanup must still happen.
    let result = std::panic::AssertUnwindSafe(execute(&docker, cfg, req, on_log, exec, started))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(panic_error(exec, panic)));
    let removed = resources::remove_all(&docker, &id).await;
    if removed.is_ok() {
        watchdog::release(&id);
    }
    result
}

/// Resolves the network the container joins.
pub(crate) async fn network_mode(
    docker: &Docker,
    choice: &NetworkChoice,
) -> Result<String, RunError> {
    match choice {
        NetworkChoice::Isolated => network::ensure_isolated(docker).await,
        NetworkChoice::None => Ok("none".into()),
        NetworkChoice::Named(n) => Ok(n.clone()),
    }
}

/// Volume + container (+ image pull), with one retry when the cached
/// isolated network was removed behind our back.
pub(crate) async fn create_resources(
    docker: &Docker,
    cfg: &RunnerConfig,
    req: &RunRequest,
    id: &str,
) -> Result<(), RunError> {
    resources::create_volume(docker, id, req.detached).await?;
    let mode = network_mode(docker, &req.network).await?;
    let created = resources::create_container(docker, id, create_body(id, cfg, req, &mode)).await;
    match created {
        Err(e) if req.network == NetworkChoice::Isolated && e.message.contains("network") => {
            network::forget().await;
            let mode = network_mode(docker, &req.network).await?;
            resources::create_container(docker, id, create_body(id, cfg, req, &mode)).await
        }
        other => other,
    }
}

/// Seeds `dir` into the created container's volume. Cancellation aborts it.
pub(crate) async fn seed_dir(
    docker: &Docker,
    req: &RunRequest,
    exec: &Execution,
) -> Result<(), RunError> {
    let Some(dir) = &req.dir else { return Ok(()) };
    let id = exec.id();
    let (parent, root) = seed::upload_target(&req.workdir);
    let tar = seed::tar_stream(dir.clone(), root, seed::ignore_set(&req.ignore));
    let error = tar.error.clone();
    let upload = docker.upload_to_container(
        id,
        Some(UploadToContainerOptions {
            path: parent,
            ..Default::default()
        }),
        bollard::body_try_stream(tar.stream),
    );
    tokio::select! {
        r = upload => r.map_err(|e| {
            let cause = error.lock().unwrap().clone().unwrap_or_else(|| e.to_string());
            RunError::docker(ErrorCode::SeedFailed, "seed", Some(id), cause)
        }),
        _ = exec.shared.token.cancelled() => Ok(()),
    }
}

async fn execute(
    docker: &Docker,
    cfg: &RunnerConfig,
    req: &RunRequest,
    on_log: Option<LogSink>,
    exec: &Execution,
    started: Instant,
) -> Outcome {
    let id = exec.id().to_string();
    create_resources(docker, cfg, req, &id).await?;
    seed_dir(docker, req, exec).await?;
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
            .map_err(|e| {
                RunError::docker(ErrorCode::ContainerStartFailed, "attach", Some(&id), e)
            })?;
        Some(a)
    } else {
        None
    };

    resources::start(docker, &id).await?;
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

    let deadline = req
        .timeout_ms
        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    let mut timed_out = false;
    let mut killed = false;
    let wait = resources::wait_exit(docker, &id);
    tokio::pin!(wait);
    let exit = loop {
        tokio::select! {
            code = &mut wait => break code?,
            _ = sleep_until(deadline), if !timed_out && !killed => {
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
        return Err(RunError {
            code: ErrorCode::ContainerStartFailed,
            message: format!("container {id} vanished while running"),
            docker_op: Some("wait".into()),
            container_id: Some(id.clone()),
        });
    };

    let cancelled = exec.is_cancelled();
    let mut result = RunResult::new(exit_code, 0, cancelled, timed_out);
    if !req.extract.is_empty() && result.success {
        result.extracted = Some(
            extract_all(
                docker,
                &id,
                &req.workdir,
                &req.extract,
                cfg.max_extract_bytes,
            )
            .await,
        );
    }
    result.duration = elapsed_ms(started);
    Ok(result)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids() {
        for _ in 0..100 {
            let id = new_run_id();
            assert!(is_run_id(&id), "{id}");
            assert_eq!(id.len(), "light-runner-".len() + 12);
        }
        assert!(!is_run_id("light-runner-XYZ"));
        assert!(!is_run_id("light-runner-0123456789AB"));
        assert!(!is_run_id("../etc/passwd"));
    }
}
