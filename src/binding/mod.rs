//! The JS face of the package: converts JS values into the core's types and
//! core results into JS values. No Docker, tar or timing logic lives here.
#![cfg_attr(test, allow(dead_code))]

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use serde_json::{json, Map, Value};

use crate::backend::docker::network;
use crate::config::{self, Settings};
use crate::engine::ctx::{Ctx, Host};
use crate::engine::execution::{Execution, Outcome};
use crate::engine::runner::Runner;
use crate::engine::{attach, output};
use crate::errors::InvalidInput;
use crate::lines::{self, LogLine, LogSink, Stream as LogStream};
use crate::maintenance;
use crate::store::Store;

mod types;
mod values;
use values::{Js, Shape};

fn invalid(e: InvalidInput) -> Error {
    Error::new(Status::InvalidArg, e.message)
}

const OPTION_FIELDS: &[(&str, Shape)] = types::RunnerOptions::FIELDS;

/// `onLog`, `signal` and `input` are taken out by the JS layer.
const REQUEST_FIELDS: &[(&str, Shape)] = types::NativeRunRequest::FIELDS;

const STOP_FIELDS: &[(&str, Shape)] = types::StopOptions::FIELDS;

/// `attach()` and `logs()` options; `onLog` is taken out by the JS layer,
/// which also turns a `Date` `since` into epoch ms.
const LOG_FIELDS: &[(&str, Shape)] = types::NativeLogsOptions::FIELDS;

/// Batches of output a reader holds before it stops reading.
const READER_BATCHES: usize = 16;

const NETWORK_FIELDS: &[(&str, Shape)] = types::CreateNetworkOptions::FIELDS;

const NETWORK_CLEANUP_FIELDS: &[(&str, Shape)] = types::CleanupNetworkOptions::FIELDS;

/// The known fields of a JS object argument (`what` names it in errors);
/// `undefined`/`null` reads as an empty object.
fn object_arg(
    env: &Env,
    value: Option<&Unknown>,
    what: &str,
    fields: &[(&str, Shape)],
) -> Result<Map<String, Value>> {
    let Some(value) = value else {
        return Ok(Map::new());
    };
    let js = Js::new(env, value.raw());
    if js.is_nullish() {
        return Ok(Map::new());
    }
    if js.type_of() != napi::sys::ValueType::napi_object || js.is_array() {
        return Err(Error::new(
            Status::InvalidArg,
            format!("Invalid {what}: expected an object, got {}", js.kind()),
        ));
    }
    values::read_fields(js, fields).map_err(|bad| {
        let top = bad
            .path
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_string();
        values::bad_value(bad, config::expected(&top))
    })
}

/// A string argument such as a run id or a network name.
fn string_arg(env: &Env, value: &Unknown, what: &str, expected: &str) -> Result<String> {
    let js = Js::new(env, value.raw());
    if js.type_of() != napi::sys::ValueType::napi_string {
        return Err(Error::new(
            Status::InvalidArg,
            format!("Invalid {what}: expected {expected}, got {}", js.kind()),
        ));
    }
    js.string()
        .map_err(|e| Error::new(Status::InvalidArg, format!("Invalid {what}: {e}")))
}

/// `{ ok: true, value }` or `{ ok: false, error }`: the JS layer turns the
/// error into a `LightRunnerError` (or a plain `Error` without a code),
/// which only JS can construct.
fn settled<T: serde::Serialize, E: Into<crate::errors::SharedError>>(
    r: std::result::Result<T, E>,
) -> Value {
    let r = r.map_err(Into::into);
    match r {
        Ok(v) => json!({ "ok": true, "value": v }),
        Err(e) => json!({ "ok": false, "error": e.public().to_json() }),
    }
}

fn outcome_json(o: &Outcome) -> Value {
    match o {
        Ok(r) => json!({ "ok": true, "value": r }),
        Err(e) => json!({ "ok": false, "error": e.public().to_json() }),
    }
}

