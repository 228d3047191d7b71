//! Detached runs and their state files, without Node, on the real daemon:
//! the record written before any Docker work, its modes, the container
//! outliving the launcher's handle, finalization, attach to a terminal
//! record, and the reclaimers' view of it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use light_runner::config::{RunRequest, RunnerConfig};
use light_runner::engine::{attach, runner::Runner};
use light_runner::maintenance;
use light_runner::record::{ExtractSpec, RunRecord, RunStatus as Status};

#[test]
fn detached_run_is_recorded_finalized_and_attachable() {
    let dir = state_dir();
    let to = tempfile::tempdir().unwrap();
    let mut req = RunRequest::new(BUSYBOX);
    req.detached = true;
    req.command = Some("echo result > r.txt; sleep 1".into());
    req.env = vec![("SECRET".into(), "do-not-store".into())];
    req.extract = vec![ExtractSpec {
        from: "r.txt".into(),
        to: to.path().to_string_lossy().into_owned(),
    }];
    let exec = Runner::new(RunnerConfig::default())
        .run(ctx(), req, None, false)
        .unwrap();
    let id = exec.id().to_string();
    let path = dir.join(format!("{id}.json"));

    // The record exists as soon as launch returns, private, without secrets.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("do-not-store"));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let st = ctx().store.read_now(&id).unwrap();
    assert_eq!(st.status, Status::Running);
    assert_eq!(st.detached, Some(true));

    block_on(async {
        tokio::time::timeout(Duration::from_secs(60), exec.started())
            .await
            .unwrap()
    });
    // The container outlives the launch; it is labelled as detached.
    let (_, labels) = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"light-runner.detached\"}}",
        &id,
    ]);
    assert_eq!(labels, "true");

    let r = outcome(&exec).unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(to.path().join("r.txt")).unwrap(),
        "result\n"
    );
    let st = ctx().store.read_now(&id).unwrap();
    assert_eq!(st.status, Status::Exited);
    assert_eq!(st.exit_code, Some(0));
    assert!(st.extracted.is_some());
    // Finalization removed container and volume (checked before our cleanup).
    assert!(!container_exists(&id) && !volume_exists(&id));

    // attach() of a terminal record resolves at once, from the record.
    let again = attach::attach(ctx(), &id).expect("state exists");
    let r2 = outcome(&again).unwrap();
    assert_eq!(r2.exit_code, 0);
    assert_eq!(r2.extracted, r.extracted);
    assert!(attach::attach(ctx(), "light-runner-000000000000").is_none());
    force_cleanup(&id);
}

#[test]
fn old_terminal_states_are_reclaimed_running_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx();
    c.store = light_runner::store::Store::new(dir.path());
    c.limits.state_ttl = Duration::from_millis(24 * 3600 * 1000);
    let store = c.store.clone();
    let write = |id: &str, status: &str, finished: Option<&str>| {
        let mut v = serde_json::json!({
            "id": id, "container": id, "volume": id, "image": BUSYBOX, "workdir": "/app",
            "startedAt": "2020-01-01T00:00:00.000Z", "status": status,
        });
        if let Some(f) = finished {
            v["finishedAt"] = f.into();
        }
        let s: RunRecord = serde_json::from_value(v).unwrap();
        store.create_now(&s).unwrap();
    };
    write(
        "light-runner-aaaaaaaaaaa1",
        "exited",
        Some("2020-01-01T00:00:01.000Z"),
    );
    write(
        "light-runner-aaaaaaaaaaa2",
        "failed",
        Some("2099-01-01T00:00:01.000Z"),
    );
    write("light-runner-aaaaaaaaaaa3", "running", None);
    let removed = maintenance::cleanup_old_states(&c);
    assert_eq!(removed, 1);
    let left: Vec<String> = store.list_now().into_iter().map(|s| s.id).collect();
    assert_eq!(
        left,
        vec!["light-runner-aaaaaaaaaaa2", "light-runner-aaaaaaaaaaa3"]
    );
    // A budget of zero terminal files still keeps the running one.
    c.limits.state_ttl = Duration::MAX;
    c.limits.max_states = 0;
    assert_eq!(maintenance::cleanup_old_states(&c), 1);
    assert_eq!(store.list_now().len(), 1);
}
