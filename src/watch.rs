//! Waiting on many runs for the price of one: news about containers and
//! state files, gathered once per process and fanned out to the runs that
//! wait on them.
//!
//! - **Containers**: one Docker events stream per daemon endpoint, filtered
//!   on the run label (`create`, `start`, `die`, `destroy`), started when
//!   the first waiter subscribes and dropped when the last one leaves. It
//!   reconnects with backoff; every (re)connection asks the daemon to replay
//!   what happened since the last event seen (`since`), and one container
//!   list wakes every waiter whose container is not running, so an exit that
//!   fell in a gap is never missed. The same list runs every
//!   [`SAFETY_LIST`] while anyone waits: a stream that stays quiet by
//!   mistake costs at most that delay.
//! - **State files**: one inotify watch per state directory, shared the same
//!   way. Where notifications cannot be trusted (no inotify, or a network
//!   filesystem such as NFS, where another machine's writes raise none)
//!   waiters re-read their state file every [`REMOTE_STATE_POLL`] instead:
//!   a file read, never a daemon request.
//!
//! A waiter costs the daemon nothing while its run is quiet: steady state is
//! one open events request plus one list per [`SAFETY_LIST`] per process,
//! whatever the number of runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::container::RUN_ID_LABEL;
use crate::docker::quick;

/// How often the container list re-checks every waiter (one request).
pub const SAFETY_LIST: Duration = Duration::from_secs(30);
/// How often a waiter re-reads its state file when notifications work.
pub const LOCAL_STATE_POLL: Duration = Duration::from_secs(30);
/// ... and when they cannot be trusted (no inotify, network filesystems).
pub const REMOTE_STATE_POLL: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Container events that can change what a waiter decides.
const EVENTS: [&str; 4] = ["create", "start", "die", "destroy"];

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// Waiters by run id, each with its own wake-up.
type Subs = HashMap<String, Vec<(u64, Arc<Notify>)>>;

fn add(subs: &mut Subs, id: &str, key: u64, n: &Arc<Notify>) {
    subs.entry(id.to_string())
        .or_default()
        .push((key, n.clone()));
}

fn remove(subs: &mut Subs, id: &str, key: u64) {
    if let Some(v) = subs.get_mut(id) {
        v.retain(|(k, _)| *k != key);
        if v.is_empty() {
            subs.remove(id);
        }
    }
}

fn wake(subs: &Subs, id: &str) {
    for (_, n) in subs.get(id).into_iter().flatten() {
        n.notify_one();
    }
}

fn wake_all(subs: &Subs) {
    for (_, n) in subs.values().flatten() {
        n.notify_one();
    }
}

// ---------------------------------------------------------------- containers

struct EventsHub {
    subs: Subs,
    task: JoinHandle<()>,
}

/// One hub per daemon endpoint (`DOCKER_HOST` value).
static HUBS: Mutex<Option<HashMap<String, EventsHub>>> = Mutex::new(None);

