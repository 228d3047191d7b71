//! The timings of runs and reclaimers: constants and the environment's
//! settings in production, short ones in tests (which set the fields).

use std::time::Duration;

use super::Settings;

/// The timings of runs and reclaimers, and what else a run takes from the
/// environment (the default security profile).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// How long a run rides out an unreachable daemon.
    pub daemon_grace: Duration,
    /// A finalization claim not refreshed for this long is taken over.
    pub claim_stale: Duration,
    /// How long a run whose launcher died in setup is watched for late
    /// creates after its removal.
    pub setup_linger: Duration,
    /// How long a container may stay absent when nobody is setting it up.
    pub absence_grace: Duration,
    /// How long a killed container may keep running before the kill is
    /// sent again.
    pub kill_retry: Duration,
    /// How often a process that cannot notify (a launcher setting a run up,
    /// the host of an attached run, a claim's holder) is checked again.
    pub process_poll: Duration,
    /// How long an attach to a finished run waits for what its finalizer
    /// left to be removed.
    pub sweep_for: Duration,
    /// Longest setup trusted from a launcher whose liveness cannot be checked.
    pub remote_setup: Duration,
    pub reap_age: Duration,
    pub state_ttl: Duration,
    pub max_states: usize,
    pub cache_ttl: Duration,
    /// How much of a run's output is kept beside its state.
    pub max_kept_log_bytes: u64,
    /// The bound on a container's create and start.
    pub start_timeout: Duration,
    /// `LIGHT_RUNNER_SECURITY_PROFILE` as read for this call: the profile
    /// of runs whose runner does not name one.
    pub security_profile: Option<String>,
}

impl Limits {
    /// The production timings, with the environment's settings.
    pub fn new(s: &Settings) -> Self {
        Limits {
            daemon_grace: s.daemon_grace,
            claim_stale: s.claim_stale,
            setup_linger: Duration::from_secs(5),
            absence_grace: Duration::from_secs(3),
            kill_retry: Duration::from_secs(5),
            process_poll: Duration::from_secs(1),
            sweep_for: Duration::from_secs(5),
            remote_setup: Duration::from_secs(30 * 60),
            reap_age: s.reap_age,
            state_ttl: s.state_ttl,
            max_states: s.max_states,
            cache_ttl: s.cache_ttl,
            max_kept_log_bytes: s.max_kept_log_bytes,
            start_timeout: s.start_timeout,
            security_profile: s.security_profile.clone(),
        }
    }

    /// How often a finalizer refreshes its claim: six times per staleness.
    pub fn heartbeat(&self) -> Duration {
        (self.claim_stale / 6).max(Duration::from_millis(1))
    }
}
