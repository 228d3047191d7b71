//! Detached runs and their state files, without Node, on the real daemon:
//! the record written before any Docker work, its modes, the container
//! outliving the launcher's handle, finalization, attach to a terminal
//! record, and the reclaimers' view of it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use light_runner::config::{RunRequest, RunnerConfig};
use light_runner::detached;
use light_runner::extract::ExtractSpec;
use light_runner::maintenance;
use light_runner::state::{self, Status};

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
    let exec = detached::launch(&RunnerConfig::default(), req, false).unwrap();
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
    let st = state::read_state_in(dir, &id).unwrap();
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
    let st = state::read_state_in(dir, &id).unwrap();
    assert_eq!(st.status, Status::Exited);
    assert_eq!(st.exit_code, Some(0));
    assert!(st.extracted.is_some());
    // Finalization removed container and volume (checked before our cleanup).
    assert!(!container_exists(&id) && !volume_exists(&id));

    // attach() of a terminal record resolves at once, from the record.
    let again = detached::attach(&id).expect("state exists");
    let r2 = outcome(&again).unwrap();
    assert_eq!(r2.exit_code, 0);
    assert_eq!(r2.extracted, r.extracted);
    assert!(detached::attach("light-runner-000000000000").is_none());
    force_cleanup(&id);
}

#[test]
fn old_terminal_states_are_reclaimed_running_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let write = |id: &str, status: &str, finished: Option<&str>| {
        let mut v = serde_json::json!({
            "id": id, "container": id, "volume": id, "image": BUSYBOX, "workdir": "/app",
            "startedAt": "2020-01-01T00:00:00.000Z", "status": status,
        });
        if let Some(f) = finished {
            v["finishedAt"] = f.into();
        }
        let s: state::RunState = serde_json::from_value(v).unwrap();
        state::write_state_in(dir.path(), &s).unwrap();
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
    let removed = maintenance::cleanup_old_states_in(dir.path(), 24 * 3600 * 1000, 1000);
    assert_eq!(removed, 1);
    let left: Vec<String> = state::list_runs_in(dir.path())
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        left,
        vec!["light-runner-aaaaaaaaaaa2", "light-runner-aaaaaaaaaaa3"]
    );
    // A budget of zero terminal files still keeps the running one.
    assert_eq!(
        maintenance::cleanup_old_states_in(dir.path(), u64::MAX, 0),
        1
    );
    assert_eq!(state::list_runs_in(dir.path()).len(), 1);
}