fn with_hubs<T>(f: impl FnOnce(&mut HashMap<String, EventsHub>) -> T) -> T {
    let mut g = HUBS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

fn wake_endpoint(endpoint: &str, f: impl FnOnce(&Subs)) {
    with_hubs(|h| {
        if let Some(hub) = h.get(endpoint) {
            f(&hub.subs)
        }
    })
}

/// When each endpoint's events stream broke and when the daemon answered
/// again (ms since the epoch; the last few): a container found stopped
/// with an exit inside a gap may have been stopped by a daemon that went
/// down (see [`in_gap`]).
static GAPS: Mutex<Option<HashMap<String, Gaps>>> = Mutex::new(None);
type Gaps = std::collections::VecDeque<(i64, Option<i64>)>;
const GAPS_KEPT: usize = 16;

fn with_gaps<T>(f: impl FnOnce(&mut HashMap<String, Gaps>) -> T) -> T {
    let mut g = GAPS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

fn gap_opened(endpoint: &str) {
    with_gaps(|g| {
        let gaps = g.entry(endpoint.to_string()).or_default();
        if gaps.back().is_none_or(|(_, end)| end.is_some()) {
            gaps.push_back((crate::state::now_ms(), None));
            if gaps.len() > GAPS_KEPT {
                gaps.pop_front();
            }
        }
    });
}

fn gap_closed(endpoint: &str) {
    with_gaps(|g| {
        if let Some((_, end @ None)) = g.get_mut(endpoint).and_then(|v| v.back_mut()) {
            *end = Some(crate::state::now_ms());
        }
    });
}

/// True when `at_ms` (a container's exit, daemon time) falls while this
/// process could not reach the daemon of `endpoint`: from its events stream
/// breaking with the daemon not answering a ping, to the daemon answering
/// again.
pub fn in_gap(endpoint: &str, at_ms: i64) -> bool {
    let now = crate::state::now_ms();
    with_gaps(|g| {
        g.get(endpoint).is_some_and(|gaps| {
            gaps.iter()
                .any(|(from, to)| at_ms >= *from && at_ms <= to.unwrap_or(now))
        })
    })
}

/// Seconds since the epoch with nanoseconds, as the events API takes them.
fn since_arg(nanos: i64) -> String {
    format!(
        "{}.{:09}",
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000)
    )
}

fn now_nanos() -> i64 {
    crate::state::now_ms().saturating_mul(1_000_000)
}

/// The run a container event is about.
fn event_run_id(ev: &bollard::models::EventMessage) -> Option<String> {
    let attrs = ev.actor.as_ref()?.attributes.as_ref()?;
    attrs
        .get(RUN_ID_LABEL)
        .or_else(|| attrs.get("name"))
        .cloned()
}

/// Wakes every waiter whose container is not running (exited, created,
/// dead or gone). A failed list wakes nobody: the next reconnection or
/// safety list tries again, and a waiter that needs the daemon retries on
/// its own.
async fn resync(endpoint: &str, docker: &Docker) {
    let Ok(list) = quick(docker.list_containers(Some(ListContainersOptions {
        all: true,
        filters: Some(crate::resources::label_filter(RUN_ID_LABEL)),
        ..Default::default()
    })))
    .await
    else {
        return;
    };
    // The daemon answers: a gap in the stream, if any, is over.
    gap_closed(endpoint);
    let running: std::collections::HashSet<String> = list
        .into_iter()
        .filter(|c| {
            matches!(
                c.state.map(|s| s.to_string()).as_deref(),
                Some("running" | "paused" | "restarting")
            )
        })
        .filter_map(|c| c.labels?.get(RUN_ID_LABEL).cloned())
        .collect();
    wake_endpoint(endpoint, |subs| {
        for id in subs.keys().filter(|id| !running.contains(*id)) {
            wake(subs, id);
        }
    });
}

/// The events stream of one endpoint, for as long as anyone waits.
async fn pump(endpoint: String, docker: Docker) {
    // Replay from a little before the first waiter subscribed: whatever it
    // inspected before the stream was connected is covered.
    let mut since = now_nanos() - 2_000_000_000;
    let mut backoff = Duration::from_millis(250);
    loop {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![RUN_ID_LABEL.to_string()]),
            (
                "event".to_string(),
                EVENTS.iter().map(|e| e.to_string()).collect(),
            ),
        ]);
        let mut stream = docker
            .events(Some(EventsOptions {
                since: Some(since_arg(since)),
                until: None,
                filters: Some(filters),
            }))
            .boxed();
        // The first tick is immediate: the list after each (re)connection.
        let mut safety = tokio::time::interval(SAFETY_LIST);
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(ev)) => {
                        backoff = Duration::from_millis(250);
                        if let Some(t) = ev.time_nano {
                            since = since.max(t);
                        }
                        if let Some(id) = event_run_id(&ev) {
                            wake_endpoint(&endpoint, |subs| wake(subs, &id));
                        }
                    }
                    _ => break,
                },
                _ = safety.tick() => resync(&endpoint, &docker).await,
            }
        }
        // A stream can break while the daemon is fine (a proxy, a network
        // blip): only a daemon that does not answer opens a gap.
        if crate::docker::ping(&docker, Duration::from_secs(2))
            .await
            .is_err()
        {
            gap_opened(&endpoint);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A waiter's place in its endpoint's hub; leaving the last one stops the
/// stream.
struct EventsSub {
    endpoint: String,
    id: String,
    key: u64,
}

impl EventsSub {
    fn new(endpoint: &str, docker: &Docker, id: &str, n: &Arc<Notify>) -> Self {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        with_hubs(|h| {
            let hub = h.entry(endpoint.to_string()).or_insert_with(|| EventsHub {
                subs: Subs::new(),
                task: crate::rt::spawn(pump(endpoint.to_string(), docker.clone())),
            });
            add(&mut hub.subs, id, key, n);
        });
        EventsSub {
            endpoint: endpoint.to_string(),
            id: id.to_string(),
            key,
        }
    }
}

impl Drop for EventsSub {
    fn drop(&mut self) {
        with_hubs(|h| {
            if let Some(hub) = h.get_mut(&self.endpoint) {
                remove(&mut hub.subs, &self.id, self.key);
                if hub.subs.is_empty() {
                    hub.task.abort();
                    h.remove(&self.endpoint);
                }
            }
        });
    }
}

// ---------------------------------------------------------------- state files

struct DirHub {
    subs: Subs,
    /// True while the directory's notifications can be trusted.
    trusted: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
}

static DIRS: Mutex<Option<HashMap<PathBuf, DirHub>>> = Mutex::new(None);

fn with_dirs<T>(f: impl FnOnce(&mut HashMap<PathBuf, DirHub>) -> T) -> T {
    let mut g = DIRS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

fn wake_dir(dir: &Path, f: impl FnOnce(&Subs)) {
    with_dirs(|d| {
        if let Some(hub) = d.get(dir) {
            f(&hub.subs)
        }
    })
}

/// True for filesystems whose changes made elsewhere raise no local
/// notification (NFS, SMB/CIFS, FUSE, Ceph, 9p, ...).
#[cfg(target_os = "linux")]
pub fn is_network_fs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const REMOTE: [i64; 10] = [
        0x6969,      // NFS
        0x517b,      // SMB
        0xff53_4d42, // CIFS
        0xfe53_4d42, // SMB2
        0x6573_5546, // FUSE (sshfs, ...)
        0x00c3_6400, // Ceph
        0x0102_1997, // 9p
        0x5346_414f, // AFS
        0x7461_636f, // OCFS2
        0x0116_1970, // GFS2
    ];
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed statfs is a valid out-parameter; `c` is NUL-terminated.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)]
    let t = s.f_type as i64 & 0xffff_ffff;
    REMOTE.contains(&t)
}

