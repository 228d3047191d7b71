//! Warm containers on Docker: a container created and started before any
//! run wants it, idle under Docker's init, waiting on its stdin for the job.
//!
//! The idle process is the image's own `sh`, reading lines with builtins
//! until a token only its owner knows, then `eval`ing them: the job is
//! `exec sh -c <command>` with its env exported, so it becomes the
//! container's main process (init's child: signals reach it, its exit is
//! the container's exit, its output is the container's log, OOM is the
//! container's), exactly as a cold run's. What follows the token on stdin
//! is the job's stdin (`input`), then EOF.

use bollard::models::ContainerCreateBody;

use super::labels::WARM_LABEL;
use super::spec::create_body;
use crate::config::{Hardening, RunRequest, RunnerConfig};

/// The idle script: read the job up to the line `token`, then run it. An
/// EOF first (the container is being let go) ends it quietly.
pub fn idle_script(token: &str) -> String {
    format!(
        "s=; while :; do IFS= read -r l || exit 0; [ \"$l\" = {token} ] && break; \
         s=\"$s$l\n\"; done; eval \"$s\""
    )
}

/// `'...'` for sh: anything but `'` is literal between single quotes.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What the warm container is sent: the job's env exported, its command
/// exec'd by `sh -c` (as a cold run's `Entrypoint sh, Cmd -c command`),
/// then the token line. The job's stdin follows.
pub fn job_script(env: &[(String, String)], command: &str, token: &str) -> String {
    let mut s = String::new();
    for (k, v) in env {
        // Names are checked identifiers; values may hold anything.
        s.push_str(&format!("export {k}={}\n", sh_quote(v)));
    }
    s.push_str(&format!("exec sh -c {}\n", sh_quote(command)));
    s.push_str(token);
    s.push('\n');
    s
}

/// The create body of a warm container: the run's own hardened body for
/// its shape (`shape`: image, networks, workdir; no env, no command), with
/// the idle script as its command, stdin open, Docker's init as PID 1, and
/// its owner's label.
#[allow(clippy::too_many_arguments)]
pub fn warm_body(
    id: &str,
    cfg: &RunnerConfig,
    h: &Hardening,
    shape: &RunRequest,
    image: &str,
    network_mode: &str,
    token: &str,
    owner: &str,
) -> ContainerCreateBody {
    let mut req = shape.clone();
    req.command = Some(idle_script(token));
    req.env = Vec::new();
    // Stdin open and attachable once: the job and its input come through it.
    req.input = Some(String::new());
    req.detached = false;
    let mut body = create_body(id, cfg, h, &req, image, network_mode);
    if let Some(l) = body.labels.as_mut() {
        l.insert(WARM_LABEL.to_string(), owner.to_string());
    }
    if let Some(hc) = body.host_config.as_mut() {
        hc.init = Some(true);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_script_quotes_everything_and_ends_with_the_token() {
        let env = vec![
            ("A".to_string(), "it's\nmulti-line $HOME `x`".to_string()),
            ("B".to_string(), String::new()),
        ];
        let s = job_script(&env, "echo 'hi' && exit 3", "tok123");
        assert_eq!(
            s,
            "export A='it'\\''s\nmulti-line $HOME `x`'\nexport B=''\nexec sh -c 'echo '\\''hi'\\'' && exit 3'\ntok123\n"
        );
        assert!(idle_script("tok123").contains("= tok123 ]"));
    }

    #[test]
    fn a_warm_body_is_the_runs_own_with_an_idle_command_under_init() {
        let mut shape = RunRequest::new("img");
        shape.env = vec![("SECRET".into(), "x".into())];
        let cfg = RunnerConfig::default();
        let h =
            crate::config::security::harden(&cfg.security, cfg.no_new_privileges, None).unwrap();
        let b = warm_body(
            "light-runner-0123456789ab",
            &cfg,
            &h,
            &shape,
            "img",
            "net",
            "tok",
            "host:1",
        );
        assert_eq!(b.entrypoint.unwrap(), vec!["sh"]);
        assert_eq!(b.cmd.as_ref().unwrap()[0], "-c");
        assert_eq!(
            b.env.unwrap(),
            Vec::<String>::new(),
            "no env before the job"
        );
        assert_eq!(b.open_stdin, Some(true));
        assert_eq!(b.stdin_once, Some(true));
        let hc = b.host_config.unwrap();
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.pids_limit, Some(100), "the same hardening");
        assert_eq!(
            b.labels.unwrap().get(WARM_LABEL).map(String::as_str),
            Some("host:1")
        );
    }
}
