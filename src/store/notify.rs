//! News about state files: one inotify watch per state directory, shared
//! by every run waiting on a file in it. Where notifications cannot be
//! trusted (no inotify, or a network filesystem such as NFS, where another
//! machine's writes raise none) waiters re-read their state file every
//! [`REMOTE_STATE_POLL`] instead: a file read, never a daemon request.
//!
//! The watches are a process-wide static: one per directory, whatever the
//! number of runs waiting on files in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::wake::{self, Subs};

/// How often a waiter re-reads its state file when notifications work.
pub const LOCAL_STATE_POLL: Duration = Duration::from_secs(30);
/// ... and when they cannot be trusted (no inotify, network filesystems).
pub const REMOTE_STATE_POLL: Duration = Duration::from_secs(2);

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

// Used by the inotify reader (Linux only).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
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

/// macOS: a filesystem the kernel does not call local (NFS, SMB, AFP,
/// WebDAV), or a FUSE one (macFUSE may claim local).
#[cfg(target_os = "macos")]
pub fn is_network_fs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed statfs is a valid out-parameter; `c` is NUL-terminated.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return false;
    }
    let name: Vec<u8> = s
        .f_fstypename
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as u8)
        .collect();
    s.f_flags & libc::MNT_LOCAL as u32 == 0 || name.ends_with(b"fuse") || name.starts_with(b"fuse")
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
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
                        wake::wake(subs, id);
                    }
                }
            }),
            News::Overflow => wake_dir(&dir, wake::wake_all),
            News::Gone => {
                trusted.store(false, Ordering::SeqCst);
                wake_dir(&dir, wake::wake_all);
                return;
            }
        }
    }
}

/// Elsewhere (macOS included) no notifications: waiters re-read their state
/// file every [`REMOTE_STATE_POLL`].
#[cfg(not(target_os = "linux"))]
fn watch_dir(_dir: &Path, _trusted: &Arc<AtomicBool>) -> Option<JoinHandle<()>> {
    None
}

pub struct DirSub {
    dir: PathBuf,
    id: String,
    key: u64,
    trusted: Arc<AtomicBool>,
}

impl DirSub {
    pub fn new(dir: &Path, id: &str, n: &Arc<Notify>) -> Self {
        let key = wake::next_key();
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
            wake::add(&mut hub.subs, id, key, n);
            hub.trusted.clone()
        });
        DirSub {
            dir: dir.to_path_buf(),
            id: id.to_string(),
            key,
            trusted,
        }
    }

    pub fn poll_every(&self) -> Duration {
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
                wake::remove(&mut hub.subs, &self.id, self.key);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = crate::record::RunRecord::new(
            "light-runner-aaaaaaaaaaaa",
            "i",
            "/app",
            crate::time::Stamp::at(0),
        );
        crate::store::state::write(&dir, &s).unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.notified())
            .await
            .expect("the waiter of the changed run is woken");
        let other = tokio::time::timeout(Duration::from_millis(200), b.notified()).await;
        assert!(other.is_err(), "another run's waiter is not woken");
        crate::store::state::update(&dir, &s.id, |x| {
            x.status = crate::record::RunStatus::Exited;
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
