//! The JS face of the package: converts JS values into the core's types and
//! core results into JS values. No Docker, tar or timing logic lives here.
#![cfg_attr(test, allow(dead_code))]

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use serde_json::{json, Map, Value};

use crate::config;
use crate::errors::InvalidInput;
use crate::execution::{Execution, Outcome};
use crate::runner::Runner;
use crate::{detached, reap, state};

/// Output batches queued for the JS thread before reading pauses.
const LOG_BATCHES_IN_FLIGHT: usize = 256;

fn invalid(e: InvalidInput) -> Error {
    Error::new(Status::InvalidArg, e.message)
}

fn as_map(v: Option<Value>, what: &str) -> Result<Map<String, Value>> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(Error::new(
            Status::InvalidArg,
            format!("{what} must be an object, got {other}"),
        )),
    }
}

/// A plain JS object converted field by field, so a value JSON cannot hold
/// (a function, a symbol) is reported with the name of its field.
fn fields(env: &Env, value: &Unknown, what: &str) -> Result<Map<String, Value>> {
    // SAFETY: the caller checked that `value` is an object.
    let obj: Object = unsafe { value.cast()? };
    let mut map = Map::new();
    for key in Object::keys(&obj)? {
        let field: Unknown = obj.get_named_property(&key)?;
        let json: Value = env.from_js_value(field).map_err(|e| {
            Error::new(
                Status::InvalidArg,
                format!("Invalid {key} in {what}: {}", e.reason),
            )
        })?;
        map.insert(key, json);
    }
    Ok(map)
}

/// `{ ok: true, value }` or `{ ok: false, error }`: the JS layer turns the
/// error into a `LightRunnerError`, which only JS can construct.
pub fn outcome_json(o: &Outcome) -> Value {
    match o {
        Ok(r) => json!({ "ok": true, "value": r }),
        Err(e) => json!({ "ok": false, "error": e.to_json() }),
    }
}

/// A JS promise settled by a future on the core's runtime. The pending
/// promise also keeps the Node event loop alive until it settles.
fn promise<'env, T, F>(env: &'env Env, fut: F) -> Result<Object<'env>>
where
    T: ToNapiValue + Send + 'static,
    F: std::future::Future<Output = std::result::Result<T, String>> + Send + 'static,
{
    let (deferred, promise) =
        env.create_deferred::<T, Box<dyn FnOnce(Env) -> Result<T> + Send>>()?;
    crate::rt::spawn(async move {
        let settled =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut)).await;
        match settled {
            Ok(Ok(v)) => deferred.resolve(Box::new(move |_| Ok(v))),
            Ok(Err(msg)) => deferred.reject(Error::from_reason(msg)),
            Err(_) => deferred.reject(Error::from_reason("internal error in light-runner (panic)")),
        }
    });
    Ok(promise)
}

/// Runs jobs in hardened containers.
#[napi(js_name = "DockerRunner")]
pub struct JsDockerRunner {
    runner: Runner,
}

#[napi]
impl JsDockerRunner {
    #[napi(constructor, catch_unwind)]
    pub fn new(env: &Env, options: Option<Unknown>) -> Result<Self> {
        let map = match options {
            Some(o) if o.get_type()? == ValueType::Object => fields(env, &o, "options")?,
            Some(o) if !matches!(o.get_type()?, ValueType::Undefined | ValueType::Null) => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("options must be an object, got {:?}", o.get_type()?),
                ))
            }
            _ => Map::new(),
        };
        let cfg = config::parse_options(&map).map_err(invalid)?;
        Ok(JsDockerRunner {
            runner: Runner::new(cfg),
        })
    }

    /// Native half of `run()`: the JS layer has already taken out `onLog`,
    /// `signal` and `input` (stringified).
    #[napi(js_name = "_run", catch_unwind)]
    pub fn run(
        &self,
        env: &Env,
        request: Unknown,
        on_log: Option<ThreadsafeFunction<Vec<String>, (), Vec<String>, Status, false>>,
        aborted: bool,
        input_json: Option<String>,
    ) -> Result<JsExecution> {
        if request.get_type()? != ValueType::Object {
            return Err(Error::new(
                Status::InvalidArg,
                format!("request must be an object, got {:?}", request.get_type()?),
            ));
        }
        let map = fields(env, &request, "request")?;
        let req = config::parse_request(&map, input_json).map_err(invalid)?;
        if req.detached {
            let exec = detached::launch(&self.runner, req, aborted)
                .map_err(|e| Error::new(Status::GenericFailure, e))?;
            // Keep the process alive until the container has started; after
            // that a detached run no longer needs its host.
            let started = exec.clone();
            let _ = promise(env, async move {
                started.started().await;
                Ok::<(), String>(())
            })?;
            return Ok(JsExecution { inner: exec });
        }
        let sink = on_log.map(|tsfn| {
            let tsfn = Arc::new(tsfn);
            // At most LOG_BATCHES_IN_FLIGHT batches wait for the JS thread.
            let permits = Arc::new(tokio::sync::Semaphore::new(LOG_BATCHES_IN_FLIGHT));
            Arc::new(move |lines: Vec<String>| {
                let tsfn = tsfn.clone();
                let permits = permits.clone();
                Box::pin(async move {
                    let Ok(permit) = permits.acquire_owned().await else {
                        return;
                    };
                    tsfn.call_with_return_value(
                        lines,
                        ThreadsafeFunctionCallMode::NonBlocking,
                        move |_, _| {
                            drop(permit);
                            Ok(())
                        },
                    );
                }) as futures_util::future::BoxFuture<'static, ()>
            }) as crate::runner::LogSink
        });
        Ok(JsExecution {
            inner: self.runner.run_attached(req, sink, aborted),
        })
    }

    /// True when the Docker daemon answers a ping within 5 s.
    #[napi(catch_unwind)]
    pub fn is_available<'env>(env: &'env Env) -> Result<Object<'env>> {
        promise(env, async { Ok(crate::docker::connected().await.is_ok()) })
    }

    /// Reconnects to a detached run by id; null when no state file exists.
    #[napi(catch_unwind)]
    pub fn attach(id: Value, _options: Option<Value>) -> Result<Option<JsExecution>> {
        let Value::String(id) = id else {
            return Err(Error::new(
                Status::InvalidArg,
                format!("Invalid id: expected a run id string, got {id}"),
            ));
        };
        Ok(detached::attach(&id).map(|inner| JsExecution { inner }))
    }

    /// Every readable state file.
    #[napi(catch_unwind)]
    pub fn list() -> Vec<Value> {
        state::list_states()
    }

    #[napi(catch_unwind)]
    pub fn cleanup_orphan_states<'env>(env: &'env Env) -> Result<Object<'env>> {
        promise(env, async {
            detached::cleanup_orphan_states().await.map(|n| n as u32)
        })
    }

    #[napi(catch_unwind)]
    pub fn reap_orphans<'env>(env: &'env Env) -> Result<Object<'env>> {
        promise(env, async {
            reap::reap_orphans()
                .await
                .map(|(c, v)| json!({ "containers": c, "volumes": v }))
        })
    }

    #[napi(catch_unwind)]
    pub fn cleanup_orphan_volumes<'env>(env: &'env Env) -> Result<Object<'env>> {
        promise(env, async { reap::cleanup_orphan_volumes().await })
    }
}