/// A JS promise that resolves, once `fut` is done on the core's runtime, to
/// its settled JSON; it never rejects (a panic becomes an error value). The
/// pending promise keeps the Node event loop alive until it settles.
fn promise<'env, F>(env: &'env Env, fut: F) -> Result<Object<'env>>
where
    F: std::future::Future<Output = Value> + Send + 'static,
{
    let (deferred, promise) =
        env.create_deferred::<Value, Box<dyn FnOnce(Env) -> Result<Value> + Send>>()?;
    crate::rt::spawn(async move {
        let v = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut))
            .await
            .unwrap_or_else(|_| {
                settled::<(), _>(Err(crate::errors::Error::Internal("panic".into())))
            });
        deferred.resolve(Box::new(move |_| Ok(v)));
    });
    Ok(promise)
}

/// A batch of lines as JS receives it: `(lines, streams, times)`, where
/// `streams` has one letter per line (`o` stdout, `e` stderr) and `times`
/// the epoch ms of each line.
type Batch = FnArgs<(Vec<String>, String, Vec<f64>)>;
type JsLog = ThreadsafeFunction<Batch, (), Batch, Status, false>;

fn batch(lines: Vec<LogLine>) -> (Vec<String>, String, Vec<f64>) {
    let mut streams = String::with_capacity(lines.len());
    let mut times = Vec::with_capacity(lines.len());
    let text = lines
        .into_iter()
        .map(|l| {
            streams.push(match l.stream {
                LogStream::Stdout => 'o',
                LogStream::Stderr => 'e',
            });
            times.push(l.time as f64);
            l.line
        })
        .collect();
    (text, streams, times)
}

/// Lines to JS in batches, with at most `lines::IN_FLIGHT` of them (as
/// `lines::cost` counts) waiting for the JS thread.
fn log_sink(tsfn: JsLog) -> LogSink {
    let tsfn = Arc::new(tsfn);
    let permits = Arc::new(tokio::sync::Semaphore::new(lines::IN_FLIGHT as usize));
    Arc::new(move |lines: Vec<LogLine>| {
        let tsfn = tsfn.clone();
        let permits = permits.clone();
        Box::pin(async move {
            let Ok(permit) = permits.acquire_many_owned(lines::cost(&lines)).await else {
                return;
            };
            tsfn.call_with_return_value(
                FnArgs::from(batch(lines)),
                ThreadsafeFunctionCallMode::NonBlocking,
                move |_, _| {
                    drop(permit);
                    Ok(())
                },
            );
        }) as futures_util::future::BoxFuture<'static, ()>
    })
}

fn core_error(e: crate::errors::Error) -> Error {
    Error::new(Status::GenericFailure, e.to_string())
}

/// What this process shares among all its runs (the runs it drives, a
/// client per daemon). The JS layer makes one when the package loads and
/// passes it to every call, so the core keeps no global of its own.
#[napi(js_name = "Host")]
pub struct JsHost {
    inner: Arc<Host>,
}

#[napi]
impl JsHost {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        JsHost {
            inner: Arc::new(Host::default()),
        }
    }
}

/// The context of a call: the host, and the environment as it is now.
fn ctx(host: &JsHost) -> Ctx {
    Ctx::from_env(host.inner.clone())
}

/// The state store the environment names now.
fn store() -> Store {
    Store::new(Settings::from_env().state_dir)
}

/// Runs jobs in hardened containers.
#[napi(js_name = "DockerRunner")]
pub struct JsDockerRunner {
    runner: Runner,
}

