//! `ssh://[user@]host[:port]` endpoints, as the docker CLI reaches them: the
//! system `ssh` runs `docker system dial-stdio` on the remote host, and each
//! HTTP connection to the daemon is the stdin/stdout of one such command.
//!
//! A run holds several connections at once (attach, wait, events, and the
//! short calls around them), and sshd refuses the excess of two limits:
//! `MaxStartups` (default 10) drops unauthenticated connections beyond 10
//! opening at once, and `MaxSessions` (default 10) caps the sessions of one
//! connection. bollard's own ssh transport opens one ssh connection per HTTP
//! connection, so 20 concurrent runs fail there. Here, every connection is
//! a session multiplexed over a private master connection (`ControlMaster`,
//! a `ControlPath` in a directory of this process, mode 0700):
//! - masters are opened one at a time (never more than one unauthenticated
//!   connection from this process), each carrying at most
//!   [`SshOptions::sessions`] sessions (default 8, under sshd's 10), and a
//!   new one is opened when all are full;
//! - a master is checked (its socket answers) before a session is put on
//!   it; a dead one is dropped and replaced;
//! - masters live on `ControlPersist` for a minute after their last
//!   session, so a process that dies (even by SIGKILL) leaves nothing
//!   running for long.
//!
//! Extra `ssh` arguments (an identity, a config file, known hosts) come
//! from `LIGHT_RUNNER_SSH_ARGS`; the user's own ssh config applies as for
//! the docker CLI. `BatchMode=yes` is the default: a library never prompts.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, Docker};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout, Command};

use super::endpoint::{SshOptions, DEFAULT_SSH_SESSIONS};

/// How long a master may stay with no session before it exits by itself.
const CONTROL_PERSIST_SECS: u32 = 60;
/// Bound on opening a master (connect, key exchange, authentication).
const MASTER_OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of an ssh command's stderr kept for the error message.
const STDERR_KEPT: usize = 2048;
/// Pooled idle HTTP connections (each holds a session) are closed after this.
const POOL_IDLE: Duration = Duration::from_secs(10);

/// The parts of an `ssh://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Parses `ssh://[user@]host[:port]`; a path, a query or a password is an
/// error, as with the docker CLI.
pub fn parse(url: &str) -> Result<Destination, String> {
    let rest = url
        .strip_prefix("ssh://")
        .ok_or_else(|| format!("not an ssh:// URL: {url}"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(format!(
            "{url}: extra path, query or fragment after the host (ssh://[user@]host[:port])"
        ));
    }
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => {
            if u.contains(':') {
                return Err(format!("{url}: a password in the URL is not supported"));
            }
            if u.is_empty() {
                return Err(format!("{url}: empty user name"));
            }
            (Some(u.to_string()), h)
        }
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url}: unclosed '[' in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("{url}: unexpected {after:?} after the host")),
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() || host.starts_with('-') {
        return Err(format!("{url}: no host"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{url}: invalid port {p:?}"))?,
        ),
    };
    Ok(Destination { user, host, port })
}

impl Destination {
    /// `-l user -p port -- host`, after every option.
    fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(u) = &self.user {
            a.extend(["-l".to_string(), u.clone()]);
        }
        if let Some(p) = self.port {
            a.extend(["-p".to_string(), p.to_string()]);
        }
        a.extend(["--".to_string(), self.host.clone()]);
        a
    }
}

/// One master connection and the sessions it carries.
struct Master {
    path: PathBuf,
    sessions: AtomicU32,
    dead: AtomicBool,
}

/// The masters of one endpoint in this process.
pub struct Pool {
    dest: Destination,
    opts: SshOptions,
    dir: PathBuf,
    masters: Mutex<Vec<Arc<Master>>>,
    /// Held while a master opens: one at a time.
    opening: tokio::sync::Mutex<()>,
    next: AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The last lines of an ssh command's stderr, on one line.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" / ")
}