#[cfg(not(target_os = "linux"))]
pub fn is_network_fs(_dir: &Path) -> bool {
    true
}

#[cfg(target_os = "linux")]
mod inotify {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use tokio::io::unix::AsyncFd;

    /// Starts watching `dir`; None when inotify is unavailable.
    pub fn start(
        dir: &Path,
        trusted: Arc<std::sync::atomic::AtomicBool>,
    ) -> Option<AsyncFd<OwnedFd>> {
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: plain syscalls; the fd is owned right after creation.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mask = libc::IN_MOVED_TO
            | libc::IN_CLOSE_WRITE
            | libc::IN_DELETE
            | libc::IN_DELETE_SELF
            | libc::IN_MOVE_SELF
            | libc::IN_ONLYDIR;
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
            return None;
        }
        // SAFETY: the fd is owned by the AsyncFd and closed only when it drops.
        let afd = unsafe { AsyncFd::register(fd) }.ok()?;
        trusted.store(true, Ordering::SeqCst);
        Some(afd)
    }

    /// What one read of the inotify fd said.
    pub enum News {
        /// These file names changed.
        Names(Vec<String>),
        /// Events were dropped: anything may have changed.
        Overflow,
        /// The directory went away or was moved: the watch is over.
        Gone,
    }

    pub async fn next(afd: &AsyncFd<OwnedFd>) -> News {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok(mut guard) = afd.readable().await else {
                return News::Gone;
            };
            let got = guard.try_io(|fd| {
                // SAFETY: reading into a buffer valid for its length.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            let n = match got {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return News::Gone,
                Err(_would_block) => continue,
            };
            return parse(&buf[..n]);
        }
    }

    pub fn parse(mut b: &[u8]) -> News {
        const HEAD: usize = std::mem::size_of::<libc::inotify_event>();
        let mut names = Vec::new();
        while b.len() >= HEAD {
            // SAFETY: at least HEAD bytes; read_unaligned copes with alignment.
            let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
            let len = ev.len as usize;
            if b.len() < HEAD + len {
                break;
            }
            if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                return News::Overflow;
            }
            if ev.mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
                return News::Gone;
            }
            let raw = &b[HEAD..HEAD + len];
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            names.push(String::from_utf8_lossy(&raw[..end]).into_owned());
            b = &b[HEAD + len..];
        }
        News::Names(names)
    }
}

