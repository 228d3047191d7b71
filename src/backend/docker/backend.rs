//! [`Backend`] on Docker: each method is one of this folder's operations.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::{AttachContainerOptions, ListContainersOptions};
use futures_util::StreamExt;

use super::labels::{label_filter, RUN_ID_LABEL};
use tokio::io::AsyncWriteExt;

use super::{container, events, extract, logs, setup, Daemon};
use crate::backend::{Backend, Chunk, Life, OutputChunks, RunIo, SetupRequest, SetupStep, Wakeup};
use crate::config::RunRequest;
use crate::errors::{DockerOp, Error, Result};
use crate::lines::Stream;
use crate::record::{ExtractResult, ExtractSpec};

fn chunk(
    id: &str,
    item: std::result::Result<LogOutput, bollard::errors::Error>,
) -> Option<Result<Chunk>> {
    let (stream, bytes) = match item {
        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
            (Stream::Stdout, message)
        }
        Ok(LogOutput::StdErr { message }) => (Stream::Stderr, message),
        Ok(LogOutput::StdIn { .. }) => return None,
        Err(e) => return Some(Err(Error::docker(DockerOp::Logs, Some(id), e))),
    };
    Some(Ok(Chunk {
        stream,
        time: None,
        bytes,
    }))
}

impl Daemon {
    /// What setup needs to set `s` up on this daemon, and the request.
    fn setup<'a>(&'a self, s: SetupRequest<'a>) -> (setup::Setup<'a>, &'a RunRequest) {
        let setup = setup::Setup {
            daemon: self,
            cfg: s.cfg,
            hardening: s.hardening,
            create_timeout: s.create_timeout,
            id: s.id,
            cancel: s.cancel,
            build_log: s.build_log,
            cache_uses: s.cache_uses,
        };
        (setup, s.req)
    }
}

impl Backend for Daemon {
    type Subscription = events::EventsSub;

    fn endpoint(&self) -> &str {
        &self.endpoint.host
    }

    async fn ping(&self) -> Result<()> {
        Daemon::ping(self).await
    }

    async fn create_and_seed(
        &self,
        s: SetupRequest<'_>,
        reached: &(dyn Fn(SetupStep) + Send + Sync),
    ) -> Result<()> {
        let (setup, req) = self.setup(s);
        setup::set_up(&setup, req, reached).await.map(|_| ())
    }

    async fn create_warm(&self, s: SetupRequest<'_>, token: &str, owner: &str) -> Result<()> {
        let (mut setup, req) = self.setup(s);
        // A warm container belongs to no run yet: a build it needs is no
        // run's output.
        setup.build_log = None;
        setup::set_up_warm(&setup, req, token, owner).await
    }

    async fn seed(&self, s: SetupRequest<'_>) -> Result<()> {
        let (mut setup, req) = self.setup(s);
        setup.build_log = None;
        setup::seed_warm(&setup, req).await
    }

    async fn start_warm(
        &self,
        id: &str,
        token: &str,
        env: &[(String, String)],
        command: &str,
    ) -> Result<RunIo> {
        let mut io = self.attach(id, true).await?;
        let script = super::warm::job_script(env, command, token);
        io.input
            .write_all(script.as_bytes())
            .await
            .map_err(|e| Error::Internal(format!("sending the job to warm container {id}: {e}")))?;
        Ok(io)
    }

    async fn attach(&self, id: &str, stdin: bool) -> Result<RunIo> {
        let attachment = self
            .docker
            .attach_container(
                id,
                Some(AttachContainerOptions {
                    stream: true,
                    stdin,
                    stdout: true,
                    stderr: true,
                    logs: false,
                    detach_keys: None,
                }),
            )
            .await
            .map_err(|e| Error::docker(DockerOp::Attach, Some(id), e))?;
        let id = id.to_string();
        Ok(RunIo {
            output: attachment
                .output
                .filter_map(move |i| {
                    let c = chunk(&id, i);
                    async move { c }
                })
                .boxed(),
            input: attachment.input,
        })
    }

    async fn start(&self, id: &str, deadline: Duration) -> Result<()> {
        container::start(&self.docker, id, deadline).await
    }

    async fn inspect(&self, id: &str) -> Result<Life> {
        container::life(&self.docker, id).await
    }

    async fn wait(&self, id: &str) -> Result<i64> {
        container::wait_stopped(&self.docker, id).await
    }

    async fn kill(&self, id: &str) {
        container::kill(&self.docker, id).await
    }

    async fn signal(&self, id: &str, signal: &str) -> Result<()> {
        container::signal(&self.docker, id, signal).await
    }

    async fn pause(&self, id: &str) -> Result<()> {
        container::pause(&self.docker, id).await
    }

    async fn resume(&self, id: &str) -> Result<()> {
        container::unpause(&self.docker, id).await
    }

    async fn live_restore(&self) -> bool {
        container::live_restore(&self.docker).await
    }

    fn said(&self, id: &str) -> crate::backend::Said {
        events::said(&self.endpoint.host, id)
    }

    fn exited_in_gap(&self, at_ms: i64) -> bool {
        events::in_gap(&self.endpoint.host, at_ms)
    }

    fn subscribe(&self, id: &str, wake: &Wakeup) -> events::EventsSub {
        events::EventsSub::new(&self.endpoint.host, &self.docker, id, wake)
    }

    async fn extract(
        &self,
        id: &str,
        workdir: &str,
        specs: &[ExtractSpec],
        cap: u64,
    ) -> Result<Vec<ExtractResult>> {
        extract::extract_all(&self.docker, id, workdir, specs, cap).await
    }

    fn logs(&self, id: &str, follow: bool) -> OutputChunks {
        let owned = id.to_string();
        logs::daemon_log(&self.docker, id, follow)
            .filter_map(move |item| {
                let with_time = |c: Chunk| {
                    let (time, rest) = logs::stamped(&c.bytes);
                    Chunk {
                        time,
                        bytes: c.bytes.slice_ref(rest),
                        ..c
                    }
                };
                let c = chunk(&owned, item).map(|r| r.map(with_time));
                async move { c }
            })
            .boxed()
    }

    async fn remove(&self, id: &str) -> Result<()> {
        container::remove_all(&self.docker, id).await
    }

    async fn remove_eventually(&self, id: &str, removed: impl FnOnce() + Send + 'static) {
        container::remove_all_eventually(&self.docker, id, removed).await
    }

    async fn remove_late(&self, id: &str) -> bool {
        container::remove_late(&self.docker, id).await
    }

    async fn list_runs(&self) -> Result<Vec<(String, Life)>> {
        let list = super::quick(self.docker.list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(label_filter(RUN_ID_LABEL)),
            ..Default::default()
        })))
        .await
        .map_err(|e| Error::docker(DockerOp::ListContainers, None, e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let id = c.labels?.get(RUN_ID_LABEL)?.clone();
                let life = match c.state.map(|s| s.to_string()).as_deref() {
                    Some("running" | "restarting") => Life::Running,
                    Some("paused") => Life::Paused,
                    Some("created") => Life::Created,
                    Some("removing") => Life::Removing,
                    _ => Life::Exited(Default::default()),
                };
                Some((id, life))
            })
            .collect())
    }
}
