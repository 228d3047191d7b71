//! Waiting on many runs for the price of one: a run's waiter subscribes to
//! the news about its container (the events stream of its daemon) and about
//! its state file (the directory's watch), and sleeps until either says
//! something may have changed, or until its own deadline.
//!
//! A waiter costs the daemon nothing while its run is quiet: steady state is
//! one open events request plus one list per safety period per process,
//! whatever the number of runs.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::store::notify::DirSub;

/// Why [`Waiter::next`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something happened to the container (or may have): inspect it again.
    Container,
    /// The state file changed (or is due for a re-read).
    State,
    /// The caller's own deadline.
    Timer,
}

/// One run's subscription to news about its container (from its backend)
/// and its state file.
pub struct Waiter<S> {
    container: Arc<Notify>,
    state: Arc<Notify>,
    next_state_poll: Instant,
    _events: S,
    files: DirSub,
}

impl<S> Waiter<S> {
    /// Subscribes run `id`, on `backend`, whose state file lives in `dir`.
    /// Subscribe before the first look at the container: news from then on
    /// is never lost.
    pub fn new<B: Backend<Subscription = S>>(backend: &B, dir: &Path, id: &str) -> Self {
        let container = Arc::new(Notify::new());
        let state = Arc::new(Notify::new());
        let files = DirSub::new(dir, id, &state);
        Waiter {
            _events: backend.subscribe(id, &container),
            next_state_poll: Instant::now() + files.poll_every(),
            container,
            state,
            files,
        }
    }

    /// Waits for news, or until `until`. A notification that arrived while
    /// the caller was busy is kept for the next call.
    pub async fn next(&mut self, until: Option<Instant>) -> Wake {
        let poll = self.next_state_poll;
        let wake = tokio::select! {
            _ = self.container.notified() => Wake::Container,
            _ = self.state.notified() => Wake::State,
            _ = tokio::time::sleep_until(poll) => Wake::State,
            _ = crate::rt::sleep_until(until) => Wake::Timer,
        };
        if wake == Wake::State {
            self.next_state_poll = Instant::now() + self.files.poll_every();
        }
        wake
    }
}