/// A directory for control sockets: short enough for a socket path (about
/// 100 bytes), private to this user.
fn control_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 60 {
        base = PathBuf::from("/tmp");
    }
    sweep_stale(&base);
    let name = format!(
        "light-runner-ssh-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let dir = base.join(name);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Removes the control directories of processes that are gone, once their
/// masters have exited.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("light-runner-ssh-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the pid exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if alive {
            continue;
        }
        let dir = e.path();
        if let Ok(socks) = std::fs::read_dir(&dir) {
            for s in socks.flatten() {
                // A socket nobody listens on any more.
                if std::os::unix::net::UnixStream::connect(s.path()).is_err() {
                    let _ = std::fs::remove_file(s.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

impl Pool {
    pub fn new(url: &str, opts: Option<&SshOptions>) -> Result<Self, String> {
        let dest = parse(url)?;
        let opts = opts.cloned().unwrap_or(SshOptions {
            args: Vec::new(),
            sessions: DEFAULT_SSH_SESSIONS,
        });
        let dir = control_dir()
            .map_err(|e| format!("cannot make a directory for ssh control sockets: {e}"))?;
        Ok(Pool {
            dest,
            opts,
            dir,
            masters: Mutex::default(),
            opening: tokio::sync::Mutex::new(()),
            next: AtomicU32::new(0),
        })
    }

    fn cap(&self) -> u32 {
        self.opts.sessions.max(1)
    }

    /// `ssh <user args> <ours> ...`: the user's arguments come first, so
    /// they win over our defaults (ssh keeps the first value of an option).
    fn command(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(&self.opts.args);
        c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Takes a place on a live master with room, if there is one.
    async fn take_place(&self) -> Option<Arc<Master>> {
        loop {
            let candidate = {
                let mut masters = lock(&self.masters);
                masters.retain(|m| !m.dead.load(Ordering::SeqCst));
                let cap = self.cap();
                let best = masters
                    .iter()
                    .filter(|m| m.sessions.load(Ordering::SeqCst) < cap)
                    .min_by_key(|m| m.sessions.load(Ordering::SeqCst))
                    .cloned()?;
                best.sessions.fetch_add(1, Ordering::SeqCst);
                best
            };
            // A master that exited (idle past ControlPersist, connection
            // lost, killed) no longer answers on its socket.
            if tokio::net::UnixStream::connect(&candidate.path)
                .await
                .is_ok()
            {
                return Some(candidate);
            }
            candidate.dead.store(true, Ordering::SeqCst);
            candidate.sessions.fetch_sub(1, Ordering::SeqCst);
            let _ = std::fs::remove_file(&candidate.path);
        }
    }

    async fn open_master(&self) -> io::Result<Arc<Master>> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("m{n}"));
        let mut c = self.command();
        c.args([
            "-o".to_string(),
            "ControlMaster=yes".to_string(),
            "-o".to_string(),
            format!("ControlPath={}", path.display()),
            "-o".to_string(),
            format!("ControlPersist={CONTROL_PERSIST_SECS}"),
            "-o".to_string(),
            "ServerAliveInterval=15".to_string(),
            "-o".to_string(),
            "ServerAliveCountMax=3".to_string(),
            // Background once authenticated: the foreground's exit status
            // says whether the master is up.
            "-f".to_string(),
            "-N".to_string(),
            "-T".to_string(),
        ]);
        c.args(self.dest.args());
        let mut child = c
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run ssh: {e}")))?;
        // Read stderr beside the wait, not to its end: a master started with
        // debug output (`-v` in the user's arguments) keeps it open.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut reader = None;
        if let Some(mut pipe) = child.stderr.take() {
            let kept = stderr.clone();
            reader = Some(tokio::spawn(async move {
                let mut buf = [0u8; 512];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut k = lock(&kept);
                    k.extend_from_slice(&buf[..n]);
                    if k.len() > STDERR_KEPT {
                        let cut = k.len() - STDERR_KEPT;
                        k.drain(..cut);
                    }
                }
            }));
        }
        let status = match tokio::time::timeout(MASTER_OPEN_TIMEOUT, child.wait()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "ssh to {} did not connect within {} s",
                        self.dest.host,
                        MASTER_OPEN_TIMEOUT.as_secs()
                    ),
                ))
            }
        };
        if !status.success() {
            // What it said before it exited (its pipe closes with it).
            if let Some(r) = reader {
                let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
            }
            let said = tail(&lock(&stderr));
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("ssh to {} failed ({status}): {said}", self.dest.host),
            ));
        }
        Ok(Arc::new(Master {
            path,
            sessions: AtomicU32::new(0),
            dead: AtomicBool::new(false),
        }))
    }

    /// A place on a master: an existing one with room, else a new master
    /// (opened one at a time).
    async fn place(&self) -> io::Result<Place> {
        loop {
            if let Some(m) = self.take_place().await {
                return Ok(Place(m));
            }
            let _one_at_a_time = self.opening.lock().await;
            if let Some(m) = self.take_place().await {
                return Ok(Place(m));
            }
            let m = self.open_master().await?;
            lock(&self.masters).push(m);
        }
    }

    /// A new connection to the remote daemon: one session running
    /// `docker system dial-stdio` on a master.
    pub async fn dial(&self) -> io::Result<SshStream> {
        let place = self.place().await?;
        let mut c = self.command();
        c.args([
            "-o".to_string(),
            "ControlMaster=no".to_string(),
            "-o".to_string(),
            format!("ControlPath={}", place.0.path.display()),
            "-T".to_string(),
        ]);
        c.args(self.dest.args());
        c.args(["docker", "system", "dial-stdio"]);
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run ssh: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            return Err(io::Error::other("ssh started without pipes"));
        };
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel::<String>();
        let host = self.dest.host.clone();
        // Owns the ssh process: reaps it, kills it when the connection is
        // dropped, and says why it ended when it failed.
        tokio::spawn(async move {
            let mut err = Vec::new();
            let read_err = async {
                if let Some(mut s) = stderr {
                    let mut buf = [0u8; 512];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        err.extend_from_slice(&buf[..n]);
                        if err.len() > STDERR_KEPT {
                            err.drain(..err.len() - STDERR_KEPT);
                        }
                    }
                }
            };
            let status = tokio::select! {
                (status, ()) = futures_util::future::join(child.wait(), read_err) => status.ok(),
                _ = kill_rx => None,
            };
            if status.is_none() {
                let _ = child.kill().await;
            }
            let why = match status {
                Some(s) if !s.success() => {
                    format!(
                        "ssh to {host}: docker system dial-stdio ended ({s}): {}",
                        tail(&err)
                    )
                }
                _ => String::new(),
            };
            let _ = exit_tx.send(why);
            drop(place);
        });
        Ok(SshStream {
            stdin: Some(stdin),
            stdout,
            read_any: false,
            exit: Some(exit_rx),
            _kill: kill_tx,
        })
    }
}

