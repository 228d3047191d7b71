//! The attached path of the core, without Node, on the real daemon: exit
//! codes, output lines, stdin, timeout, cancel, extract, typed errors, and
//! the state file every attached run keeps.

mod common;

use std::time::Duration;

use common::*;
use light_runner::config::{RunRequest, RunnerConfig};
use light_runner::engine::runner::Runner;
use light_runner::errors::{Error, ErrorCode};
use light_runner::record::{ExtractSpec, ExtractStatus, RunStatus as Status};

fn request(command: &str) -> RunRequest {
    let mut r = RunRequest::new(BUSYBOX);
    r.command = Some(command.to_string());
    r
}

fn runner() -> Runner {
    state_dir();
    Runner::new(RunnerConfig::default())
}

#[test]
fn exit_code_output_and_terminal_record() {
    let (sink, lines) = collector();
    let exec = runner()
        .run(
            ctx(),
            request("echo out; echo err >&2; exit 3"),
            Some(sink),
            false,
        )
        .unwrap();
    let id = exec.id().to_string();
    // Written synchronously, before any Docker work.
    let first = ctx()
        .store
        .read_now(&id)
        .expect("state file written by run");
    assert_eq!(first.detached, Some(false));
    let r = outcome(&exec).expect("a non-zero exit is a result");
    assert_eq!(r.exit_code, 3);
    assert!(!r.success && !r.cancelled && !r.timed_out && !r.oom_killed);
    let mut got = lines.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec!["err", "out"]);
    let st = ctx().store.read_now(&id).unwrap();
    assert_eq!(st.status, Status::Exited);
    assert_eq!(st.exit_code, Some(3));
    assert!(st.finished_at.is_some() && st.duration_ms.is_some());
    // Checked before any cleanup of ours: the run removed its resources.
    assert!(!container_exists(&id), "container left");
    assert!(!volume_exists(&id), "volume left");
    force_cleanup(&id);
}

#[test]
fn stdin_gets_the_input_then_eof() {
    let (sink, lines) = collector();
    let mut req = request("cat; echo; echo done");
    req.input = Some("{\"a\":[1,2]}".into());
    let exec = runner().run(ctx(), req, Some(sink), false).unwrap();
    let r = outcome(&exec).unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(*lines.lock().unwrap(), vec!["{\"a\":[1,2]}", "done"]);
    force_cleanup(exec.id());
}

#[test]
fn timeout_kills_and_says_so() {
    let mut req = request("sleep 30");
    req.timeout_ms = Some(1500);
    let exec = runner().run(ctx(), req, None, false).unwrap();
    let r = outcome(&exec).unwrap();
    assert!(r.timed_out && !r.success, "{r:?}");
    assert_ne!(r.exit_code, 0);
    assert!(!container_exists(exec.id()));
    force_cleanup(exec.id());
}

#[test]
fn cancel_mid_run_and_before_start() {
    let exec = runner()
        .run(ctx(), request("sleep 30"), None, false)
        .unwrap();
    block_on(async {
        tokio::time::timeout(Duration::from_secs(30), exec.started())
            .await
            .expect("started")
    });
    exec.cancel();
    let r = outcome(&exec).unwrap();
    assert!(r.cancelled && !r.success, "{r:?}");
    let st = ctx().store.read_now(exec.id()).unwrap();
    assert_eq!(st.status, Status::Cancelled);
    force_cleanup(exec.id());

    // Aborted before it started: the container is never created.
    let exec = runner().run(ctx(), request("true"), None, true).unwrap();
    let r = outcome(&exec).unwrap();
    assert!(r.cancelled);
    assert_eq!(r.exit_code, -1);
    assert!(!container_exists(exec.id()));
    force_cleanup(exec.id());
}

