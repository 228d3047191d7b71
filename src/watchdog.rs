//! Attached runs die with their host, even on SIGKILL.
//!
//! The first attached run starts a small watchdog process (the native
//! `light-runner-watchdog` binary the loader points to, or node running
//! `watchdog.js`; both call [`serve`]) whose stdin is a pipe from this process. Each run is announced
//! (`+id`) before its volume is created and withdrawn (`-id`) after its
//! cleanup. When the host dies, however it dies,
//! the kernel closes the pipe; the watchdog sees EOF and removes every run
//! still announced (container and volume), then exits.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long the watchdog keeps removing a dead host's runs after it died.
const LINGER: Duration = Duration::from_secs(10);

static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
static BINARY: OnceLock<PathBuf> = OnceLock::new();
static STATE: Mutex<Guards> = Mutex::new(Guards {
    ids: None,
    pipe: None,
});

struct Guards {
    ids: Option<HashSet<String>>,
    pipe: Option<(Child, ChildStdin)>,
}

/// Where `watchdog.js` lives; without it (e.g. in `cargo test`) no watchdog runs.
pub fn set_script(path: PathBuf) {
    let _ = SCRIPT.set(path);
}

/// Where the native `light-runner-watchdog` binary lives (the platform
/// package's, or a contributor's build next to `watchdog.js`).
pub fn set_binary(path: PathBuf) {
    let _ = BINARY.set(path);
}

/// The native watchdog binary (a few MiB), else a second node process
/// running `watchdog.js` (about 40 MiB).
fn command() -> Option<Command> {
    let script = SCRIPT.get()?;
    if let Some(native) = BINARY.get().filter(|p| p.is_file()) {
        return Some(Command::new(native));
    }
    let mut cmd = Command::new(std::env::current_exe().ok()?);
    cmd.arg(script);
    Some(cmd)
}

fn spawn() -> Option<(Child, ChildStdin)> {
    let mut child = command()?
        .arg(std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C aimed at the host must not kill
        // the watchdog before it has cleaned up.
        .process_group(0)
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

fn send(g: &mut Guards, line: &str) {
    for _attempt in 0..2 {
        if g.pipe.is_none() {
            g.pipe = spawn();
            // A new watchdog must learn every run still guarded.
            if let (Some((_, pipe)), Some(ids)) = (g.pipe.as_mut(), g.ids.as_ref()) {
                let all: String = ids.iter().map(|id| format!("+{id}\n")).collect();
                if pipe.write_all(all.as_bytes()).is_err() {
                    g.pipe = None;
                    continue;
                }
            }
        }
        let Some((_, pipe)) = g.pipe.as_mut() else {
            return;
        };
        if pipe
            .write_all(line.as_bytes())
            .and_then(|_| pipe.flush())
            .is_ok()
        {
            return;
        }
        g.pipe = None;
    }
}

/// Announces a run before its first Docker resource exists.
pub fn guard(id: &str) {
    let mut g = STATE.lock().unwrap_or_else(|p| p.into_inner());
    g.ids
        .get_or_insert_with(HashSet::new)
        .insert(id.to_string());
    send(&mut g, &format!("+{id}\n"));
}

/// Runs of this process that are still guarded (being set up or running).
pub fn guarded_ids() -> Vec<String> {
    let g = STATE.lock().unwrap_or_else(|p| p.into_inner());
    g.ids.iter().flatten().cloned().collect()
}

/// Withdraws a run once its resources are gone.
pub fn release(id: &str) {
    let mut g = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ids) = g.ids.as_mut() {
        ids.remove(id);
    }
    if g.pipe.is_some() {
        send(&mut g, &format!("-{id}\n"));
    }
}

/// Applies one protocol line to the set of guarded ids.
pub fn apply(ids: &mut HashSet<String>, line: &str) {
    let line = line.trim();
    if let Some(id) = line.strip_prefix('+') {
        if crate::id::is_run_id(id) {
            ids.insert(id.to_string());
        }
    } else if let Some(id) = line.strip_prefix('-') {
        ids.remove(id);
    }
}

/// The watchdog process: reads announcements until the host is gone, then
/// removes what is left. Blocking; returns when done.
pub fn serve(input: impl BufRead + Send + 'static, parent_pid: Option<u32>) {
    let ids = std::sync::Arc::new(Mutex::new(HashSet::new()));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    {
        let ids = ids.clone();
        let done = done_tx.clone();
        std::thread::spawn(move || {
            for line in input.lines() {
                let Ok(line) = line else { break };
                apply(&mut ids.lock().unwrap(), &line);
            }
            let _ = done.send(());
        });
    }
    // Belt and braces: a host whose pipe leaked into another process is
    // still noticed through its pid.
    if let Some(pid) = parent_pid {
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            // SAFETY: kill with signal 0 only checks that the pid exists.
            let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
            if !alive {
                let _ = done_tx.send(());
                return;
            }
        });
    }
    let _ = done_rx.recv();
    let left: Vec<String> = ids.lock().unwrap().drain().collect();
    if left.is_empty() {
        return;
    }
    crate::rt::runtime().block_on(async move {
        let Ok(docker) = crate::docker::client() else {
            return;
        };
        let jobs = left.into_iter().map(|id| {
            let docker = docker.clone();
            // The host may have died with a create in flight: what lands
            // after the first removal is removed too.
            async move { crate::resources::remove_all_settled(&docker, &id, LINGER).await }
        });
        futures_util::future::join_all(jobs).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol() {
        let mut ids = HashSet::new();
        apply(&mut ids, "+light-runner-0123456789ab");
        apply(&mut ids, "+light-runner-aaaaaaaaaaaa\n");
        apply(&mut ids, "+not-ours");
        apply(&mut ids, "-light-runner-0123456789ab");
        assert_eq!(
            ids,
            HashSet::from(["light-runner-aaaaaaaaaaaa".to_string()])
        );
    }

    #[test]
    fn serve_returns_at_eof_with_nothing_guarded() {
        let input = std::io::Cursor::new(
            b"+light-runner-0123456789ab\n-light-runner-0123456789ab\n".to_vec(),
        );
        serve(std::io::BufReader::new(input), None);
    }
}
