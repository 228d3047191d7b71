//! Attached runs die with their host, even on SIGKILL.
//!
//! The first attached run starts a small watchdog process (the native
//! `light-runner-watchdog` binary the loader points to, or node running
//! `watchdog.js`; both call [`serve`]) whose stdin is a pipe from this process. Each run is announced
//! with the daemon it is on (`+id<TAB>endpoint`, the endpoint as one line of
//! JSON) before its volume is created and withdrawn (`-id`) after its
//! cleanup. When the host dies, however it dies,
//! the kernel closes the pipe; the watchdog sees EOF and removes every run
//! still announced (container and volume) on its daemon, then exits. A bare
//! `+id` (a host of an earlier version) means the daemon the watchdog's own
//! environment names.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::backend::docker::endpoint::{self, Endpoint};

/// How long the watchdog keeps removing a dead host's runs after it died.
const LINGER: Duration = Duration::from_secs(10);

static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
static BINARY: OnceLock<PathBuf> = OnceLock::new();
static STATE: Mutex<Guards> = Mutex::new(Guards {
    ids: None,
    pipe: None,
});

struct Guards {
    /// Each guarded run and its announcement line.
    ids: Option<HashMap<String, String>>,
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

/// How attached runs are guarded here: the native binary's path, or the
/// script node runs (for `light-runner doctor`); `None` before the loader
/// set them.
pub fn described() -> Option<(bool, PathBuf)> {
    let script = SCRIPT.get()?;
    match BINARY.get().filter(|p| p.is_file()) {
        Some(native) => Some((true, native.clone())),
        None => Some((false, script.clone())),
    }
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
                let all: String = ids.values().cloned().collect();
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

/// The line that announces run `id` on the daemon at `endpoint`.
pub fn announcement(id: &str, endpoint: &Endpoint) -> String {
    format!("+{id}\t{}\n", endpoint.to_spec())
}

/// Announces a run, and the daemon it is on, before its first Docker
/// resource exists.
pub fn guard(id: &str, endpoint: &Endpoint) {
    let line = announcement(id, endpoint);
    let mut g = STATE.lock().unwrap_or_else(|p| p.into_inner());
    g.ids
        .get_or_insert_with(HashMap::new)
        .insert(id.to_string(), line.clone());
    send(&mut g, &line);
}

/// Runs of this process that are still guarded (being set up or running).
pub fn guarded_ids() -> Vec<String> {
    let g = STATE.lock().unwrap_or_else(|p| p.into_inner());
    g.ids.iter().flat_map(|m| m.keys()).cloned().collect()
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

/// The guarded runs as the watchdog knows them: each id and the daemon it
/// is on (`None`: the one the watchdog's environment names).
pub type Guarded = HashMap<String, Option<Endpoint>>;

/// Applies one protocol line to the guarded runs: `+id<TAB>endpoint`,
/// `+id` (the daemon of the environment) or `-id`.
pub fn apply(ids: &mut Guarded, line: &str) {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix('+') {
        let (id, spec) = match rest.split_once('\t') {
            Some((id, spec)) => (id, Some(spec)),
            None => (rest, None),
        };
        if crate::id::is_run_id(id) {
            // A spec this version cannot read: the environment's daemon
            // is the best guess left.
            ids.insert(id.to_string(), spec.and_then(Endpoint::from_spec));
        }
    } else if let Some(id) = line.strip_prefix('-') {
        ids.remove(id);
    }
}

/// The runs to remove, per daemon; `None` stands for the environment's.
fn by_daemon(left: Guarded) -> HashMap<Option<Endpoint>, Vec<String>> {
    let mut out: HashMap<Option<Endpoint>, Vec<String>> = HashMap::new();
    for (id, ep) in left {
        out.entry(ep).or_default().push(id);
    }
    out
}

/// The watchdog process: reads announcements until the host is gone, then
/// removes what is left. Blocking; returns when done.
pub fn serve(input: impl BufRead + Send + 'static, parent_pid: Option<u32>) {
    let ids = std::sync::Arc::new(Mutex::new(Guarded::new()));
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
    let left: Guarded = ids.lock().unwrap().drain().collect();
    if left.is_empty() {
        return;
    }
    crate::rt::runtime().block_on(async move {
        let jobs = by_daemon(left).into_iter().map(|(ep, ids)| async move {
            let ep = match ep {
                Some(ep) => ep,
                None => {
                    let settings = crate::config::Settings::from_env();
                    match endpoint::resolve_here(&settings.docker) {
                        Ok(ep) => ep,
                        Err(_) => return,
                    }
                }
            };
            let Ok(docker) = crate::backend::docker::client::connect(&ep) else {
                return;
            };
            let jobs = ids.into_iter().map(|id| {
                let docker = docker.clone();
                // The host may have died with a create in flight: what lands
                // after the first removal is removed too.
                async move {
                    crate::backend::docker::container::remove_all_settled(&docker, &id, LINGER)
                        .await
                }
            });
            futures_util::future::join_all(jobs).await;
        });
        futures_util::future::join_all(jobs).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol() {
        let mut ids = Guarded::new();
        apply(&mut ids, "+light-runner-0123456789ab");
        apply(&mut ids, "+light-runner-aaaaaaaaaaaa\n");
        apply(&mut ids, "+not-ours");
        apply(&mut ids, "-light-runner-0123456789ab");
        assert_eq!(
            ids,
            Guarded::from([("light-runner-aaaaaaaaaaaa".to_string(), None)])
        );
    }

    #[test]
    fn protocol_with_the_daemon_of_each_run() {
        use crate::backend::docker::endpoint::Source;
        let second = Endpoint::new(
            "unix:///tmp/docker2.sock",
            Source::CurrentContext("second".into()),
        );
        let remote = Endpoint::new("ssh://me@box:2222", Source::DockerHost);
        let mut ids = Guarded::new();
        // What guard() sends, read back.
        apply(
            &mut ids,
            &announcement("light-runner-000000000001", &second),
        );
        apply(
            &mut ids,
            &announcement("light-runner-000000000002", &remote),
        );
        apply(
            &mut ids,
            &announcement("light-runner-000000000003", &second),
        );
        // An old host's line, and a spec this version cannot read.
        apply(&mut ids, "+light-runner-000000000004");
        apply(&mut ids, "+light-runner-000000000005\t{garbage");
        apply(&mut ids, "+bad-id\t{}");
        apply(&mut ids, "-light-runner-000000000003");
        assert_eq!(ids.len(), 4);
        assert_eq!(ids["light-runner-000000000001"], Some(second.clone()));
        assert_eq!(ids["light-runner-000000000002"], Some(remote.clone()));
        assert_eq!(ids["light-runner-000000000004"], None);
        assert_eq!(ids["light-runner-000000000005"], None);
        let mut groups = by_daemon(ids);
        for v in groups.values_mut() {
            v.sort();
        }
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[&Some(second)], ["light-runner-000000000001"]);
        assert_eq!(groups[&Some(remote)], ["light-runner-000000000002"]);
        assert_eq!(
            groups[&None],
            ["light-runner-000000000004", "light-runner-000000000005"]
        );
    }

    #[test]
    fn an_announcement_is_one_line() {
        use crate::backend::docker::endpoint::Source;
        let ep = Endpoint::new("unix:///a\nb", Source::DockerContext("x\ty".into()));
        let line = announcement("light-runner-000000000001", &ep);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\t').count(), 1);
    }

    #[test]
    fn serve_returns_at_eof_with_nothing_guarded() {
        let input = std::io::Cursor::new(
            b"+light-runner-0123456789ab\n-light-runner-0123456789ab\n".to_vec(),
        );
        serve(std::io::BufReader::new(input), None);
    }
}