#[napi]
impl JsDockerRunner {
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "options?: RunnerOptions | null"
    )]
    pub fn new(env: &Env, options: Option<Unknown>) -> Result<Self> {
        let map = object_arg(env, options.as_ref(), "options", OPTION_FIELDS)?;
        let cfg = config::parse_options(&map).map_err(invalid)?;
        Ok(JsDockerRunner {
            runner: Runner::new(cfg),
        })
    }

    /// Native half of `run()`: the JS layer has already read `onLog`,
    /// `signal` and `input` (stringified).
    #[napi(
        js_name = "_run",
        catch_unwind,
        ts_args_type = "host: Host, request: NativeRunRequest, onLog: ((lines: Array<string>, streams: string, times: Array<number>) => void) | undefined | null, aborted: boolean, inputJson?: string | undefined | null"
    )]
    pub fn run(
        &self,
        env: &Env,
        host: &JsHost,
        request: Unknown,
        on_log: Option<JsLog>,
        aborted: bool,
        input_json: Option<String>,
    ) -> Result<JsExecution> {
        let map = object_arg(env, Some(&request), "request", REQUEST_FIELDS)?;
        let req = config::parse_request(&map, input_json).map_err(invalid)?;
        let ctx = ctx(host);
        let on_log = on_log.filter(|_| !req.detached).map(log_sink);
        let inner = self
            .runner
            .run(ctx, req, on_log, aborted)
            .map_err(core_error)?;
        Ok(JsExecution { inner })
    }

    /// `runner.prewarm(request, count?)`: the shape fields of `request`
    /// (image, run, networks, workdir); resolves once `count` (default
    /// `warm`) containers of that shape are ready.
    #[napi(
        js_name = "_prewarm",
        catch_unwind,
        ts_args_type = "host: Host, request: NativeRunRequest, count?: number | undefined | null"
    )]
    pub fn prewarm<'env>(
        &self,
        env: &'env Env,
        host: &JsHost,
        request: Unknown,
        count: Option<u32>,
    ) -> Result<Object<'env>> {
        let map = object_arg(env, Some(&request), "request", REQUEST_FIELDS)?;
        let req = config::parse_request(&map, None).map_err(invalid)?;
        // Checked by the JS layer (a whole number, 1 to 1000).
        let count = count.map(|c| c as usize);
        let pool = self.runner.warm_pool().cloned();
        let warm = self.runner.config().warm;
        let ctx = ctx(host);
        promise(env, async move {
            settled(
                async {
                    let Some(pool) = pool else {
                        return Err(crate::errors::Error::InvalidOption(InvalidInput::new(
                            "warm",
                            "prewarm() needs a runner with RunnerOptions.warm > 0",
                        )));
                    };
                    pool.prewarm(ctx, &req, count.unwrap_or(warm)).await
                }
                .await,
            )
        })
    }

    /// `runner.close()`: removes the warm containers (and those being made)
    /// and resolves once they are gone.
    #[napi(js_name = "_close", catch_unwind)]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let pool = self.runner.warm_pool().cloned();
        promise(env, async move {
            if let Some(p) = pool {
                p.close().await;
            }
            Value::Null
        })
    }

    /// True when the Docker daemon answers a ping within 5 s.
    #[napi(js_name = "_isAvailable", catch_unwind)]
    pub fn is_available<'env>(env: &'env Env, host: &JsHost) -> Result<Object<'env>> {
        let ctx = ctx(host);
        promise(env, async move { json!(ctx.connected().await.is_ok()) })
    }

    /// Reconnects to a run by id; null when no state file exists. The
    /// options (`since`, `follow`) are checked here; the JS layer reads the
    /// output with `_openLogs`.
    #[napi(
        js_name = "_attach",
        catch_unwind,
        ts_args_type = "host: Host, id: string, options?: NativeLogsOptions | null"
    )]
    pub fn attach(
        env: &Env,
        host: &JsHost,
        id: Unknown,
        options: Option<Unknown>,
    ) -> Result<Option<JsExecution>> {
        let id = string_arg(env, &id, "id", "a run id string")?;
        let map = object_arg(env, options.as_ref(), "options", LOG_FIELDS)?;
        config::parse_log_options(&map).map_err(invalid)?;
        Ok(attach::attach(ctx(host), &id).map(|inner| JsExecution { inner }))
    }

    /// Every readable state file.
    #[napi(catch_unwind)]
    pub fn list() -> Vec<Value> {
        store().list_json_now()
    }

    #[napi(js_name = "_cleanupOrphanStates", catch_unwind)]
    pub fn cleanup_orphan_states<'env>(env: &'env Env, host: &JsHost) -> Result<Object<'env>> {
        let ctx = ctx(host);
        promise(env, async move {
            settled(maintenance::cleanup_orphan_states(&ctx).await)
        })
    }

    #[napi(js_name = "_reapOrphans", catch_unwind)]
    pub fn reap_orphans<'env>(env: &'env Env, host: &JsHost) -> Result<Object<'env>> {
        let ctx = ctx(host);
        promise(env, async move {
            settled(
                maintenance::reap_orphans(&ctx)
                    .await
                    .map(|(c, v)| json!({ "containers": c, "volumes": v })),
            )
        })
    }

    #[napi(js_name = "_cleanupOrphanVolumes", catch_unwind)]
    pub fn cleanup_orphan_volumes<'env>(env: &'env Env, host: &JsHost) -> Result<Object<'env>> {
        let ctx = ctx(host);
        promise(env, async move {
            settled(maintenance::cleanup_orphan_volumes(&ctx).await)
        })
    }

    /// Removes old terminal state files; returns how many.
    #[napi(js_name = "_cleanupOldStates", catch_unwind)]
    pub fn cleanup_old_states(host: &JsHost) -> u32 {
        maintenance::cleanup_old_states(&ctx(host))
    }

    #[napi(js_name = "_cleanupOrphanCache", catch_unwind)]
    pub fn cleanup_orphan_cache<'env>(env: &'env Env, host: &JsHost) -> Result<Object<'env>> {
        let ctx = ctx(host);
        promise(env, async move {
            settled(maintenance::cleanup_orphan_cache(&ctx).await)
        })
    }

    #[napi(js_name = "_cleanupDanglingImages", catch_unwind)]
    pub fn cleanup_dangling_images<'env>(env: &'env Env, host: &JsHost) -> Result<Object<'env>> {
        let ctx = ctx(host);
        promise(env, async move {
            settled(maintenance::cleanup_dangling_images(&ctx).await)
        })
    }
}