#[test]
fn extract_copies_files_out() {
    let to = tempfile::tempdir().unwrap();
    let mut req =
        request("mkdir -p out/sub && echo hi > out/sub/a.txt && ln out/sub/a.txt out/b.txt");
    req.extract = vec![
        ExtractSpec {
            from: "out".into(),
            to: to.path().to_string_lossy().into_owned(),
        },
        ExtractSpec {
            from: "missing".into(),
            to: to.path().to_string_lossy().into_owned(),
        },
    ];
    let exec = runner().run(ctx(), req, None, false).unwrap();
    let r = outcome(&exec).unwrap();
    let x = r.extracted.expect("extracted");
    assert_eq!(x[0].status, ExtractStatus::Ok);
    assert_eq!(x[1].status, ExtractStatus::Missing);
    assert_eq!(
        std::fs::read_to_string(to.path().join("sub/a.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(
        std::fs::read_to_string(to.path().join("b.txt")).unwrap(),
        "hi\n"
    );
    force_cleanup(exec.id());
}

#[test]
fn failures_are_typed() {
    // A missing seed dir: no Docker resource at all.
    let mut req = request("true");
    req.dir = Some("/nonexistent/light-runner-it".into());
    let exec = runner().run(ctx(), req, None, false).unwrap();
    let e = outcome(&exec).unwrap_err();
    assert!(matches!(*e, Error::DirNotFound(_)), "{e:?}");
    assert_eq!(e.public().code, Some(ErrorCode::SeedFailed));
    assert!(!container_exists(exec.id()) && !volume_exists(exec.id()));
    force_cleanup(exec.id());

    // A network that does not exist: named, nothing left behind.
    let mut req = request("true");
    req.networks = vec!["light-runner-it-no-such-net".into()];
    let exec = runner().run(ctx(), req, None, false).unwrap();
    let e = outcome(&exec).unwrap_err();
    assert!(
        matches!(&*e, Error::NetworkNotFound { name } if name == "light-runner-it-no-such-net"),
        "{e:?}"
    );
    assert!(!container_exists(exec.id()) && !volume_exists(exec.id()));
    let st = ctx().store.read_now(exec.id()).unwrap();
    assert_eq!(st.status, Status::Failed);
    force_cleanup(exec.id());

    // An image no registry has: a pull error with the daemon's cause.
    let exec = runner()
        .run(
            ctx(),
            RunRequest::new("127.0.0.1:5000/light-runner/does-not-exist:it"),
            None,
            false,
        )
        .unwrap();
    let e = outcome(&exec).unwrap_err();
    assert!(matches!(*e, Error::Pull { .. }), "{e:?}");
    let p = e.public();
    assert_eq!(p.code, Some(ErrorCode::ContainerStartFailed));
    assert_eq!(p.docker_op.as_deref(), Some("pull"));
    assert!(!container_exists(exec.id()) && !volume_exists(exec.id()));
    force_cleanup(exec.id());

    // An invalid option value of the runner: every run rejects, nothing created.
    let cfg = light_runner::config::parse_options(
        serde_json::json!({ "memory": "12x" }).as_object().unwrap(),
    )
    .unwrap();
    let exec = Runner::new(cfg)
        .run(ctx(), request("true"), None, false)
        .unwrap();
    let e = outcome(&exec).unwrap_err();
    assert!(matches!(*e, Error::InvalidOption(_)), "{e:?}");
    assert!(!container_exists(exec.id()));
    force_cleanup(exec.id());
}

#[test]
fn oom_kill_is_reported() {
    let cfg = light_runner::config::parse_options(
        serde_json::json!({ "memory": "16m" }).as_object().unwrap(),
    )
    .unwrap();
    // Grows a shell variable until the cap kills it.
    let exec = Runner::new(cfg)
        .run(
            ctx(),
            request("x=a; while true; do x=$x$x$x$x; done"),
            None,
            false,
        )
        .unwrap();
    let r = outcome(&exec).unwrap();
    assert_eq!(r.exit_code, 137, "{r:?}");
    assert!(r.oom_killed, "{r:?}");
    let st = ctx().store.read_now(exec.id()).unwrap();
    assert_eq!(st.oom_killed, Some(true));
    force_cleanup(exec.id());
}