/// Starts the notifications of `dir` (on the runtime's reactor): None
/// when they cannot be had, and waiters then poll.
#[cfg(target_os = "linux")]
fn watch_dir(dir: &Path, trusted: &Arc<AtomicBool>) -> Option<JoinHandle<()>> {
    let _rt = crate::rt::runtime().enter();
    let afd = inotify::start(dir, trusted.clone())?;
    Some(crate::rt::spawn(read_dir_news(
        dir.to_path_buf(),
        trusted.clone(),
        afd,
    )))
}

#[cfg(target_os = "linux")]
async fn read_dir_news(
    dir: PathBuf,
    trusted: Arc<AtomicBool>,
    afd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
) {
    use inotify::News;
    loop {
        match inotify::next(&afd).await {
            News::Names(names) => wake_dir(&dir, |subs| {
                for n in names {
                    if let Some(id) = n.strip_suffix(".json") {
                        wake(subs, id);
                    }
                }
            }),
            News::Overflow => wake_dir(&dir, wake_all),
            News::Gone => {
                trusted.store(false, Ordering::SeqCst);
                wake_dir(&dir, wake_all);
                return;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn watch_dir(_dir: &Path, _trusted: &Arc<AtomicBool>) -> Option<JoinHandle<()>> {
    None
}

struct DirSub {
    dir: PathBuf,
    id: String,
    key: u64,
    trusted: Arc<AtomicBool>,
}

impl DirSub {
    fn new(dir: &Path, id: &str, n: &Arc<Notify>) -> Self {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let trusted = with_dirs(|d| {
            let hub = d.entry(dir.to_path_buf()).or_insert_with(|| {
                let trusted = Arc::new(AtomicBool::new(false));
                let task = if is_network_fs(dir) {
                    None
                } else {
                    watch_dir(dir, &trusted)
                };
                DirHub {
                    subs: Subs::new(),
                    trusted,
                    task,
                }
            });
            add(&mut hub.subs, id, key, n);
            hub.trusted.clone()
        });
        DirSub {
            dir: dir.to_path_buf(),
            id: id.to_string(),
            key,
            trusted,
        }
    }

    fn poll_every(&self) -> Duration {
        if self.trusted.load(Ordering::SeqCst) {
            LOCAL_STATE_POLL
        } else {
            REMOTE_STATE_POLL
        }
    }
}

impl Drop for DirSub {
    fn drop(&mut self) {
        with_dirs(|d| {
            if let Some(hub) = d.get_mut(&self.dir) {
                remove(&mut hub.subs, &self.id, self.key);
                if hub.subs.is_empty() {
                    if let Some(t) = &hub.task {
                        t.abort();
                    }
                    d.remove(&self.dir);
                }
            }
        });
    }
}

// ---------------------------------------------------------------- waiters

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

/// One run's subscription to news about its container and its state file.
pub struct Waiter {
    container: Arc<Notify>,
    state: Arc<Notify>,
    next_state_poll: Instant,
    _events: EventsSub,
    files: DirSub,
}

impl Waiter {
    /// Subscribes run `id`, whose daemon is `docker` (reached at
    /// `endpoint`) and whose state file lives in `dir`. Subscribe before the
    /// first look at the container: news from then on is never lost.
    pub fn new(docker: &Docker, endpoint: &str, dir: &Path, id: &str) -> Self {
        let container = Arc::new(Notify::new());
        let state = Arc::new(Notify::new());
        let files = DirSub::new(dir, id, &state);
        Waiter {
            _events: EventsSub::new(endpoint, docker, id, &container),
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

/// Number of endpoints with a live events stream (for tests).
pub fn streams() -> usize {
    with_hubs(|h| h.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_inside_a_stream_gap_is_seen_as_such() {
        let ep = "unix:///gap-test.sock";
        let before = crate::state::now_ms() - 10;
        assert!(!in_gap(ep, before + 5));
        std::thread::sleep(std::time::Duration::from_millis(2));
        gap_opened(ep);
        let inside = crate::state::now_ms();
        assert!(in_gap(ep, inside), "an open gap lasts until now");
        assert!(!in_gap(ep, before), "nothing before it broke");
        gap_closed(ep);
        assert!(in_gap(ep, inside));
        assert!(!in_gap(ep, crate::state::now_ms() + 50));
        assert!(!in_gap("unix:///other.sock", inside));
    }

    #[test]
    fn since_is_seconds_dot_nanos() {
        assert_eq!(since_arg(1_700_000_000_123_456_789), "1700000000.123456789");
        assert_eq!(since_arg(5), "0.000000005");
    }

    #[test]
    fn local_tmp_is_not_a_network_fs() {
        let t = tempfile::tempdir().unwrap();
        assert!(!is_network_fs(t.path()));
    }

    #[tokio::test]
    async fn state_changes_wake_the_waiter_of_that_run_only() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let a = Arc::new(Notify::new());
        let b = Arc::new(Notify::new());
        let sa = DirSub::new(&dir, "light-runner-aaaaaaaaaaaa", &a);
        let _sb = DirSub::new(&dir, "light-runner-bbbbbbbbbbbb", &b);
        // Let the watch start.
        for _ in 0..100 {
            if sa.trusted.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(sa.trusted.load(Ordering::SeqCst), "inotify watch started");
        let mut s: crate::state::RunState = serde_json::from_value(serde_json::json!({
            "id": "light-runner-aaaaaaaaaaaa", "container": "x", "volume": "x", "image": "i",
            "workdir": "/app", "startedAt": "2026-04-27T10:15:00.000Z", "status": "running"
        }))
        .unwrap();
        crate::state::write_state_in(&dir, &s).unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.notified())
            .await
            .expect("the waiter of the changed run is woken");
        let other = tokio::time::timeout(Duration::from_millis(200), b.notified()).await;
        assert!(other.is_err(), "another run's waiter is not woken");
        s.status = crate::state::Status::Exited;
        crate::state::update(&dir, &s.id, |x| {
            x.status = s.status;
            true
        })
        .unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.notified())
            .await
            .expect("an update wakes it again");
    }

    #[test]
    fn parses_inotify_records() {
        #[cfg(target_os = "linux")]
        {
            let name = b"light-runner-0123456789ab.json\0\0";
            let ev = libc::inotify_event {
                wd: 1,
                mask: libc::IN_MOVED_TO,
                cookie: 0,
                len: name.len() as u32,
            };
            let mut buf = Vec::new();
            // SAFETY: inotify_event is plain old data.
            buf.extend_from_slice(unsafe {
                std::slice::from_raw_parts(
                    (&ev as *const libc::inotify_event).cast::<u8>(),
                    std::mem::size_of::<libc::inotify_event>(),
                )
            });
            buf.extend_from_slice(name);
            match inotify::parse(&buf) {
                inotify::News::Names(n) => {
                    assert_eq!(n, vec!["light-runner-0123456789ab.json".to_string()])
                }
                _ => panic!("names expected"),
            }
        }
    }
}
