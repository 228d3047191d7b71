//! Reaching the Docker daemon: a client for an [`Endpoint`] (found by
//! `endpoint.rs`: unix://, tcp:// with or without TLS, ssh://), and a ping
//! with a deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

use crate::errors::{ConnectError, Error, Result};

pub use super::endpoint::Endpoint;

/// bollard's per-request timeout cuts long waits and uploads: lift it and
/// bound short operations with [`quick`] instead.
const CLIENT_TIMEOUT_SECS: u64 = 30 * 24 * 3600;
pub const PING_DEADLINE: Duration = Duration::from_secs(5);
/// Deadline for calls that should answer at once (create, start, kill, ...).
pub const QUICK_DEADLINE: Duration = Duration::from_secs(120);

/// A client for `ep` (no request is made).
pub fn connect(ep: &Endpoint) -> Result<Docker> {
    connect_with_pool(ep).map(|(docker, _)| docker)
}

/// A client for `ep`, and for `ssh://` its pool of ssh connections (which
/// pings go through: see [`super::ssh::Pool::ping`]).
pub fn connect_with_pool(ep: &Endpoint) -> Result<(Docker, Option<Arc<super::ssh::Pool>>)> {
    connect_raw(ep).map_err(|source| Error::Connect {
        at: ep.describe(),
        source,
    })
}

fn connect_raw(ep: &Endpoint) -> Result<(Docker, Option<Arc<super::ssh::Pool>>), ConnectError> {
    let h = ep.host.as_str();
    if h.starts_with("ssh://") {
        return super::ssh::connect(h, ep.ssh.as_ref(), CLIENT_TIMEOUT_SECS)
            .map(|(docker, pool)| (docker, Some(pool)))
            .map_err(ConnectError::Invalid);
    }
    connect_direct(ep).map(|docker| (docker, None))
}

fn connect_direct(ep: &Endpoint) -> Result<Docker, ConnectError> {
    let h = ep.host.as_str();
    if ep.skip_tls_verify && !h.starts_with("unix://") {
        return Err(ConnectError::Invalid(
            "the context sets SkipTLSVerify, which light-runner does not support: \
             give the context the daemon's CA (ca.pem) instead"
                .into(),
        ));
    }
    if let Some(certs) = &ep.tls {
        return super::tls::connect(h, certs, CLIENT_TIMEOUT_SECS, API_DEFAULT_VERSION)
            .map_err(ConnectError::Docker);
    }
    if h.starts_with("unix://") {
        Docker::connect_with_unix(h, CLIENT_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else if h.starts_with("tcp://") || h.starts_with("http://") {
        Docker::connect_with_http(h, CLIENT_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else {
        Err(bollard::errors::Error::UnsupportedURISchemeError { uri: h.to_string() })
    }
    .map_err(ConnectError::Docker)
}

/// Pings the daemon within `deadline`.
/// Pings the daemon of `ep` through its ssh pool: `deadline` counts from
/// when the ssh session is up.
pub async fn ping_ssh(pool: &super::ssh::Pool, ep: &Endpoint, deadline: Duration) -> Result<()> {
    match pool.ping(deadline).await {
        Ok(()) => Ok(()),
        Err(super::ssh::PingError::Failed(err)) => Err(Error::Ping {
            at: ep.describe(),
            source: bollard::errors::Error::IOError { err },
        }),
        Err(super::ssh::PingError::Timeout) => Err(Error::PingTimeout {
            at: ep.describe(),
            ms: deadline.as_millis() as u64,
        }),
    }
}

/// Pings the daemon of `ep` within `deadline`.
pub async fn ping(docker: &Docker, ep: &Endpoint, deadline: Duration) -> Result<()> {
    match tokio::time::timeout(deadline, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(Error::Ping {
            at: ep.describe(),
            source,
        }),
        Err(_) => Err(Error::PingTimeout {
            at: ep.describe(),
            ms: deadline.as_millis() as u64,
        }),
    }
}

/// Runs a call that should answer promptly, failing it after [`QUICK_DEADLINE`]
/// so a hung daemon cannot hang a run forever.
pub async fn quick<T>(
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, bollard::errors::Error> {
    within(QUICK_DEADLINE, fut).await
}

/// Runs a call, failing it after `deadline` (a timeout is a transport error).
pub async fn within<T>(
    deadline: std::time::Duration,
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, bollard::errors::Error> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(bollard::errors::Error::RequestTimeoutError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::docker::endpoint::Source;

    #[test]
    fn unsupported_scheme_is_an_error_naming_the_endpoint() {
        let ep = Endpoint::new("ftp://x", Source::DockerContext("weird".into()));
        let e = connect(&ep).unwrap_err();
        assert!(
            e.to_string()
                .contains("ftp://x (from DOCKER_CONTEXT=weird)"),
            "{e}"
        );
    }

    /// Replaces the e2e run of more than 2 minutes: bollard cuts every
    /// request at 120 s by default (until its response headers), which
    /// would cut a long attach or a slow upload; the package lifts it and
    /// bounds the calls that should answer at once with `quick` instead.
    #[tokio::test]
    async fn requests_are_not_cut_at_bollards_two_minutes() {
        // A missing socket fails at connect; an existing path is enough.
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("d.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let ep = Endpoint::new(format!("unix://{}", sock.display()), Source::DefaultSocket);
        let d = connect(&ep).unwrap();
        assert!(
            d.timeout() >= Duration::from_secs(30 * 24 * 3600),
            "{:?}",
            d.timeout()
        );
        let tcp = Endpoint::new("tcp://127.0.0.1:1", Source::DockerHost);
        assert!(connect(&tcp).unwrap().timeout() >= Duration::from_secs(30 * 24 * 3600));
        // The quick bound is what ends a call that hangs.
        let hung = quick(std::future::pending::<Result<(), bollard::errors::Error>>());
        tokio::time::pause();
        let r = tokio::time::timeout(QUICK_DEADLINE + Duration::from_secs(1), hung).await;
        assert!(matches!(
            r,
            Ok(Err(bollard::errors::Error::RequestTimeoutError))
        ));
    }

    #[test]
    fn a_bad_ssh_url_is_an_error() {
        let ep = Endpoint::new("ssh://me@box/path", Source::DockerHost);
        let e = connect(&ep).unwrap_err().to_string();
        assert!(e.contains("ssh://me@box/path (from DOCKER_HOST)"), "{e}");
        assert!(e.contains("extra path"), "{e}");
    }

    #[test]
    fn skip_tls_verify_is_refused_clearly() {
        let mut ep = Endpoint::new("tcp://h:2376", Source::CurrentContext("c".into()));
        ep.skip_tls_verify = true;
        let e = connect(&ep).unwrap_err().to_string();
        assert!(e.contains("SkipTLSVerify"), "{e}");
    }
}
