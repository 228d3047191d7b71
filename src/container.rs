//! The container a run gets: hardened defaults, resources, network and
//! command, built from checked options. Pure: no daemon needed.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig};

use crate::config::{Gpus, RunRequest, RunnerConfig, Runtime};

/// Label put on every container and volume this package creates.
pub const RUN_ID_LABEL: &str = "light-runner.run-id";
/// Set on detached containers: their result belongs to a state file.
pub const DETACHED_LABEL: &str = "light-runner.detached";
/// Capabilities dropped from Docker's default set.
pub const CAP_DROP: [&str; 6] = [
    "NET_RAW",
    "MKNOD",
    "SYS_CHROOT",
    "SETPCAP",
    "SETFCAP",
    "AUDIT_WRITE",
];
pub const PIDS_LIMIT: i64 = 100;

pub fn labels(id: &str, detached: bool) -> HashMap<String, String> {
    let mut l = HashMap::from([(RUN_ID_LABEL.to_string(), id.to_string())]);
    if detached {
        l.insert(DETACHED_LABEL.to_string(), "true".to_string());
    }
    l
}

pub fn runtime_name(runtime: Runtime) -> Option<String> {
    match runtime {
        Runtime::Runc => None,
        Runtime::Runsc => Some("runsc".into()),
        Runtime::Kata => Some("kata".into()),
    }
}

pub fn device_requests(gpus: &Gpus) -> Vec<DeviceRequest> {
    let (count, device_ids) = match gpus {
        Gpus::All => (Some(-1), None),
        Gpus::Devices(ids) => (None, Some(ids.clone())),
    };
    vec![DeviceRequest {
        driver: Some("nvidia".into()),
        count,
        device_ids,
        capabilities: Some(vec![vec!["gpu".into()]]),
        options: None,
    }]
}

/// The create body for run `id`. `image` is the image to run (the request's,
/// or the build of its steps); `network_mode` is the network id or name
/// resolved by the caller (`none` for no network).
pub fn create_body(
    id: &str,
    cfg: &RunnerConfig,
    req: &RunRequest,
    image: &str,
    network_mode: &str,
) -> ContainerCreateBody {
    let (entrypoint, cmd) = match &req.command {
        Some(c) => (
            Some(vec!["sh".to_string()]),
            Some(vec!["-c".to_string(), c.clone()]),
        ),
        None => (None, None),
    };
    let wants_stdin = req.input.is_some();
    let security_opt = cfg
        .no_new_privileges
        .then(|| vec!["no-new-privileges".to_string()]);
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint,
        cmd,
        env: Some(req.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: Some(req.workdir.clone()),
        labels: Some(labels(id, req.detached)),
        attach_stdin: Some(wants_stdin),
        attach_stdout: Some(!req.detached),
        attach_stderr: Some(!req.detached),
        open_stdin: Some(wants_stdin),
        stdin_once: Some(wants_stdin),
        tty: Some(false),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{id}:{}", req.workdir)]),
            memory: Some(cfg.memory_bytes),
            nano_cpus: Some(cfg.nano_cpus),
            pids_limit: Some(PIDS_LIMIT),
            cap_drop: Some(CAP_DROP.iter().map(|c| c.to_string()).collect()),
            security_opt,
            network_mode: Some(network_mode.to_string()),
            runtime: runtime_name(cfg.runtime),
            device_requests: cfg.gpus.as_ref().map(device_requests),
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunRequest;

    #[test]
    fn security_defaults_are_always_on() {
        let body = create_body(
            "light-runner-0123456789ab",
            &RunnerConfig::default(),
            &RunRequest::new("img"),
            "img",
            "net-id",
        );
        let hc = body.host_config.unwrap();
        assert_eq!(hc.cap_drop.unwrap(), CAP_DROP.map(String::from).to_vec());
        assert_eq!(hc.security_opt.unwrap(), vec!["no-new-privileges"]);
        assert_eq!(hc.pids_limit, Some(100));
        assert_eq!(hc.memory, Some(512 << 20));
        assert_eq!(hc.nano_cpus, Some(1_000_000_000));
        assert_eq!(hc.network_mode.as_deref(), Some("net-id"));
        assert_eq!(hc.runtime, None);
        assert_eq!(hc.device_requests, None);
        assert_eq!(hc.binds.unwrap(), vec!["light-runner-0123456789ab:/app"]);
        assert_eq!(
            body.labels.unwrap().get(RUN_ID_LABEL).map(String::as_str),
            Some("light-runner-0123456789ab")
        );
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.cmd, None);
        assert_eq!(body.open_stdin, Some(false));
    }

    #[test]
    fn command_runs_through_sh() {
        let mut req = RunRequest::new("img");
        req.command = Some("echo hi && exit 3".into());
        req.input = Some("{}".into());
        let body = create_body("id", &RunnerConfig::default(), &req, "img", "none");
        assert_eq!(body.entrypoint.unwrap(), vec!["sh"]);
        assert_eq!(body.cmd.unwrap(), vec!["-c", "echo hi && exit 3"]);
        assert_eq!(body.open_stdin, Some(true));
        assert_eq!(body.stdin_once, Some(true));
        assert_eq!(body.attach_stdin, Some(true));
    }

    #[test]
    fn no_new_privileges_can_be_disabled() {
        let cfg = RunnerConfig {
            no_new_privileges: false,
            ..Default::default()
        };
        let body = create_body("id", &cfg, &RunRequest::new("img"), "img", "none");
        assert_eq!(body.host_config.unwrap().security_opt, None);
    }

    #[test]
    fn runtime_mapping() {
        assert_eq!(runtime_name(Runtime::Runc), None);
        assert_eq!(runtime_name(Runtime::Runsc).as_deref(), Some("runsc"));
        assert_eq!(runtime_name(Runtime::Kata).as_deref(), Some("kata"));
        let cfg = RunnerConfig {
            runtime: Runtime::Runsc,
            ..Default::default()
        };
        let body = create_body("id", &cfg, &RunRequest::new("img"), "img", "none");
        assert_eq!(body.host_config.unwrap().runtime.as_deref(), Some("runsc"));
    }

    #[test]
    fn gpus_mapping() {
        let all = device_requests(&Gpus::All);
        assert_eq!(all[0].driver.as_deref(), Some("nvidia"));
        assert_eq!(all[0].count, Some(-1));
        assert_eq!(all[0].device_ids, None);
        assert_eq!(all[0].capabilities, Some(vec![vec!["gpu".to_string()]]));
        let ids = device_requests(&Gpus::Devices(vec!["0".into(), "1".into()]));
        assert_eq!(ids[0].count, None);
        assert_eq!(ids[0].device_ids, Some(vec!["0".into(), "1".into()]));
        let cfg = RunnerConfig {
            gpus: Some(Gpus::Devices(vec!["1".into()])),
            ..Default::default()
        };
        let body = create_body("id", &cfg, &RunRequest::new("img"), "img", "none");
        let dr = &body.host_config.unwrap().device_requests.unwrap()[0];
        assert_eq!(dr.count, None);
        assert_eq!(dr.device_ids, Some(vec!["1".to_string()]));
    }
}