/// The native half of an `Execution`.
#[napi(js_name = "NativeExecution")]
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

    /// True when the run took a warm container.
    #[napi(getter, js_name = "_warm")]
    pub fn warm(&self) -> bool {
        self.inner.is_warm()
    }

    #[napi(catch_unwind)]
    pub fn cancel(&self, env: &Env) -> Result<()> {
        // The pending promise keeps the host alive until the kill is sent.
        if let Some(kill) = self.inner.cancel() {
            promise(env, async move {
                let _ = kill.await;
                Value::Null
            })?;
        }
        Ok(())
    }

    #[napi(
        js_name = "_stop",
        catch_unwind,
        ts_args_type = "options?: StopOptions | null"
    )]
    pub fn stop<'env>(&self, env: &'env Env, options: Option<Unknown>) -> Result<Object<'env>> {
        let map = object_arg(env, options.as_ref(), "stop options", STOP_FIELDS)?;
        let stop = config::parse_stop(&map).map_err(invalid)?;
        let exec = self.inner.clone();
        promise(env, async move {
            settled(exec.stop(&stop.signal, stop.grace).await)
        })
    }

    #[napi(js_name = "_pause", catch_unwind)]
    pub fn pause<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let exec = self.inner.clone();
        promise(env, async move { settled(exec.pause().await) })
    }

    #[napi(js_name = "_resume", catch_unwind)]
    pub fn resume<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let exec = self.inner.clone();
        promise(env, async move { settled(exec.resume().await) })
    }

    /// The outcome as `{ ok, value | error }`; never rejects.
    #[napi(js_name = "_outcome", catch_unwind)]
    pub fn outcome<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let exec = self.inner.clone();
        promise(env, async move { outcome_json(&exec.outcome().await) })
    }

    /// Resolves once the container started or setup ended (a detached run
    /// keeps its host alive until then).
    #[napi(js_name = "_started", catch_unwind)]
    pub fn started<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let exec = self.inner.clone();
        promise(env, async move {
            exec.started().await;
            Value::Null
        })
    }

    /// Milestones reached so far: `[[name, epochMs], ...]`.
    #[napi(js_name = "_phases", catch_unwind)]
    pub fn phases(&self) -> Value {
        let list: Vec<Value> = self
            .inner
            .milestones()
            .into_iter()
            .map(|(m, at)| json!([m.as_str(), at]))
            .collect();
        Value::Array(list)
    }
}

/// Reads a run's output (`attach(id, { onLog })`, `execution.logs()`): a
/// task reads ahead at most READER_BATCHES batches; `next()` takes them.
#[napi(js_name = "NativeLogReader")]
pub struct JsLogReader {
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Vec<LogLine>>>>,
    /// The reading task's end: its error, if it failed.
    end: Arc<std::sync::Mutex<Option<crate::errors::Result<()>>>>,
    task: tokio::task::AbortHandle,
}

