//! Where the Docker daemon is: found the way the docker CLI finds it, plus
//! the sockets of rootless Docker and Docker Desktop where the default
//! socket is missing.
//!
//! In order:
//! 1. `DOCKER_HOST` (with `DOCKER_TLS_VERIFY` / `DOCKER_CERT_PATH` for TLS);
//! 2. `DOCKER_CONTEXT`;
//! 3. the `currentContext` of `$DOCKER_CONFIG/config.json` (else
//!    `~/.docker/config.json`);
//! 4. `/var/run/docker.sock`;
//! 5. where that socket is missing: `$XDG_RUNTIME_DIR/docker.sock` (rootless
//!    Docker), then `~/.docker/run/docker.sock` (Docker Desktop).
//!
//! A context is read from `<config>/contexts/meta/<sha256 of its name>/meta.json`
//! (`Endpoints.docker.Host`, `SkipTLSVerify`); its TLS material, when there is
//! some, from `<config>/contexts/tls/<sha256>/docker/{ca,cert,key}.pem`. The
//! context name `default` means no context (steps 1, 4, 5).
//!
//! [`resolve`] is a pure function of the environment (as `config::env` read
//! it) and a filesystem root (`/` in production, a temporary directory in
//! tests): every step is unit-tested.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::env::DockerEnv;

/// The socket of a daemon installed the usual way.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Sessions a private ssh master carries at most: sshd's `MaxSessions`
/// defaults to 10; a margin is kept for sessions still closing on the
/// server when new ones open.
pub const DEFAULT_SSH_SESSIONS: u32 = 8;

/// How an endpoint was found, for messages and `light-runner doctor`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(tag = "kind", content = "context", rename_all = "kebab-case")]
pub enum Source {
    /// `DOCKER_HOST`.
    DockerHost,
    /// `DOCKER_CONTEXT=<name>`.
    DockerContext(String),
    /// `currentContext` of the docker CLI's config.json.
    CurrentContext(String),
    /// `/var/run/docker.sock`, the default (also when nothing else exists).
    #[default]
    DefaultSocket,
    /// `$XDG_RUNTIME_DIR/docker.sock`: rootless Docker.
    Rootless,
    /// `~/.docker/run/docker.sock`: Docker Desktop.
    DockerDesktop,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::DockerHost => f.write_str("DOCKER_HOST"),
            Source::DockerContext(n) => write!(f, "DOCKER_CONTEXT={n}"),
            Source::CurrentContext(n) => write!(f, "currentContext={n}"),
            Source::DefaultSocket => f.write_str("default socket"),
            Source::Rootless => f.write_str("rootless socket $XDG_RUNTIME_DIR/docker.sock"),
            Source::DockerDesktop => f.write_str("Docker Desktop socket ~/.docker/run/docker.sock"),
        }
    }
}

/// How `ssh://` endpoints are reached (see `ssh.rs`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct SshOptions {
    /// Extra arguments for every `ssh` command (`LIGHT_RUNNER_SSH_ARGS`),
    /// placed before the destination, e.g. `-F /path/ssh_config`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Sessions per ssh connection (`LIGHT_RUNNER_SSH_SESSIONS`).
    pub sessions: u32,
}

/// Where the daemon is, how to talk to it, and how it was found.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    /// `unix://...`, `tcp://...`, `http://...` or `ssh://...`.
    pub host: String,
    /// The directory of `ca.pem`, `cert.pem` and `key.pem` for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PathBuf>,
    /// A context's `SkipTLSVerify`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_tls_verify: bool,
    /// For `ssh://` hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshOptions>,
    #[serde(default)]
    pub source: Source,
}

impl Endpoint {
    /// An endpoint given as it is (tests, tools).
    pub fn new(host: impl Into<String>, source: Source) -> Self {
        Endpoint {
            host: host.into(),
            tls: None,
            skip_tls_verify: false,
            ssh: None,
            source,
        }
    }

    /// `unix:///x.sock (from DOCKER_CONTEXT=foo)`: what messages name.
    pub fn describe(&self) -> String {
        format!("{} (from {})", self.host, self.source)
    }

