use super::*;
use proptest::prelude::*;
use serde_json::json;

/// The seed's example (the original's README, "State file lifecycle").
fn seed_example() -> Value {
    json!({
        "id": "light-runner-abc123def456",
        "container": "light-runner-abc123def456",
        "volume": "light-runner-abc123def456",
        "image": "python:3.12-alpine",
        "workdir": "/app",
        "entrypoint": "python long_job.py",
        "timeout": 21600000,
        "extract": [{ "from": "/app/result.json", "to": "./out" }],
        "startedAt": "2026-04-27T10:15:00.000Z",
        "status": "running"
    })
}

/// The files the original's own state tests write: `mkState(id)`, then
/// `updateState(id, { status: 'exited', exitCode: 0 })`.
fn original_fixtures() -> Vec<Value> {
    let running = json!({
        "id": "r1", "container": "r1", "volume": "r1", "image": "alpine:3.19",
        "workdir": "/app", "startedAt": "2026-11-30T08:01:02.345Z", "status": "running"
    });
    let mut exited = running.clone();
    exited["status"] = json!("exited");
    exited["exitCode"] = json!(0);
    let mut finished = seed_example();
    finished["status"] = json!("cancelled");
    finished["exitCode"] = json!(137);
    finished["cancelled"] = json!(true);
    finished["finishedAt"] = json!("2026-04-27T16:15:00.000Z");
    finished["durationMs"] = json!(21600000);
    vec![seed_example(), running, exited, finished]
}

fn round_trip(v: &Value) -> Value {
    let r: RunRecord = serde_json::from_value(v.clone()).expect("a record");
    serde_json::to_value(&r).unwrap()
}

#[test]
fn the_originals_files_round_trip_and_are_typed() {
    for v in original_fixtures() {
        assert_eq!(round_trip(&v), v);
    }
    let r: RunRecord = serde_json::from_value(seed_example()).unwrap();
    assert_eq!(r.status, RunStatus::Running);
    assert_eq!(r.timeout_ms(), Some(21_600_000));
    assert_eq!(r.command_line(), Some("python long_job.py"));
    assert_eq!(
        r.started_ms(),
        crate::time::parse_iso("2026-04-27T10:15:00.000Z")
    );
    assert!(r.extra.is_empty(), "{:?}", r.extra);
}

#[test]
fn the_written_text_keeps_the_originals_field_order() {
    let r: RunRecord = serde_json::from_value(seed_example()).unwrap();
    let text = serde_json::to_string(&r).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(at("id") < at("container") && at("workdir") < at("entrypoint"));
    assert!(at("extract") < at("startedAt") && at("startedAt") < at("status"));
}

#[test]
fn this_versions_fields_are_typed() {
    let mut v = seed_example();
    v["maxExtractBytes"] = json!(1024);
    v["maxLogBytes"] = json!(10);
    v["logs"] = json!({ "bytes": 3, "lines": 1, "droppedLines": 0, "cap": 100 });
    v["logsTruncated"] = json!(true);
    v["phase"] = json!("setup");
    v["lost"] = json!("daemon-stopped");
    v["finalizing"] = json!({ "hostname": "h", "pid": 7, "heartbeat": 5 });
    let r: RunRecord = serde_json::from_value(v.clone()).unwrap();
    assert!(r.extra.is_empty(), "{:?}", r.extra);
    assert_eq!(r.max_extract_bytes, Some(1024));
    assert_eq!(r.logs.as_ref().unwrap().cap, 100);
    assert_eq!(r.phase, Some(RunPhase::Setup));
    assert_eq!(r.lost, Some(Lost::DaemonStopped));
    assert_eq!(r.finalizing.as_ref().unwrap().host.pid, 7);
    assert_eq!(serde_json::to_value(&r).unwrap(), v);
}