#[napi]
impl JsLogReader {
    /// The next lines as `{ lines, streams, times }` (see [`Batch`]), or
    /// null at the end; settled JSON, never rejects.
    #[napi(js_name = "_next", catch_unwind)]
    pub fn next<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let rx = self.rx.clone();
        let end = self.end.clone();
        promise(env, async move {
            let mut got = Vec::new();
            let n = rx.lock().await.recv_many(&mut got, READER_BATCHES).await;
            if n == 0 {
                let ended = end.lock().unwrap_or_else(|p| p.into_inner()).take();
                return settled(ended.unwrap_or(Ok(())).map(|()| Value::Null));
            }
            let (lines, streams, times) = batch(got.into_iter().flatten().collect());
            settled::<Value, crate::errors::Error>(Ok(
                json!({ "lines": lines, "streams": streams, "times": times }),
            ))
        })
    }

    /// Stops reading (a `break` out of the iteration).
    #[napi]
    pub fn close(&self) {
        self.task.abort();
    }
}

impl Drop for JsLogReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens a reader of run `id`'s output, in the state dir of this moment.
#[napi(
    js_name = "_openLogs",
    catch_unwind,
    ts_args_type = "host: Host, id: string, options?: NativeLogsOptions | null"
)]
pub fn open_logs(
    env: &Env,
    host: &JsHost,
    id: Unknown,
    options: Option<Unknown>,
) -> Result<JsLogReader> {
    let id = string_arg(env, &id, "id", "a run id string")?;
    let map = object_arg(env, options.as_ref(), "options", LOG_FIELDS)?;
    let opts = config::parse_log_options(&map).map_err(invalid)?;
    let (tx, rx) = tokio::sync::mpsc::channel(READER_BATCHES);
    let end = Arc::new(std::sync::Mutex::new(None));
    let done = end.clone();
    let ctx = ctx(host);
    let task = crate::rt::spawn(async move {
        let r = output::read(ctx, id, opts, tx.clone()).await;
        *done.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        // The channel closes only now, after the end is known.
        drop(tx);
    });
    Ok(JsLogReader {
        rx: Arc::new(tokio::sync::Mutex::new(rx)),
        end,
        task: task.abort_handle(),
    })
}

#[napi(catch_unwind)]
pub fn list_states() -> Vec<Value> {
    store().list_json_now()
}

#[napi(catch_unwind)]
pub fn read_state(env: &Env, id: Unknown) -> Result<Option<Value>> {
    let id = string_arg(env, &id, "id", "a run id string")?;
    store().read_json_now(&id).map_err(core_error)
}

#[napi(catch_unwind)]
pub fn delete_state(env: &Env, id: Unknown) -> Result<()> {
    let id = string_arg(env, &id, "id", "a run id string")?;
    store().delete_now(&id).map_err(|e| {
        Error::new(
            Status::GenericFailure,
            format!("deleteState({id}) failed: {e}"),
        )
    })
}

fn network_name(env: &Env, name: &Unknown) -> Result<String> {
    let name = string_arg(env, name, "name", "a network name string")?;
    config::parse_network_name(&name).map_err(invalid)
}

#[napi(
    js_name = "_createNetwork",
    catch_unwind,
    ts_args_type = "host: Host, name: string, options?: CreateNetworkOptions | null"
)]
pub fn create_network<'env>(
    env: &'env Env,
    host: &JsHost,
    name: Unknown,
    options: Option<Unknown>,
) -> Result<Object<'env>> {
    let name = network_name(env, &name)?;
    let map = object_arg(env, options.as_ref(), "options", NETWORK_FIELDS)?;
    let opts = config::parse_network_options(&map).map_err(invalid)?;
    let ctx = ctx(host);
    promise(env, async move {
        settled(
            async {
                let d = ctx.connected().await?.docker;
                network::create(&d, &name, &opts).await
            }
            .await,
        )
    })
}

