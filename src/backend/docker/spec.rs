//! The container a run gets: hardened defaults, resources, network and
//! command, built from checked options. Pure: no daemon needed.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig, ResourcesUlimits};

use super::labels::labels;
pub use crate::config::security::{BASELINE_CAP_DROP as CAP_DROP, PIDS_LIMIT};
use crate::config::{Gpus, Hardening, RunRequest, RunnerConfig};

/// `/tmp`'s mount options under a tmpfs: no setuid or device files; exec
/// stays allowed (the workdir allows it anyway, and many tools run
/// helpers from /tmp).
pub fn tmpfs_options(size: i64) -> String {
    format!("rw,nosuid,nodev,size={size},mode=1777")
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
/// resolved by the caller (`none` for no network); `h` is the run's
/// hardening (its profile decided). Baseline without knobs is SPEC §10
/// exactly: no field is set that the original did not set.
pub fn create_body(
    id: &str,
    cfg: &RunnerConfig,
    h: &Hardening,
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
    let security_opt = h
        .no_new_privileges
        .then(|| vec!["no-new-privileges".to_string()]);
    let strings = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
    let ulimits = (!h.ulimits.is_empty()).then(|| {
        h.ulimits
            .iter()
            .map(|u| ResourcesUlimits {
                name: Some(u.name.clone()),
                soft: Some(u.soft),
                hard: Some(u.hard),
            })
            .collect()
    });
    let tmpfs = h
        .tmpfs_size
        .map(|size| HashMap::from([("/tmp".to_string(), tmpfs_options(size))]));
    // No swap beyond the memory cap (0 = no cap: nothing to match).
    let memory_swap = (h.no_swap && cfg.memory_bytes > 0).then_some(cfg.memory_bytes);
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint,
        cmd,
        env: Some(req.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: Some(req.workdir.clone()),
        user: h.user.clone(),
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
            memory_swap,
            pids_limit: Some(PIDS_LIMIT),
            cap_drop: Some(h.cap_drop.clone()),
            cap_add: strings(&h.cap_add),
            security_opt,
            readonly_rootfs: h.read_only_rootfs.then_some(true),
            tmpfs,
            ulimits,
            init: h.init.then_some(true),
            network_mode: Some(network_mode.to_string()),
            runtime: cfg.runtime.clone(),
            device_requests: cfg.gpus.as_ref().map(device_requests),
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Suffix of a run's seed twin: a never-started container of the run's
/// own image sharing its volume, which takes the seed upload when the run's
/// container cannot (a read-only root filesystem: the daemon only extracts
/// into a volume there, and the volume root's own mode is set from its
/// parent). Labelled with the run id: every reclaimer finds it.
pub const TWIN_SUFFIX: &str = "-seed";
/// The role label of a seed twin.
pub const ROLE_LABEL: &str = "light-runner.role";

/// The name of run `id`'s seed twin.
pub fn twin_name(id: &str) -> String {
    format!("{id}{TWIN_SUFFIX}")
}

/// The create body of run `id`'s seed twin: the same image and volume, a
/// writable root filesystem, no network, nothing to run (it is never
/// started; the entrypoint only satisfies images that have none).
pub fn twin_body(id: &str, req: &RunRequest, image: &str) -> ContainerCreateBody {
    let mut l = labels(id, false);
    l.insert(ROLE_LABEL.to_string(), "seed".to_string());
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec!["true".to_string()]),
        cmd: Some(Vec::new()),
        working_dir: Some(req.workdir.clone()),
        labels: Some(l),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{id}:{}", req.workdir)]),
            network_mode: Some("none".to_string()),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::docker::labels::RUN_ID_LABEL;
    use crate::config::security::{harden, parse};
    use crate::config::RunRequest;

    fn baseline(cfg: &RunnerConfig) -> Hardening {
        harden(&cfg.security, cfg.no_new_privileges, None).unwrap()
    }

    fn restricted(extra: serde_json::Value) -> (RunnerConfig, Hardening) {
        let mut m = serde_json::json!({ "securityProfile": "restricted" });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        let cfg = crate::config::parse_options(m.as_object().unwrap()).unwrap();
        assert_eq!(cfg.invalid, None);
        let h = harden(&cfg.security, cfg.no_new_privileges, None).unwrap();
        (cfg, h)
    }

    fn body(cfg: &RunnerConfig, h: &Hardening, req: &RunRequest) -> ContainerCreateBody {
        create_body("light-runner-0123456789ab", cfg, h, req, "img", "net-id")
    }

    #[test]
    fn security_defaults_are_always_on() {
        let cfg = RunnerConfig::default();
        let body = body(&cfg, &baseline(&cfg), &RunRequest::new("img"));
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

    /// Baseline is today's body exactly: the fields the original set, and
    /// none of the restricted ones.
    #[test]
    fn baseline_sets_nothing_new() {
        let cfg = RunnerConfig::default();
        let b = body(&cfg, &baseline(&cfg), &RunRequest::new("img"));
        assert_eq!(b.user, None);
        let hc = b.host_config.unwrap();
        assert_eq!(hc.cap_add, None);
        assert_eq!(hc.readonly_rootfs, None);
        assert_eq!(hc.tmpfs, None);
        assert_eq!(hc.ulimits, None);
        assert_eq!(hc.init, None);
        assert_eq!(hc.memory_swap, None);
        assert_eq!(hc.auto_remove, Some(false));
        let v = serde_json::to_value(&hc).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "AutoRemove",
                "Binds",
                "CapDrop",
                "Memory",
                "NanoCpus",
                "NetworkMode",
                "PidsLimit",
                "SecurityOpt"
            ]
        );
    }

    #[test]
    fn restricted_body() {
        let (cfg, h) = restricted(serde_json::json!({}));
        let b = body(&cfg, &h, &RunRequest::new("img"));
        assert_eq!(b.user.as_deref(), Some("65534:65534"));
        let hc = b.host_config.unwrap();
        assert_eq!(hc.cap_drop.unwrap(), vec!["ALL"]);
        assert_eq!(hc.cap_add, None);
        let opts = hc.security_opt.unwrap();
        assert_eq!(opts, vec!["no-new-privileges"]);
        assert!(!opts.iter().any(|o| o.contains("unconfined")));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(
            hc.tmpfs.unwrap().get("/tmp").map(String::as_str),
            Some("rw,nosuid,nodev,size=67108864,mode=1777")
        );
        assert_eq!(hc.memory, Some(512 << 20));
        assert_eq!(hc.memory_swap, Some(512 << 20), "no swap beyond memory");
        assert_eq!(hc.pids_limit, Some(100));
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.privileged, None);
        let ul: Vec<(String, i64, i64)> = hc
            .ulimits
            .unwrap()
            .into_iter()
            .map(|u| (u.name.unwrap(), u.soft.unwrap(), u.hard.unwrap()))
            .collect();
        assert_eq!(
            ul,
            vec![
                ("nofile".to_string(), 1024, 1024),
                ("fsize".to_string(), 1 << 30, 1 << 30),
                ("core".to_string(), 0, 0)
            ]
        );
        assert_eq!(hc.binds.unwrap(), vec!["light-runner-0123456789ab:/app"]);
    }

    #[test]
    fn restricted_with_memory_zero_has_no_swap_field() {
        let (cfg, h) = restricted(serde_json::json!({ "memory": "0", "tmpfsSize": "1m" }));
        let hc = body(&cfg, &h, &RunRequest::new("img")).host_config.unwrap();
        assert_eq!(hc.memory, Some(0));
        assert_eq!(hc.memory_swap, None);
        assert!(hc.tmpfs.unwrap()["/tmp"].contains("size=1048576"));
    }

    #[test]
    fn baseline_knobs_reach_the_body() {
        let mut bad = Vec::new();
        let sec = parse(
            serde_json::json!({ "user": "1000:1000", "readOnlyRootfs": true, "capAdd": ["NET_ADMIN"],
                "tmpfsSize": "8m", "ulimits": { "nofile": 64 } })
            .as_object()
            .unwrap(),
            &mut bad,
        )
        .unwrap();
        let cfg = RunnerConfig {
            security: sec,
            ..Default::default()
        };
        let b = body(&cfg, &baseline(&cfg), &RunRequest::new("img"));
        assert_eq!(b.user.as_deref(), Some("1000:1000"));
        let hc = b.host_config.unwrap();
        assert_eq!(hc.cap_drop.unwrap(), CAP_DROP.map(String::from).to_vec());
        assert_eq!(hc.cap_add.unwrap(), vec!["NET_ADMIN"]);
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert!(hc.tmpfs.unwrap()["/tmp"].contains("size=8388608"));
        assert_eq!(hc.ulimits.unwrap().len(), 1);
        assert_eq!(hc.init, None);
        assert_eq!(hc.memory_swap, None);
    }

    #[test]
    fn command_runs_through_sh() {
        let mut req = RunRequest::new("img");
        req.command = Some("echo hi && exit 3".into());
        req.input = Some("{}".into());
        let cfg = RunnerConfig::default();
        let body = create_body("id", &cfg, &baseline(&cfg), &req, "img", "none");
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
        let body = body(&cfg, &baseline(&cfg), &RunRequest::new("img"));
        assert_eq!(body.host_config.unwrap().security_opt, None);
    }

    #[test]
    fn runtime_is_passed_as_given() {
        let cfg = RunnerConfig {
            runtime: Some("runsc".into()),
            ..Default::default()
        };
        let b = body(&cfg, &baseline(&cfg), &RunRequest::new("img"));
        assert_eq!(b.host_config.unwrap().runtime.as_deref(), Some("runsc"));
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
        let body = body(&cfg, &baseline(&cfg), &RunRequest::new("img"));
        let dr = &body.host_config.unwrap().device_requests.unwrap()[0];
        assert_eq!(dr.count, None);
        assert_eq!(dr.device_ids, Some(vec!["1".to_string()]));
    }

    #[test]
    fn the_twin_shares_the_volume_and_never_runs_anything_networked() {
        let mut req = RunRequest::new("img");
        req.workdir = "/srv/job".into();
        let b = twin_body("light-runner-0123456789ab", &req, "built:1");
        assert_eq!(b.image.as_deref(), Some("built:1"));
        let l = b.labels.unwrap();
        assert_eq!(l[RUN_ID_LABEL], "light-runner-0123456789ab");
        assert_eq!(l[ROLE_LABEL], "seed");
        let hc = b.host_config.unwrap();
        assert_eq!(
            hc.binds.unwrap(),
            vec!["light-runner-0123456789ab:/srv/job"]
        );
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.readonly_rootfs, None);
        assert_eq!(hc.runtime, None, "never started: the default runtime");
        assert_eq!(
            twin_name("light-runner-0123456789ab"),
            "light-runner-0123456789ab-seed"
        );
    }
}