#[test]
fn odd_values_of_known_fields_are_kept_as_written() {
    let mut v = seed_example();
    v["exitCode"] = Value::Null;
    v["durationMs"] = json!(12.5);
    v["phase"] = json!("warming");
    v["extract"] = json!([{ "from": "/a", "to": "b", "mode": 1 }]);
    let r: RunRecord = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(r.exit_code, None);
    assert_eq!(r.duration_ms, None);
    assert_eq!(r.phase, None);
    assert_eq!(r.extract, None);
    assert_eq!(r.extra.len(), 4);
    assert_eq!(serde_json::to_value(&r).unwrap(), v);
}

#[test]
fn a_file_without_the_seed_fields_is_not_a_record() {
    for missing in [
        "id",
        "container",
        "volume",
        "image",
        "workdir",
        "startedAt",
        "status",
    ] {
        let mut v = seed_example();
        v.as_object_mut().unwrap().remove(missing);
        assert!(serde_json::from_value::<RunRecord>(v).is_err(), "{missing}");
    }
    let mut v = seed_example();
    v["status"] = json!("paused");
    assert!(serde_json::from_value::<RunRecord>(v).is_err());
}

#[test]
fn the_originals_odd_timeouts_are_read() {
    for (t, ms) in [
        (json!(-1), None),
        (json!(1500.5), Some(1500)),
        (json!(0), None),
        (json!(0.5), None),
        (json!(1e300), Some(u64::MAX)),
    ] {
        let mut v = seed_example();
        v["timeout"] = t.clone();
        let r: RunRecord = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(r.timeout_ms(), ms, "{t}");
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }
}

#[test]
fn terminal_fields_and_results() {
    let mut r: RunRecord = serde_json::from_value(seed_example()).unwrap();
    let start = r.started_ms().unwrap();
    r.finish(RunStatus::Exited, Some(0), start + 42);
    assert_eq!(r.duration_ms, Some(42));
    assert_eq!(r.finished_at.as_ref().unwrap().ms(), Some(start + 42));
    assert!(r.result().success);
    r.status = RunStatus::Cancelled;
    r.cancelled = Some(true);
    assert!(!r.result().success && r.result().cancelled);
    r.record_failure("boom", start + 50);
    assert_eq!(r.result().exit_code, 0, "an exit code already known stays");
    assert_eq!(r.error.as_deref(), Some("boom"));
    let mut fresh = RunRecord::new("x", "i", "/app", Stamp::at(start));
    fresh.record_failure("never ran", start + 1);
    assert_eq!(fresh.result().exit_code, -1);
    assert!(!fresh.result().success);
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9 :.-]{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn stamp() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..4_000_000_000_000).prop_map(|ms| Value::from(crate::time::iso(ms))),
        Just(json!("2026-04-27T10:15:00Z")),
        Just(json!("2026-04-27T12:15:00.123456+02:00")),
        "[a-z]{0,8}".prop_map(Value::from),
    ]
}

