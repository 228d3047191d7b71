//! The tokio runtime all Docker work runs on, owned by this crate and
//! started on first use (not at load, so `require` stays cheap).

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(16)
            .thread_name("light-runner")
            .enable_all()
            .build()
            .expect("failed to start the light-runner tokio runtime")
    })
}

pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime().spawn(fut)
}

/// Sleeps until `deadline`, or forever without one (a `select!` arm that
/// never fires).
pub async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// `now + ms`, or `None` when that is too far to represent (no deadline).
pub fn deadline_in(ms: u64) -> Option<tokio::time::Instant> {
    tokio::time::Instant::now().checked_add(std::time::Duration::from_millis(ms))
}