    /// One line for the watchdog's pipe (no tab, no newline: JSON escapes
    /// both).
    pub fn to_spec(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_spec(spec: &str) -> Option<Self> {
        serde_json::from_str(spec).ok()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A context the environment names that cannot be used.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("Docker context {name:?} (from {from}) not found: {}", describe_missing(.meta))]
    UnknownContext {
        name: String,
        from: Source,
        /// Where its metadata was looked for (none without a config dir).
        meta: Option<PathBuf>,
    },
    #[error("Docker context {name:?} (from {from}) is unusable: {}: {reason}", .meta.display())]
    BadContext {
        name: String,
        from: Source,
        meta: PathBuf,
        reason: String,
    },
}

impl ResolveError {
    /// The context named.
    pub fn context(&self) -> &str {
        match self {
            ResolveError::UnknownContext { name, .. } | ResolveError::BadContext { name, .. } => {
                name
            }
        }
    }
}

impl From<ResolveError> for crate::errors::Error {
    fn from(e: ResolveError) -> Self {
        crate::errors::Error::NoEndpoint {
            context: e.context().to_string(),
            message: e.to_string(),
        }
    }
}

fn describe_missing(meta: &Option<PathBuf>) -> String {
    match meta {
        Some(p) => format!("no {}", p.display()),
        None => "no docker config dir (neither DOCKER_CONFIG nor HOME is set)".to_string(),
    }
}

/// The sha256 hex of a context name: its directory under `contexts/`.
pub fn context_dir_name(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `path` as seen under `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    if root == Path::new("/") {
        return path.to_path_buf();
    }
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn exists(root: &Path, path: &Path) -> bool {
    // Follows links: a dangling link (a Docker Desktop that was removed)
    // counts as missing.
    std::fs::metadata(under(root, path)).is_ok()
}

/// The docker CLI's config dir: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir(env: &DockerEnv) -> Option<PathBuf> {
    env.config
        .as_ref()
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| Path::new(h).join(".docker")))
}

/// The `currentContext` of config.json. A config that cannot be read or
/// parsed is ignored, as the docker CLI does (it only warns).
fn current_context(root: &Path, config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(under(root, &config.join("config.json"))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("currentContext")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn ssh_options(env: &DockerEnv, host: &str) -> Option<SshOptions> {
    host.starts_with("ssh://").then(|| SshOptions {
        args: env
            .ssh_args
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        sessions: env
            .ssh_sessions
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_SSH_SESSIONS),
    })
}

/// The endpoint `DOCKER_HOST` names, with TLS when `DOCKER_TLS_VERIFY` is
/// set (not empty, not `0`) off unix.
fn from_docker_host(env: &DockerEnv, host: &str) -> Endpoint {
    let verify = env.tls_verify.as_deref().unwrap_or_default();
    let tls = (!verify.is_empty() && verify != "0" && !host.starts_with("unix://")).then(|| {
        env.cert_path
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env.home.clone().unwrap_or_default()).join(".docker"))
    });
    Endpoint {
        host: host.to_string(),
        tls,
        skip_tls_verify: false,
        ssh: ssh_options(env, host),
        source: Source::DockerHost,
    }
}

/// A context's docker endpoint, from its metadata.
fn from_context(
    env: &DockerEnv,
    root: &Path,
    name: &str,
    from: Source,
) -> Result<Endpoint, ResolveError> {
    let Some(config) = config_dir(env) else {
        return Err(ResolveError::UnknownContext {
            name: name.into(),
            from,
            meta: None,
        });
    };
    let hash = context_dir_name(name);
    let meta = config
        .join("contexts")
        .join("meta")
        .join(&hash)
        .join("meta.json");
    let bad = |reason: String| ResolveError::BadContext {
        name: name.into(),
        from: from.clone(),
        meta: meta.clone(),
        reason,
    };
    let text = match std::fs::read_to_string(under(root, &meta)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ResolveError::UnknownContext {
                name: name.into(),
                from,
                meta: Some(meta),
            })
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let docker = v
        .get("Endpoints")
        .and_then(|e| e.get("docker"))
        .ok_or_else(|| bad("no Endpoints.docker".into()))?;
    let host = docker
        .get("Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no Endpoints.docker.Host".into()))?;
    let skip_tls_verify = docker
        .get("SkipTLSVerify")
        .and_then(|s| s.as_bool())
        .unwrap_or(false);
    let tls_dir = config
        .join("contexts")
        .join("tls")
        .join(&hash)
        .join("docker");
    let has_tls = ["ca.pem", "cert.pem", "key.pem"]
        .iter()
        .any(|f| exists(root, &tls_dir.join(f)));
    Ok(Endpoint {
        host: host.to_string(),
        tls: (has_tls && !host.starts_with("unix://")).then_some(tls_dir),
        skip_tls_verify,
        ssh: ssh_options(env, host),
        source: from,
    })
}

/// Steps 4 and 5: the default socket, else the rootless one, else Docker
/// Desktop's; the default socket when none exists (the error then names it).
fn local_socket(env: &DockerEnv, root: &Path) -> Endpoint {
    let default = Path::new(DEFAULT_SOCKET);
    let mut candidates: Vec<(PathBuf, Source)> =
        vec![(default.to_path_buf(), Source::DefaultSocket)];
    if let Some(xdg) = &env.xdg_runtime_dir {
        candidates.push((Path::new(xdg).join("docker.sock"), Source::Rootless));
    }
    if let Some(home) = &env.home {
        candidates.push((
            Path::new(home)
                .join(".docker")
                .join("run")
                .join("docker.sock"),
            Source::DockerDesktop,
        ));
    }
    let (path, source) = candidates
        .into_iter()
        .find(|(p, _)| exists(root, p))
        .unwrap_or((default.to_path_buf(), Source::DefaultSocket));
    Endpoint::new(format!("unix://{}", path.display()), source)
}

/// The daemon's endpoint as the docker CLI would find it (see the module's
/// doc), looking at files under `root`.
pub fn resolve(env: &DockerEnv, root: &Path) -> Result<Endpoint, ResolveError> {
    if let Some(host) = &env.host {
        return Ok(from_docker_host(env, host));
    }
    let named = match &env.context {
        Some(name) => Some((name.clone(), Source::DockerContext(name.clone()))),
        None => config_dir(env)
            .and_then(|c| current_context(root, &c))
            .map(|name| (name.clone(), Source::CurrentContext(name))),
    };
    match named {
        Some((name, from)) if name != "default" => from_context(env, root, &name, from),
        _ => Ok(local_socket(env, root)),
    }
}

/// The endpoint of this machine's filesystem.
pub fn resolve_here(env: &DockerEnv) -> Result<Endpoint, ResolveError> {
    resolve(env, Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Root {
        dir: tempfile::TempDir,
    }

    impl Root {
        fn new() -> Self {
            Root {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self) -> &Path {
            self.dir.path()
        }
        /// Writes `text` at the absolute path `p` under the root.
        fn write(&self, p: &str, text: &str) {
            let full = under(self.path(), Path::new(p));
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, text).unwrap();
        }
        fn socket(&self, p: &str) {
            self.write(p, "");
        }
        fn context(&self, config: &str, name: &str, host: &str, skip: bool) {
            self.write(
                &format!(
                    "{config}/contexts/meta/{}/meta.json",
                    context_dir_name(name)
                ),
                &serde_json::json!({
                    "Name": name,
                    "Metadata": {},
                    "Endpoints": { "docker": { "Host": host, "SkipTLSVerify": skip } }
                })
                .to_string(),
            );
        }
        fn resolve(&self, env: &DockerEnv) -> Result<Endpoint, ResolveError> {
            resolve(env, self.path())
        }
    }

    fn home(h: &str) -> DockerEnv {
        DockerEnv {
            home: Some(h.into()),
            ..Default::default()
        }
    }

    #[test]
    fn context_dirs_are_the_sha256_of_the_name() {
        // As `docker context create foo` names it.
        assert_eq!(
            context_dir_name("foo"),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
    }

    #[test]
    fn step1_docker_host_wins_over_everything() {
        let r = Root::new();
        r.socket("/var/run/docker.sock");
        r.context("/home/u/.docker", "foo", "unix:///foo.sock", false);
        r.write("/home/u/.docker/config.json", r#"{"currentContext":"foo"}"#);
        let mut env = home("/home/u");
        env.host = Some("tcp://h:2375".into());
        env.context = Some("foo".into());
        let ep = r.resolve(&env).unwrap();
        assert_eq!(ep.host, "tcp://h:2375");
        assert_eq!(ep.source, Source::DockerHost);
        assert_eq!(ep.tls, None);
        assert_eq!(ep.describe(), "tcp://h:2375 (from DOCKER_HOST)");
    }

    #[test]
    fn step1_tls_from_the_environment() {
        let r = Root::new();
        let mut env = home("/home/u");
        env.host = Some("tcp://h:2376".into());
        env.tls_verify = Some("1".into());
        assert_eq!(
            r.resolve(&env).unwrap().tls,
            Some(PathBuf::from("/home/u/.docker"))
        );
        env.cert_path = Some("/certs".into());
        assert_eq!(r.resolve(&env).unwrap().tls, Some(PathBuf::from("/certs")));
        env.tls_verify = Some("0".into());
        assert_eq!(r.resolve(&env).unwrap().tls, None);
        env.tls_verify = Some("1".into());
        env.host = Some("unix:///s.sock".into());
        assert_eq!(r.resolve(&env).unwrap().tls, None, "never on unix");
    }

    #[test]
    fn step2_docker_context_names_a_context() {
        let r = Root::new();
        r.socket("/var/run/docker.sock");
        r.context("/home/u/.docker", "foo", "unix:///x.sock", false);
        r.context("/home/u/.docker", "bar", "unix:///bar.sock", false);
        r.write("/home/u/.docker/config.json", r#"{"currentContext":"bar"}"#);
        let mut env = home("/home/u");
        env.context = Some("foo".into());
        let ep = r.resolve(&env).unwrap();
        assert_eq!(ep.host, "unix:///x.sock");
        assert_eq!(ep.source, Source::DockerContext("foo".into()));
        assert_eq!(ep.describe(), "unix:///x.sock (from DOCKER_CONTEXT=foo)");
    }

    #[test]
    fn step2_unknown_context_is_an_error_naming_it() {
        let r = Root::new();
        r.socket("/var/run/docker.sock");
        let mut env = home("/home/u");
        env.context = Some("nope".into());
        let e = r.resolve(&env).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ResolveError::UnknownContext { .. }), "{e:?}");
        assert!(msg.contains("\"nope\""), "{msg}");
        assert!(msg.contains("DOCKER_CONTEXT=nope"), "{msg}");
        assert!(msg.contains(&context_dir_name("nope")), "{msg}");
        // No config dir at all.
        let env = DockerEnv {
            context: Some("nope".into()),
            ..Default::default()
        };
        let msg = r.resolve(&env).unwrap_err().to_string();
        assert!(msg.contains("neither DOCKER_CONFIG nor HOME"), "{msg}");
    }

    #[test]
    fn step2_broken_metadata_is_an_error() {
        let r = Root::new();
        let env = DockerEnv {
            context: Some("broken".into()),
            config: Some("/cfg".into()),
            ..Default::default()
        };
        r.write(
            &format!(
                "/cfg/contexts/meta/{}/meta.json",
                context_dir_name("broken")
            ),
            "{not json",
        );
        let e = r.resolve(&env).unwrap_err();
        assert!(matches!(e, ResolveError::BadContext { .. }), "{e:?}");
        r.write(
            &format!(
                "/cfg/contexts/meta/{}/meta.json",
                context_dir_name("broken")
            ),
            r#"{"Name":"broken","Endpoints":{"kubernetes":{}}}"#,
        );
        let msg = r.resolve(&env).unwrap_err().to_string();
        assert!(msg.contains("no Endpoints.docker"), "{msg}");
    }

    #[test]
    fn step2_default_means_no_context() {
        let r = Root::new();
        r.socket("/var/run/docker.sock");
        let mut env = home("/home/u");
        env.context = Some("default".into());
        let ep = r.resolve(&env).unwrap();
        assert_eq!(ep.host, "unix:///var/run/docker.sock");
        assert_eq!(ep.source, Source::DefaultSocket);
    }

    #[test]
    fn step3_current_context_of_the_config() {
        let r = Root::new();
        r.socket("/var/run/docker.sock");
        r.context("/home/u/.docker", "desk", "unix:///desk.sock", false);
        r.write(
            "/home/u/.docker/config.json",
            r#"{"auths":{},"currentContext":"desk"}"#,
        );
        let ep = r.resolve(&home("/home/u")).unwrap();
        assert_eq!(ep.host, "unix:///desk.sock");
        assert_eq!(ep.source, Source::CurrentContext("desk".into()));
        assert_eq!(
            ep.describe(),
            "unix:///desk.sock (from currentContext=desk)"
        );
    }

    #[test]
    fn step3_docker_config_is_honoured() {
        let r = Root::new();
        r.context("/home/u/.docker", "a", "unix:///home-config.sock", false);
        r.write("/home/u/.docker/config.json", r#"{"currentContext":"a"}"#);
        r.context("/elsewhere", "b", "tcp://10.0.0.1:2376", false);
        r.write("/elsewhere/config.json", r#"{"currentContext":"b"}"#);
        r.write(
            &format!(
                "/elsewhere/contexts/tls/{}/docker/ca.pem",
                context_dir_name("b")
            ),
            "CA",
        );
        let mut env = home("/home/u");
        env.config = Some("/elsewhere".into());
        let ep = r.resolve(&env).unwrap();
        assert_eq!(ep.host, "tcp://10.0.0.1:2376");
        assert_eq!(ep.source, Source::CurrentContext("b".into()));
        assert_eq!(
            ep.tls,
            Some(PathBuf::from(format!(
                "/elsewhere/contexts/tls/{}/docker",
                context_dir_name("b")
            ))),
            "the context's TLS material"
        );
        assert!(!ep.skip_tls_verify);
    }

    #[test]
    fn step3_tls_only_when_the_context_has_material() {
        let r = Root::new();
        r.context("/c", "plain", "tcp://10.0.0.1:2375", true);
        r.write("/c/config.json", r#"{"currentContext":"plain"}"#);
        let env = DockerEnv {
            config: Some("/c".into()),
            // DOCKER_TLS_VERIFY belongs to DOCKER_HOST, not to contexts.
            tls_verify: Some("1".into()),
            ..Default::default()
        };
        let ep = r.resolve(&env).unwrap();
        assert_eq!(ep.tls, None);
        assert!(ep.skip_tls_verify);
    }

    #[test]
    fn step3_unknown_current_context_is_an_error() {
        let r = Root::new();
        r.socket("/var/run/docker.sock");
        r.write(
            "/home/u/.docker/config.json",
            r#"{"currentContext":"gone"}"#,
        );
        let msg = r.resolve(&home("/home/u")).unwrap_err().to_string();
        assert!(msg.contains("\"gone\" (from currentContext=gone)"), "{msg}");
    }

    #[test]
    fn step3_an_unreadable_config_is_ignored_as_the_cli_does() {
        let r = Root::new();
        r.socket("/var/run/docker.sock");
        r.write("/home/u/.docker/config.json", "{oops");
        let ep = r.resolve(&home("/home/u")).unwrap();
        assert_eq!(ep.source, Source::DefaultSocket);
        r.write(
            "/home/u/.docker/config.json",
            r#"{"currentContext":"default"}"#,
        );
        assert_eq!(
            r.resolve(&home("/home/u")).unwrap().source,
            Source::DefaultSocket
        );
        r.write("/home/u/.docker/config.json", r#"{"currentContext":""}"#);
        assert_eq!(
            r.resolve(&home("/home/u")).unwrap().source,
            Source::DefaultSocket
        );
    }

    #[test]
    fn step4_the_default_socket() {
        let r = Root::new();
        r.socket("/var/run/docker.sock");
        r.socket("/run/user/1000/docker.sock");
        r.socket("/home/u/.docker/run/docker.sock");
        let mut env = home("/home/u");
        env.xdg_runtime_dir = Some("/run/user/1000".into());
        let ep = r.resolve(&env).unwrap();
        assert_eq!(ep.host, "unix:///var/run/docker.sock");
        assert_eq!(ep.source, Source::DefaultSocket);
        assert_eq!(
            ep.describe(),
            "unix:///var/run/docker.sock (from default socket)"
        );
    }

    #[test]
    fn step5_rootless_then_docker_desktop_where_the_default_is_missing() {
        let r = Root::new();
        r.socket("/run/user/1000/docker.sock");
        r.socket("/home/u/.docker/run/docker.sock");
        let mut env = home("/home/u");
        env.xdg_runtime_dir = Some("/run/user/1000".into());
        let ep = r.resolve(&env).unwrap();
        assert_eq!(ep.host, "unix:///run/user/1000/docker.sock");
        assert_eq!(ep.source, Source::Rootless);

        env.xdg_runtime_dir = None;
        let ep = r.resolve(&env).unwrap();
        assert_eq!(ep.host, "unix:///home/u/.docker/run/docker.sock");
        assert_eq!(ep.source, Source::DockerDesktop);

        env.xdg_runtime_dir = Some("/run/user/1000".into());
        fs::remove_file(under(r.path(), Path::new("/run/user/1000/docker.sock"))).unwrap();
        assert_eq!(r.resolve(&env).unwrap().source, Source::DockerDesktop);
    }

    #[test]
    fn step5_a_dangling_link_is_missing() {
        let r = Root::new();
        let link = under(r.path(), Path::new("/var/run/docker.sock"));
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/nowhere/docker.sock", &link).unwrap();
        r.socket("/home/u/.docker/run/docker.sock");
        assert_eq!(
            r.resolve(&home("/home/u")).unwrap().source,
            Source::DockerDesktop
        );
    }

    #[test]
    fn nothing_found_names_the_default_socket() {
        let r = Root::new();
        let ep = r.resolve(&home("/home/u")).unwrap();
        assert_eq!(ep.host, "unix:///var/run/docker.sock");
        assert_eq!(ep.source, Source::DefaultSocket);
        let ep = r.resolve(&DockerEnv::default()).unwrap();
        assert_eq!(ep.source, Source::DefaultSocket);
    }

    #[test]
    fn ssh_hosts_carry_their_options() {
        let r = Root::new();
        let mut env = home("/home/u");
        env.host = Some("ssh://me@box:2222".into());
        env.ssh_args = Some(" -F /tmp/cfg  -o BatchMode=yes ".into());
        let ep = r.resolve(&env).unwrap();
        assert_eq!(
            ep.ssh,
            Some(SshOptions {
                args: vec![
                    "-F".into(),
                    "/tmp/cfg".into(),
                    "-o".into(),
                    "BatchMode=yes".into()
                ],
                sessions: DEFAULT_SSH_SESSIONS,
            })
        );
        env.ssh_sessions = Some(3);
        assert_eq!(r.resolve(&env).unwrap().ssh.unwrap().sessions, 3);
        env.host = Some("unix:///s".into());
        assert_eq!(r.resolve(&env).unwrap().ssh, None, "only for ssh://");
        // Through a context too.
        r.context("/home/u/.docker", "remote", "ssh://me@box", false);
        env.host = None;
        env.context = Some("remote".into());
        let ep = r.resolve(&env).unwrap();
        assert_eq!(ep.host, "ssh://me@box");
        assert_eq!(ep.ssh.unwrap().sessions, 3);
    }

    #[test]
    fn specs_round_trip_on_one_line() {
        let mut ep = Endpoint::new("ssh://u@h:22", Source::DockerContext("a\tb\nc".into()));
        ep.tls = Some("/t\tls".into());
        ep.ssh = Some(SshOptions {
            args: vec!["-F".into(), "/x y".into()],
            sessions: 4,
        });
        let spec = ep.to_spec();
        assert!(!spec.contains('\t') && !spec.contains('\n'), "{spec}");
        assert_eq!(Endpoint::from_spec(&spec), Some(ep));
        assert_eq!(Endpoint::from_spec("{nope"), None);
    }
}