/// A value for known field `name`: usually one this version writes, else
/// an odd one (null, another type) or none at all.
fn known(name: &'static str) -> BoxedStrategy<Option<Value>> {
    let typical: BoxedStrategy<Value> = match name {
        "timeout" => prop_oneof![
            any::<u32>().prop_map(Value::from),
            (-1_000_000i64..0).prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
        ]
        .boxed(),
        "startedAt" | "finishedAt" | "deadline" | "cancelledAt" | "killAfter" => stamp().boxed(),
        "status" => prop::sample::select(vec!["running", "exited", "cancelled", "failed"])
            .prop_map(Value::from)
            .boxed(),
        "phase" => prop::sample::select(vec!["setup", "started"])
            .prop_map(Value::from)
            .boxed(),
        "lost" => prop::sample::select(vec!["removed", "daemon-stopped", "daemon-unreachable"])
            .prop_map(Value::from)
            .boxed(),
        "exitCode" => any::<i32>().prop_map(Value::from).boxed(),
        "durationMs" | "maxExtractBytes" | "maxLogBytes" => {
            any::<u32>().prop_map(Value::from).boxed()
        }
        "cancelled" | "timedOut" | "oomKilled" | "detached" | "logsTruncated" => {
            any::<bool>().prop_map(Value::from).boxed()
        }
        "extract" => prop::collection::vec(("[a-z/]{0,8}", "[a-z/.]{0,8}"), 0..3)
            .prop_map(|v| {
                json!(v
                    .into_iter()
                    .map(|(f, t)| json!({"from": f, "to": t}))
                    .collect::<Vec<_>>())
            })
            .boxed(),
        "extracted" => prop::collection::vec(("[a-z/]{0,8}", any::<Option<u32>>()), 0..3)
            .prop_map(|v| {
                json!(v
                    .into_iter()
                    .map(|(f, b)| match b {
                        Some(b) => json!({"from": f, "to": "/o", "status": "ok", "bytes": b}),
                        None => json!({"from": f, "to": "/o", "status": "missing"}),
                    })
                    .collect::<Vec<_>>())
            })
            .boxed(),
        "host" => ("[a-z]{1,8}", any::<u32>())
            .prop_map(|(h, p)| json!({"hostname": h, "pid": p}))
            .boxed(),
        "finalizing" => ("[a-z]{1,8}", any::<u32>(), any::<i64>())
            .prop_map(|(h, p, b)| json!({"hostname": h, "pid": p, "heartbeat": b}))
            .boxed(),
        "logs" => (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(b, l, d, c)| json!({"bytes": b, "lines": l, "droppedLines": d, "cap": c}))
            .boxed(),
        "run" => prop::collection::vec("[a-z ]{0,8}", 0..3)
            .prop_map(|v| json!(v))
            .boxed(),
        _ => "[a-zA-Z0-9:/._ -]{0,16}".prop_map(Value::from).boxed(),
    };
    prop_oneof![
        6 => typical.prop_map(Some),
        1 => Just(None),
        1 => json_leaf().prop_map(Some),
    ]
    .boxed()
}

fn record_value() -> impl Strategy<Value = Value> {
    let fields: Vec<BoxedStrategy<Option<Value>>> =
        RunRecord::FIELDS.iter().map(|n| known(n)).collect();
    let unknown = prop::collection::btree_map("x[A-Za-z]{0,8}", json_value(), 0..4);
    (fields, unknown).prop_map(|(values, unknown)| {
        let mut m = Map::new();
        for (name, v) in RunRecord::FIELDS.iter().zip(values) {
            if let Some(v) = v {
                m.insert(name.to_string(), v);
            }
        }
        m.extend(unknown);
        Value::Object(m)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any file that is a record writes back as the same JSON value, field
    /// by field: unknown fields, odd values and missing optional fields
    /// included.
    #[test]
    fn every_record_round_trips(v in record_value()) {
        match serde_json::from_value::<RunRecord>(v.clone()) {
            Ok(r) => prop_assert_eq!(serde_json::to_value(&r).unwrap(), v),
            Err(_) => {
                // Only a file without a fitting seed field is refused.
                let fits = |k: &str, ok: &dyn Fn(&Value) -> bool| v.get(k).is_some_and(ok);
                let complete = ["id", "container", "volume", "image", "workdir", "startedAt"]
                    .iter()
                    .all(|k| fits(k, &|x| x.is_string()))
                    && fits("status", &|x| {
                        matches!(x.as_str(), Some("running" | "exited" | "cancelled" | "failed"))
                    });
                prop_assert!(!complete, "refused a complete record: {}", v);
            }
        }
    }

    /// Negative and fractional timeouts are no timeout or whole ms.
    #[test]
    fn timeouts_are_whole_ms_or_none(t in -1e12f64..1e12) {
        let mut v = seed_example();
        v["timeout"] = json!(t);
        let r: RunRecord = serde_json::from_value(v).unwrap();
        let expected = (t >= 1.0).then_some(t as u64);
        prop_assert_eq!(r.timeout_ms(), expected);
    }
}
