//! The container platform a run lives on, and what a run observes of it.
//! Docker, through bollard, is the one platform there is.

pub mod docker;

/// How a container ended, as the platform recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exit {
    pub code: i64,
    /// The memory cap killed it.
    pub oom_killed: bool,
    /// ms since epoch, when known.
    pub finished_at: Option<i64>,
    /// A memory cap was set: a kill (exit 137) may be the cap's, and the
    /// platform may say so only after the exit (dockerd 20.10 sets
    /// `OOMKilled` when containerd's OOM event comes, which can be after
    /// the exit event).
    pub memory_capped: bool,
}

/// What the platform said of a run's container besides its state: news
/// that an inspect may not show (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Said {
    /// Its memory cap killed it (Docker's `oom` event).
    pub oom: bool,
    /// The platform sent it a signal (Docker's `kill` event: `kill`,
    /// `stop`, `rm -f`, this library's own kills).
    pub killed: bool,
}

/// What the platform says about a run's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Life {
    Gone,
    /// Created, not started yet.
    Created,
    Running,
    Paused,
    /// Being removed (`docker rm -f`): as good as gone.
    Removing,
    Exited(Exit),
}

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::AsyncWrite;
use tokio_util::sync::CancellationToken;

use crate::config::{Hardening, RunRequest, RunnerConfig};
use crate::errors::Result;
use crate::lines::{LogSink, Stream};
use crate::record::{ExtractResult, ExtractSpec};

/// A step of setup, reported as it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupStep {
    /// The container exists (networks, image, volume, container).
    Created,
    /// `dir` is in the run's volume.
    Seeded,
}

/// A chunk of a container's output: its stream, when it was logged (when
/// the platform says), its bytes.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub stream: Stream,
    pub time: Option<i64>,
    pub bytes: bytes::Bytes,
}

/// A container's output as it comes; an error ends it.
pub type OutputChunks = Pin<Box<dyn futures_util::Stream<Item = Result<Chunk>> + Send>>;

/// A started container's I/O, attached before its start so nothing is missed.
pub struct RunIo {
    pub output: OutputChunks,
    /// Its stdin (when asked for), closed to send EOF.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// What a request needs to be set up on a platform.
pub struct SetupRequest<'a> {
    pub id: &'a str,
    pub cfg: &'a RunnerConfig,
    /// What the run's container gets, its security profile decided.
    pub hardening: &'a Hardening,
    /// The bound on creates (`LIGHT_RUNNER_START_TIMEOUT_MS`, 120 s at most).
    pub create_timeout: std::time::Duration,
    pub req: &'a RunRequest,
    /// Fired by `cancel()`: setup stops where it can (a build, a seed).
    pub cancel: &'a CancellationToken,
    /// Where the output of `run` steps goes.
    pub build_log: Option<LogSink>,
    /// Where the use of cached images is recorded.
    pub cache_uses: &'a Path,
}

/// Woken when the platform has news of a subscribed run's container.
pub type Wakeup = Arc<tokio::sync::Notify>;