/// A session's place on a master, given back when the session ends.
struct Place(Arc<Master>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One HTTP connection: the stdin and stdout of `ssh ... docker system
/// dial-stdio`. Dropping it kills the ssh process.
pub struct SshStream {
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    read_any: bool,
    /// Why the ssh process failed ("" when it did not).
    exit: Option<tokio::sync::oneshot::Receiver<String>>,
    _kill: tokio::sync::oneshot::Sender<()>,
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stdout).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.read_any = true;
            return Poll::Ready(Ok(()));
        }
        // End of output before any answer: say why ssh ended, if it failed.
        if !self.read_any {
            if let Some(exit) = self.exit.as_mut() {
                let why = ready!(exit.poll_unpin(cx)).unwrap_or_default();
                self.exit = None;
                if !why.is_empty() {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)));
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Closing stdin is the half-close dial-stdio passes on to the daemon
    /// (the end of a run's input).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(s) = self.stdin.as_mut() {
            ready!(Pin::new(s).poll_shutdown(cx))?;
        }
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// The connector hyper's client calls for each new connection.
#[derive(Clone)]
struct Connector(Arc<Pool>);

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = TokioIo<SshStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let pool = self.0.clone();
        // Driven by its own task: a caller that stops polling its connect
        // (hyper may park one behind a pooled checkout) must not sit on
        // the one-master-at-a-time lock once it is handed the lock, holding
        // up every other connection (the next request waited out its whole
        // deadline behind it).
        let dial = tokio::spawn(async move { pool.dial().await });
        Box::pin(async move {
            match dial.await {
                Ok(r) => r.map(TokioIo::new),
                Err(e) => Err(io::Error::other(format!("ssh connect task: {e}"))),
            }
        })
    }
}