#[napi(js_name = "_deleteNetwork", catch_unwind)]
pub fn delete_network<'env>(env: &'env Env, host: &JsHost, name: Unknown) -> Result<Object<'env>> {
    let name = network_name(env, &name)?;
    let ctx = ctx(host);
    promise(env, async move {
        settled(
            async {
                let d = ctx.connected().await?.docker;
                // Idle warm containers on it do not make it "in use".
                ctx.host.drain_warm_network(&name).await;
                let host = ctx.host.clone();
                network::drain_removable(&d, &name, &|n, labels| {
                    crate::engine::warm::is_idle_warm(&host, n, labels)
                })
                .await?;
                network::delete(&d, &name).await
            }
            .await,
        )
    })
}

#[napi(js_name = "_networkExists", catch_unwind)]
pub fn network_exists<'env>(env: &'env Env, host: &JsHost, name: Unknown) -> Result<Object<'env>> {
    let name = network_name(env, &name)?;
    let ctx = ctx(host);
    promise(env, async move {
        settled(
            async {
                let d = ctx.connected().await?.docker;
                network::exists(&d, &name).await
            }
            .await,
        )
    })
}

#[napi(
    js_name = "_cleanupOrphanNetworks",
    catch_unwind,
    ts_args_type = "host: Host, options?: CleanupNetworkOptions | null"
)]
pub fn cleanup_orphan_networks<'env>(
    env: &'env Env,
    host: &JsHost,
    options: Option<Unknown>,
) -> Result<Object<'env>> {
    let map = object_arg(env, options.as_ref(), "options", NETWORK_CLEANUP_FIELDS)?;
    let (prefix, max_age) = config::parse_network_cleanup(&map).map_err(invalid)?;
    let ctx = ctx(host);
    promise(env, async move {
        settled(
            async {
                let d = ctx.connected().await?.docker;
                let host = ctx.host.clone();
                let removed = network::cleanup_orphans(&d, &prefix, max_age, &|name, labels| {
                    crate::engine::warm::is_idle_warm(&host, name, labels)
                })
                .await?;
                // Their warm containers went with them: the pools let go
                // of the shapes on them, rather than refill there.
                for name in &removed {
                    ctx.host.drain_warm_network(name).await;
                }
                Ok::<_, crate::errors::Error>(removed.len() as u32)
            }
            .await,
        )
    })
}

/// The fields each options argument accepts, as the binding reads them
/// (checked against index.d.ts by the contract test). `onLog`, `signal`
/// and `input` of a request are read by the JS layer.
#[napi(js_name = "_contract", catch_unwind)]
pub fn contract() -> Value {
    let names = |fields: &[(&str, Shape)]| -> Vec<String> {
        fields.iter().map(|(n, _)| n.to_string()).collect()
    };
    json!({
        "RunnerOptions": names(OPTION_FIELDS),
        "RunRequest": names(REQUEST_FIELDS),
        "StopOptions": names(STOP_FIELDS),
        "CreateNetworkOptions": names(NETWORK_FIELDS),
        "CleanupNetworkOptions": names(NETWORK_CLEANUP_FIELDS),
        "errorCodes": crate::errors::ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "dockerOps": crate::errors::DockerOp::ALL.iter().map(|o| o.name()).collect::<Vec<_>>(),
    })
}

/// `light-runner doctor`: the endpoint the environment resolves to and how,
/// the daemon's version and runtimes (through the Engine API), the state
/// dir, the watchdog. Never rejects: what failed is said in the value.
#[napi(js_name = "_doctor", catch_unwind)]
pub fn doctor<'env>(env: &'env Env, host: &JsHost) -> Result<Object<'env>> {
    let ctx = ctx(host);
    let watchdog = crate::watchdog::described()
        .map(|(native, path)| json!({ "native": native, "path": path }));
    promise(env, async move {
        let endpoint = match &ctx.endpoint {
            Ok(ep) => json!({
                "host": ep.host,
                "from": ep.source.to_string(),
                "source": ep.source,
                "tls": ep.tls,
                "described": ep.describe(),
            }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        let daemon = match ctx.daemon() {
            Ok(d) => match d.describe().await {
                Ok(info) => json!(info),
                Err(e) => json!({ "error": e.public().to_json() }),
            },
            Err(e) => json!({ "error": e.public().to_json() }),
        };
        json!({
            "endpoint": endpoint,
            "daemon": daemon,
            "stateDir": ctx.store.dir(),
            "watchdog": watchdog,
        })
    })
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
