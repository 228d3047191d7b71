//! The environment, read once per call into [`Settings`]: the only place
//! the package reads environment variables (the host program may change
//! them between calls; each call sees them as they are then).

use std::path::PathBuf;
use std::time::Duration;

/// Every environment variable the package reads, as read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `LIGHT_RUNNER_STATE_DIR`, else `~/.light-runner/state`.
    pub state_dir: PathBuf,
    /// `LIGHT_RUNNER_DAEMON_GRACE_MS` (default 120 s): how long a run rides
    /// out an unreachable daemon before it gives up.
    pub daemon_grace: Duration,
    /// `LIGHT_RUNNER_CLAIM_STALE_MS` (default 60 s): a finalization claim
    /// not refreshed for this long is taken over.
    pub claim_stale: Duration,
    /// `LIGHT_RUNNER_REAP_AGE_MS` (default 5 min).
    pub reap_age: Duration,
    /// `LIGHT_RUNNER_STATE_TTL_MS` (default 7 days).
    pub state_ttl: Duration,
    /// `LIGHT_RUNNER_MAX_STATES` (default 1000).
    pub max_states: usize,
    /// `LIGHT_RUNNER_CACHE_TTL_MS` (default 7 days).
    pub cache_ttl: Duration,
    /// `LIGHT_RUNNER_MAX_LOG_BYTES` (default 10 MiB): how much of a run's
    /// output is kept once its container is gone; 0 keeps nothing.
    pub max_kept_log_bytes: u64,
    /// `LIGHT_RUNNER_SECURITY_PROFILE`, as set (checked per run, where an
    /// invalid value rejects the run naming the variable).
    pub security_profile: Option<String>,
    /// `LIGHT_RUNNER_START_TIMEOUT_MS`: the bound on a container's create
    /// and start; it can only lower the default 120 s.
    pub start_timeout: Duration,
    /// What says where the Docker daemon is.
    pub docker: DockerEnv,
}

/// The variables that locate the Docker daemon, as the docker CLI reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerEnv {
    pub host: Option<String>,
    pub tls_verify: Option<String>,
    pub cert_path: Option<String>,
    pub context: Option<String>,
    pub config: Option<String>,
    pub home: Option<String>,
    pub xdg_runtime_dir: Option<String>,
    /// `LIGHT_RUNNER_SSH_ARGS`: extra arguments of every `ssh` command for
    /// `ssh://` endpoints (whitespace-separated, e.g. `-F /path/ssh_config`).
    pub ssh_args: Option<String>,
    /// `LIGHT_RUNNER_SSH_SESSIONS`: sessions per ssh connection (default 8,
    /// under sshd's default `MaxSessions 10`).
    pub ssh_sessions: Option<u32>,
}

pub const DEFAULT_DAEMON_GRACE: Duration = Duration::from_secs(120);
pub const DEFAULT_CLAIM_STALE: Duration = Duration::from_secs(60);
pub const DEFAULT_REAP_AGE: Duration = Duration::from_secs(300);
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_MAX_STATES: usize = 1000;
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_MAX_KEPT_LOG_BYTES: u64 = 10 << 20;
/// The bound on create and start (a runtime that never returns).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(120);

impl Settings {
    /// The process environment, now.
    pub fn from_env() -> Self {
        Settings::from_vars(|name| std::env::var(name).ok())
    }