/// A handle on one run.
#[napi(js_name = "Execution")]
pub struct JsExecution {
    inner: Execution,
}

#[napi]
impl JsExecution {
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    #[napi(catch_unwind)]
    pub fn cancel(&self, env: &Env) -> Result<()> {
        // The pending promise keeps the host alive until the kill is sent.
        if let Some(kill) = self.inner.cancel() {
            promise(env, async move {
                let _ = kill.await;
                Ok::<(), String>(())
            })?;
        }
        Ok(())
    }

    #[napi(catch_unwind)]
    pub fn stop<'env>(&self, env: &'env Env, options: Option<Value>) -> Result<Object<'env>> {
        let map = as_map(options, "stop options")?;
        let signal = match map.get("signal") {
            None | Some(Value::Null) => "SIGTERM".to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(v) => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("Invalid signal: expected a signal name like 'SIGTERM', got {v}"),
                ))
            }
        };
        let grace = match map.get("grace") {
            None | Some(Value::Null) => 10_000.0,
            Some(v) => v
                .as_f64()
                .filter(|g| g.is_finite() && *g >= 0.0)
                .ok_or_else(|| {
                    Error::new(
                        Status::InvalidArg,
                        format!("Invalid grace: expected milliseconds >= 0, got {v}"),
                    )
                })?,
        };
        let exec = self.inner.clone();
        promise(env, async move {
            exec.stop(&signal, Duration::from_millis(grace as u64))
                .await
                .map_err(|e| e.message)
        })
    }

    #[napi(catch_unwind)]
    pub fn pause<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let exec = self.inner.clone();
        promise(env, async move { exec.pause().await })
    }

    #[napi(catch_unwind)]
    pub fn resume<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let exec = self.inner.clone();
        promise(env, async move { exec.resume().await })
    }

    /// The outcome as `{ ok, value | error }`; never rejects.
    #[napi(js_name = "_outcome", catch_unwind)]
    pub fn outcome<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let exec = self.inner.clone();
        promise(env, async move { Ok(outcome_json(&exec.outcome().await)) })
    }
}

#[napi(catch_unwind)]
pub fn list_states() -> Vec<Value> {
    state::list_states()
}

#[napi(catch_unwind)]
pub fn read_state(id: String) -> Option<Value> {
    state::read_state_json(&id)
}

/// Where `watchdog.js` lives (called once by the loader).
#[napi(js_name = "_setWatchdogScript", catch_unwind)]
pub fn set_watchdog_script(path: String) {
    crate::watchdog::set_script(path.into());
}

/// Where the native watchdog binary lives (called once by the loader).
#[napi(js_name = "_setWatchdogBinary", catch_unwind)]
pub fn set_watchdog_binary(path: String) {
    crate::watchdog::set_binary(path.into());
}

/// Entry point of the watchdog process: blocks until the host is gone.
#[napi(js_name = "_watchdogMain", catch_unwind)]
pub fn watchdog_main(parent_pid: Option<u32>) {
    let stdin = std::io::BufReader::new(std::io::stdin());
    crate::watchdog::serve(stdin, parent_pid);
}
