//! Shared by the integration tests: they run the core (no Node) against the
//! real daemon. A missing daemon fails them; it is never a skip.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use light_runner::config::Settings;
use light_runner::engine::ctx::{Ctx, Host};
use light_runner::engine::execution::Outcome;
use light_runner::lines::{LogLine, LogSink};

pub const BUSYBOX: &str = "light-runner-busybox:latest";

/// One private state dir for the whole test binary.
pub fn state_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Inside target/: nothing of the tests lands in /tmp.
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("light-runner-state-{}", std::process::id()))
    })
}

/// The host all runs of this test binary share (one process, one host).
pub fn host() -> Arc<Host> {
    static HOST: OnceLock<Arc<Host>> = OnceLock::new();
    HOST.get_or_init(Default::default).clone()
}

/// A context on the test binary's state dir, with the rest of the
/// environment as it is.
pub fn ctx() -> Ctx {
    let dir = state_dir().to_string_lossy().into_owned();
    let s = Settings::from_vars(|k| match k {
        "LIGHT_RUNNER_STATE_DIR" => Some(dir.clone()),
        _ => std::env::var(k).ok(),
    });
    Ctx::new(host(), &s)
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    light_runner::rt::runtime().block_on(f)
}

pub fn outcome(exec: &light_runner::engine::execution::Execution) -> Outcome {
    block_on(exec.outcome())
}

/// `docker <args>` (assertions only: the package never uses the CLI).
pub fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

pub fn container_exists(id: &str) -> bool {
    docker(&["container", "inspect", id]).0
}

pub fn volume_exists(id: &str) -> bool {
    docker(&["volume", "inspect", id]).0
}

/// A log sink that collects every line.
pub fn collector() -> (LogSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    let sink: LogSink = Arc::new(move |batch: Vec<LogLine>| {
        l.lock().unwrap().extend(batch.into_iter().map(|x| x.line));
        Box::pin(async {}) as futures_util::future::BoxFuture<'static, ()>
    });
    (sink, lines)
}

/// Removes whatever a run may have left (after the test's own checks).
pub fn force_cleanup(id: &str) {
    let _ = docker(&["rm", "-f", "-v", id]);
    let _ = docker(&["volume", "rm", "-f", id]);
    let _ = std::fs::remove_file(state_dir().join(format!("{id}.json")));
    let _ = std::fs::remove_file(state_dir().join(format!("{id}.log")));
}
