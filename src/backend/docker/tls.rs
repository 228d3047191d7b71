//! TLS to a daemon (`tcp://` with `DOCKER_TLS_VERIFY` + `DOCKER_CERT_PATH`),
//! as the docker CLI does it: the server is verified against `ca.pem` only
//! (the CLI's exclusive root pool), and `cert.pem` + `key.pem` are the client
//! certificate when both are there.
//!
//! Built here on rustls (ring) through bollard's custom transport rather
//! than bollard's `ssl` feature: that feature always links
//! `rustls-native-certs`, whose macOS side needs the Security and
//! CoreFoundation frameworks, which a cross build (zig) cannot link. One
//! implementation on every platform, so the Linux TLS test covers macOS's.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bollard::errors::Error as DockerError;
use bollard::{BollardRequest, ClientVersion, Docker};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn read_err(path: &Path, e: impl std::fmt::Display) -> DockerError {
    DockerError::IOError {
        err: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("TLS material {}: {e}", path.display()),
        ),
    }
}

/// The rustls client configuration for a `DOCKER_CERT_PATH` folder.
fn config(certs: &Path) -> Result<rustls::ClientConfig, DockerError> {
    let ca_path = certs.join("ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&ca_path)
        .map_err(|e| read_err(&ca_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(&ca_path, e))?;
    let (added, _) = roots.add_parsable_certificates(cas);
    if added == 0 {
        return Err(read_err(&ca_path, "no CA certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| read_err(certs, e))?
        .with_root_certificates(roots);
    let (cert_path, key_path) = (certs.join("cert.pem"), certs.join("key.pem"));
    if !cert_path.exists() && !key_path.exists() {
        return Ok(builder.with_no_client_auth());
    }
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| read_err(&cert_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(&cert_path, e))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| read_err(&key_path, e))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| read_err(&key_path, e))
}

/// A client for `host` (`tcp://h:p` or `https://h:p`) over TLS with the
/// material in `certs`.
pub fn connect(
    host: &str,
    certs: &Path,
    timeout: u64,
    version: &ClientVersion,
) -> Result<Docker, DockerError> {
    let addr = host.replacen("tcp://", "", 1).replacen("https://", "", 1);
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https: HttpsConnector<HttpConnector> = HttpsConnector::from((http, config(certs)?));
    let mut builder = Client::builder(TokioExecutor::new());
    // A new connection per request, as bollard's own transports do.
    builder.pool_max_idle_per_host(0);
    let client = Arc::new(builder.build(https));
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = client.clone();
            async move { client.request(req).await.map_err(DockerError::from) }
        },
        Some(format!("https://{addr}")),
        timeout,
        version,
    )
}