    /// Settings from any source of variables (tests give a map).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let nonempty = |name: &str| get(name).filter(|v| !v.is_empty());
        let number = |name: &str| nonempty(name).and_then(|v| v.trim().parse::<u64>().ok());
        let ms =
            |name: &str, default: Duration| number(name).map_or(default, Duration::from_millis);
        let home = nonempty("HOME");
        let state_dir = match nonempty("LIGHT_RUNNER_STATE_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(home.clone().unwrap_or_else(|| "/tmp".into()))
                .join(".light-runner")
                .join("state"),
        };
        Settings {
            state_dir,
            daemon_grace: ms("LIGHT_RUNNER_DAEMON_GRACE_MS", DEFAULT_DAEMON_GRACE),
            claim_stale: number("LIGHT_RUNNER_CLAIM_STALE_MS")
                .filter(|ms| *ms > 0)
                .map_or(DEFAULT_CLAIM_STALE, Duration::from_millis),
            reap_age: ms("LIGHT_RUNNER_REAP_AGE_MS", DEFAULT_REAP_AGE),
            state_ttl: ms("LIGHT_RUNNER_STATE_TTL_MS", DEFAULT_STATE_TTL),
            max_states: number("LIGHT_RUNNER_MAX_STATES")
                .map_or(DEFAULT_MAX_STATES, |n| n.min(usize::MAX as u64) as usize),
            cache_ttl: ms("LIGHT_RUNNER_CACHE_TTL_MS", DEFAULT_CACHE_TTL),
            max_kept_log_bytes: number("LIGHT_RUNNER_MAX_LOG_BYTES")
                .unwrap_or(DEFAULT_MAX_KEPT_LOG_BYTES),
            security_profile: nonempty(crate::config::security::PROFILE_VAR),
            start_timeout: number("LIGHT_RUNNER_START_TIMEOUT_MS")
                .filter(|ms| *ms > 0)
                .map_or(DEFAULT_START_TIMEOUT, |ms| {
                    Duration::from_millis(ms).min(DEFAULT_START_TIMEOUT)
                }),
            docker: DockerEnv {
                host: nonempty("DOCKER_HOST"),
                tls_verify: get("DOCKER_TLS_VERIFY"),
                cert_path: nonempty("DOCKER_CERT_PATH"),
                context: nonempty("DOCKER_CONTEXT"),
                config: nonempty("DOCKER_CONFIG"),
                home,
                xdg_runtime_dir: nonempty("XDG_RUNTIME_DIR"),
                ssh_args: nonempty("LIGHT_RUNNER_SSH_ARGS"),
                ssh_sessions: number("LIGHT_RUNNER_SSH_SESSIONS")
                    .map(|n| n.min(u64::from(u32::MAX)) as u32),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = settings(&[("HOME", "/home/u")]);
        assert_eq!(s.state_dir, PathBuf::from("/home/u/.light-runner/state"));
        assert_eq!(s.daemon_grace, DEFAULT_DAEMON_GRACE);
        assert_eq!(s.claim_stale, DEFAULT_CLAIM_STALE);
        assert_eq!(s.reap_age, DEFAULT_REAP_AGE);
        assert_eq!(s.max_states, 1000);
        assert_eq!(s.max_kept_log_bytes, 10 << 20);
        assert_eq!(s.docker.host, None);
        assert_eq!(s.security_profile, None);
        assert_eq!(s.start_timeout, DEFAULT_START_TIMEOUT);
        assert_eq!(
            settings(&[]).state_dir,
            PathBuf::from("/tmp/.light-runner/state")
        );
    }

    #[test]
    fn values_and_bad_values() {
        let s = settings(&[
            ("LIGHT_RUNNER_STATE_DIR", "/s"),
            ("LIGHT_RUNNER_DAEMON_GRACE_MS", " 1500 "),
            ("LIGHT_RUNNER_CLAIM_STALE_MS", "0"),
            ("LIGHT_RUNNER_REAP_AGE_MS", "soon"),
            ("LIGHT_RUNNER_MAX_LOG_BYTES", "0"),
            ("DOCKER_HOST", ""),
            ("DOCKER_TLS_VERIFY", ""),
            ("LIGHT_RUNNER_SECURITY_PROFILE", "restricted"),
            ("LIGHT_RUNNER_START_TIMEOUT_MS", "5000"),
        ]);
        assert_eq!(s.security_profile.as_deref(), Some("restricted"));
        assert_eq!(s.start_timeout, Duration::from_millis(5000));
        let only_lowers = settings(&[("LIGHT_RUNNER_START_TIMEOUT_MS", "999999999")]);
        assert_eq!(only_lowers.start_timeout, DEFAULT_START_TIMEOUT);
        let zero = settings(&[("LIGHT_RUNNER_START_TIMEOUT_MS", "0")]);
        assert_eq!(
            zero.start_timeout, DEFAULT_START_TIMEOUT,
            "0 is no bound: the default"
        );
        assert_eq!(s.state_dir, PathBuf::from("/s"));
        assert_eq!(s.daemon_grace, Duration::from_millis(1500));
        assert_eq!(s.claim_stale, DEFAULT_CLAIM_STALE, "0 is no staleness");
        assert_eq!(s.reap_age, DEFAULT_REAP_AGE);
        assert_eq!(s.max_kept_log_bytes, 0);
        assert_eq!(s.docker.host, None, "an empty DOCKER_HOST is unset");
        assert_eq!(s.docker.tls_verify.as_deref(), Some(""), "set, even empty");
    }
}