/// How a ping over ssh failed.
#[derive(Debug)]
pub enum PingError {
    /// No session could be had, or the daemon's answer was not a 200.
    Failed(io::Error),
    /// The session was up but the daemon did not answer within the deadline.
    Timeout,
}

impl Pool {
    /// Pings the daemon: `deadline` counts from when a session is up
    /// (establishing one, an ssh connection included, is bounded by
    /// ssh's `ConnectTimeout` and [`MASTER_OPEN_TIMEOUT`]), so that a slow
    /// ssh handshake or a busy remote host is not taken for a dead daemon.
    pub async fn ping(&self, deadline: Duration) -> Result<(), PingError> {
        use tokio::io::AsyncWriteExt;
        let mut s = match tokio::time::timeout(MASTER_OPEN_TIMEOUT, self.dial()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(PingError::Failed(e)),
            Err(_) => {
                return Err(PingError::Failed(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no ssh session to {} within {} s",
                        self.dest.host,
                        MASTER_OPEN_TIMEOUT.as_secs()
                    ),
                )))
            }
        };
        let exchange = async {
            s.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
                .await?;
            s.flush().await?;
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let status = String::from_utf8_lossy(&head);
            let status = status.lines().next().unwrap_or_default();
            match status.split_whitespace().nth(1) {
                Some("200") => Ok(()),
                _ => Err(io::Error::other(format!(
                    "unexpected answer to /_ping over ssh: {status:?}"
                ))),
            }
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(r) => r.map_err(PingError::Failed),
            Err(_) => Err(PingError::Timeout),
        }
    }
}

/// A client for the daemon at `url` (`ssh://[user@]host[:port]`), and its
/// pool of ssh connections; no connection is made until the first request.
pub fn connect(
    url: &str,
    opts: Option<&SshOptions>,
    timeout_secs: u64,
) -> Result<(Docker, Arc<Pool>), String> {
    let pool = Arc::new(Pool::new(url, opts)?);
    let transport_pool = pool.clone();
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(POOL_IDLE);
    builder.pool_timer(hyper_util::rt::TokioTimer::new());
    let client = Arc::new(builder.build(Connector(transport_pool)));
    let docker = Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = client.clone();
            async move {
                client
                    .request(req)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        // The URL bollard builds requests on (never dialled as such).
        Some("http://docker.ssh"),
        timeout_secs,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| e.to_string())?;
    Ok((docker, pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(user: Option<&str>, host: &str, port: Option<u16>) -> Destination {
        Destination {
            user: user.map(str::to_string),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn urls() {
        assert_eq!(parse("ssh://box").unwrap(), d(None, "box", None));
        assert_eq!(parse("ssh://me@box").unwrap(), d(Some("me"), "box", None));
        assert_eq!(
            parse("ssh://me@box:2222").unwrap(),
            d(Some("me"), "box", Some(2222))
        );
        assert_eq!(parse("ssh://box:22/").unwrap(), d(None, "box", Some(22)));
        assert_eq!(
            parse("ssh://me@[::1]:2222").unwrap(),
            d(Some("me"), "::1", Some(2222))
        );
        assert_eq!(parse("ssh://[fe80::1]").unwrap(), d(None, "fe80::1", None));
        for bad in [
            "tcp://box",
            "ssh://",
            "ssh://me@",
            "ssh://@box",
            "ssh://me:pw@box",
            "ssh://box/path",
            "ssh://box?x=1",
            "ssh://box:port",
            "ssh://box:0",
            "ssh://box:70000",
            "ssh://-oProxyCommand=x",
            "ssh://[::1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_destination_comes_after_every_option() {
        assert_eq!(
            d(Some("me"), "box", Some(2222)).args(),
            ["-l", "me", "-p", "2222", "--", "box"]
        );
        assert_eq!(d(None, "box", None).args(), ["--", "box"]);
    }

    #[test]
    fn stderr_tails_are_short_and_on_one_line() {
        assert_eq!(
            tail(b"Warning: x\n\nroot@h: Permission denied (publickey).\r\n"),
            "Warning: x / root@h: Permission denied (publickey)."
        );
        assert_eq!(tail(b"1\n2\n3\n4\n"), "2 / 3 / 4");
    }
}