/// What a run needs from the container platform. Docker (through bollard)
/// is its one implementation, [`docker::Daemon`]; the README says how a
/// Kubernetes backend would sit here.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The subscription [`Backend::subscribe`] returns; news stops when it drops.
    type Subscription: Send;

    /// Where the platform is, for messages and for the news of runs.
    fn endpoint(&self) -> &str;

    /// The platform answers (within a deadline of its own).
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    /// Creates the run's volume and container (networks, image, pull,
    /// build of `run` steps) and seeds `dir` into the volume; `reached`
    /// hears each step. What was created is the caller's to remove.
    fn create_and_seed(
        &self,
        setup: SetupRequest<'_>,
        reached: &(dyn Fn(SetupStep) + Send + Sync),
    ) -> impl Future<Output = Result<()>> + Send;

    /// Creates and starts a warm container for the shape of `setup.req`
    /// (image, `run` steps, networks, workdir; nothing of a job): idle until
    /// [`Backend::start_warm`] sends it one. `owner` names this process.
    fn create_warm(
        &self,
        setup: SetupRequest<'_>,
        token: &str,
        owner: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Seeds `setup.req.dir` into a running (warm) container's volume.
    fn seed(&self, setup: SetupRequest<'_>) -> impl Future<Output = Result<()>> + Send;

    /// Sends a warm container its job (`env`, `command`): attached to its
    /// output and stdin first, so nothing is missed; the job's stdin
    /// follows on the returned input.
    fn start_warm(
        &self,
        id: &str,
        token: &str,
        env: &[(String, String)],
        command: &str,
    ) -> impl Future<Output = Result<RunIo>> + Send;

    /// Attaches to the created container's output (and stdin), before start.
    fn attach(&self, id: &str, stdin: bool) -> impl Future<Output = Result<RunIo>> + Send;

    /// Starts the created container within `deadline` (a runtime that
    /// never returns must not hold the run: it rejects, and what it holds
    /// is removed once it lets go).
    fn start(
        &self,
        id: &str,
        deadline: std::time::Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The container's life now.
    fn inspect(&self, id: &str) -> impl Future<Output = Result<Life>> + Send;

    /// Waits until the container is not running; its exit code, or the
    /// error that ended the wait (a daemon that went away).
    fn wait(&self, id: &str) -> impl Future<Output = Result<i64>> + Send;

    /// SIGKILL, best effort: a container gone or stopped is fine.
    fn kill(&self, id: &str) -> impl Future<Output = ()> + Send;

    /// Sends `signal` to the container.
    fn signal(&self, id: &str, signal: &str) -> impl Future<Output = Result<()>> + Send;

    /// Freezes the container's processes (`pause()`).
    fn pause(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Thaws them (`resume()`).
    fn resume(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// True when the platform keeps containers running while it is down.
    fn live_restore(&self) -> impl Future<Output = bool> + Send;

    /// What the platform's news said of run `id`'s container so far
    /// (while this process listened).
    fn said(&self, id: &str) -> Said;

    /// True when `at_ms` fell while this process could not reach the platform.
    fn exited_in_gap(&self, at_ms: i64) -> bool;

    /// News of run `id`'s container wakes `wake` for as long as the
    /// subscription lives. Subscribe before the first look: nothing is missed.
    fn subscribe(&self, id: &str, wake: &Wakeup) -> Self::Subscription;

    /// Reads `specs` out of the exited container into the host: one result
    /// per spec, or `EXTRACT_FAILED` when nothing could be read out at all.
    fn extract(
        &self,
        id: &str,
        workdir: &str,
        specs: &[ExtractSpec],
        cap: u64,
    ) -> impl Future<Output = Result<Vec<ExtractResult>>> + Send;

    /// The container's output as the platform logged it (timestamped
    /// chunks), to keep it before the container goes.
    fn logs(&self, id: &str, follow: bool) -> OutputChunks;

    /// Removes the container and its volume; what is gone is fine.
    fn remove(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Removes now, or keeps retrying in the background (an unreachable or
    /// refusing platform); `removed` is called once they are gone.
    fn remove_eventually(
        &self,
        id: &str,
        removed: impl FnOnce() + Send + 'static,
    ) -> impl Future<Output = ()> + Send;

    /// Removes what a create that landed late left of run `id` (a
    /// launcher that died with one in flight), if anything. False when
    /// looking again is pointless: the container hangs, and the background
    /// retries of [`Backend::remove_eventually`] own it.
    fn remove_late(&self, id: &str) -> impl Future<Output = bool> + Send;

    /// The run ids of the labelled containers on the platform, with their
    /// life (as `list`, not one inspect each).
    fn list_runs(&self) -> impl Future<Output = Result<Vec<(String, Life)>>> + Send;
}
