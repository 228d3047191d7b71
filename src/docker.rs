//! Reaching the Docker daemon: `DOCKER_HOST` (unix://, tcp://), TLS with
//! `DOCKER_TLS_VERIFY` + `DOCKER_CERT_PATH`, and a ping with a deadline.
//!
//! The environment is read at call time; one client per distinct setting is
//! kept, so runs share connections' setup cost without missing a change of
//! `DOCKER_HOST` made by the host program.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

use crate::errors::{Error, Result};

/// bollard's per-request timeout cuts long waits and uploads: lift it and
/// bound short operations with [`quick`] instead.
const CLIENT_TIMEOUT_SECS: u64 = 30 * 24 * 3600;
pub const PING_DEADLINE: Duration = Duration::from_secs(5);
/// Deadline for calls that should answer at once (create, start, kill, ...).
pub const QUICK_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Clone, PartialEq, Eq, Debug)]
struct Endpoint {
    host: String,
    tls: Option<PathBuf>,
}

fn endpoint_from_env() -> Endpoint {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
    let verify = std::env::var("DOCKER_TLS_VERIFY").unwrap_or_default();
    let tls = (!verify.is_empty() && verify != "0" && !host.starts_with("unix://")).then(|| {
        std::env::var("DOCKER_CERT_PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".docker")
            })
    });
    Endpoint { host, tls }
}

fn connect(ep: &Endpoint) -> Result<Docker, bollard::errors::Error> {
    let h = ep.host.as_str();
    if let Some(certs) = &ep.tls {
        return Docker::connect_with_ssl(
            h,
            &certs.join("key.pem"),
            &certs.join("cert.pem"),
            &certs.join("ca.pem"),
            CLIENT_TIMEOUT_SECS,
            API_DEFAULT_VERSION,
        );
    }
    if h.starts_with("unix://") {
        Docker::connect_with_unix(h, CLIENT_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else if h.starts_with("tcp://") || h.starts_with("http://") {
        Docker::connect_with_http(h, CLIENT_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else {
        Err(bollard::errors::Error::UnsupportedURISchemeError { uri: h.to_string() })
    }
}

static CLIENT: Mutex<Option<(Endpoint, Docker)>> = Mutex::new(None);

/// A client for the daemon the environment names now.
pub fn client() -> Result<Docker> {
    let ep = endpoint_from_env();
    let mut slot = CLIENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((cached, docker)) = slot.as_ref() {
        if *cached == ep {
            return Ok(docker.clone());
        }
    }
    let docker = connect(&ep).map_err(|source| Error::Connect {
        endpoint: ep.host.clone(),
        source,
    })?;
    *slot = Some((ep, docker.clone()));
    Ok(docker)
}

/// Pings the daemon within `deadline`.
pub async fn ping(docker: &Docker, deadline: Duration) -> Result<()> {
    match tokio::time::timeout(deadline, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(Error::Ping { source }),
        Err(_) => Err(Error::PingTimeout {
            ms: deadline.as_millis() as u64,
        }),
    }
}

/// A client that answered a ping.
pub async fn connected() -> Result<Docker> {
    let docker = client()?;
    ping(&docker, PING_DEADLINE).await?;
    Ok(docker)
}

/// Runs a call that should answer promptly, failing it after [`QUICK_DEADLINE`]
/// so a hung daemon cannot hang a run forever.
pub async fn quick<T>(
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, bollard::errors::Error> {
    match tokio::time::timeout(QUICK_DEADLINE, fut).await {
        Ok(r) => r,
        Err(_) => Err(bollard::errors::Error::RequestTimeoutError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_scheme_is_an_error() {
        let ep = Endpoint {
            host: "ftp://x".into(),
            tls: None,
        };
        assert!(connect(&ep).is_err());
    }
}
