'use strict';
// The JS layer does only what JS must do: load the addon, wire AbortSignal,
// stringify `input` exactly as JSON.stringify does, make LightRunnerError a
// real JS class, hold the `Execution` a caller may also build by hand, and
// report spans to OpenTelemetry when the caller uses it. Every Docker, tar,
// state-file and timing decision is made in Rust (src/).

const path = require('node:path');
const native = require('./native.js');

native._setWatchdogScript(path.join(__dirname, 'watchdog.js'));

/** A Docker failure of a run, with a stable `code`. */
class LightRunnerError extends Error {
  constructor(opts) {
    super(opts.message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    // An ordinary writable property: subclasses may rename themselves.
    this.name = 'LightRunnerError';
    this.code = opts.code;
    if (opts.dockerOp !== undefined) this.dockerOp = opts.dockerOp;
    if (opts.containerId !== undefined) this.containerId = opts.containerId;
  }

  toJSON() {
    const out = { name: this.name, code: this.code, message: this.message };
    if (this.dockerOp !== undefined) out.dockerOp = this.dockerOp;
    if (this.containerId !== undefined) out.containerId = this.containerId;
    return out;
  }
}

/** The error of a settled native call: a LightRunnerError when it has a code. */
function toError(e) {
  let cause;
  if (e.cause) {
    cause = new Error(e.cause.message);
    if (e.cause.statusCode !== undefined) cause.statusCode = e.cause.statusCode;
  }
  if (e.code === undefined) return new Error(e.message, cause ? { cause } : undefined);
  return new LightRunnerError({ ...e, cause });
}

function unwrap(settled) {
  if (settled.ok) return settled.value;
  throw toError(settled.error);
}

/** A native promise of `{ ok, value | error }`, as a promise of the value. */
function call(p) {
  return p.then(unwrap);
}

// ---- OpenTelemetry (optional peer dependency: zero cost without it) ----

let otelApi;
function otel() {
  if (otelApi === undefined) {
    try {
      otelApi = require('@opentelemetry/api');
    } catch {
      otelApi = null;
    }
  }
  return otelApi;
}

function startSpan(request) {
  const api = otel();
  if (!api) return null;
  const tracer = api.trace.getTracer('light-runner');
  const span = tracer.startSpan('docker.run', {
    attributes: { 'light-runner.image': String(request.image) },
  }, api.context.active());
  if (!span.isRecording()) return null;
  return { api, span };
}

function endSpan(t, nativeExec, outcome) {
  const { api, span } = t;
  span.setAttribute('light-runner.run_id', nativeExec.id);
  for (const [name, at] of nativeExec._phases()) span.addEvent(name, undefined, at);
  if (outcome.ok && outcome.value) {
    const r = outcome.value;
    span.setAttribute('light-runner.exit_code', r.exitCode);
    span.setAttribute('light-runner.timed_out', r.timedOut);
    span.setAttribute('light-runner.cancelled', r.cancelled);
    if (r.oomKilled) span.setAttribute('light-runner.oom_killed', true);
  } else if (!outcome.ok) {
    const err = toError(outcome.error);
    span.recordException(err);
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: err.message });
  }
  span.end();
}

// ---- Execution ----

const NATIVE = Symbol('light-runner.native');

/** A handle on one run. */
class Execution {
  /**
   * Public since 0.10: test doubles and wrappers build their own handles.
   * `onCancel` is called once, on the first `cancel()` or `stop()`.
   */
  constructor(id, result, onCancel) {
    // As the original: whatever the caller passes is kept as it is.
    Object.defineProperty(this, 'id', { value: id, enumerable: true });
    Object.defineProperty(this, 'result', { value: result, enumerable: true });
    this[NATIVE] = null;
    this._onCancel = typeof onCancel === 'function' ? onCancel : undefined;
    this._cancelled = false;
  }

  get cancelled() {
    return this[NATIVE] ? this[NATIVE].cancelled : this._cancelled;
  }

  /** Synchronous, fire-and-forget kill; prevents the start if it has not happened. */
  cancel() {
    if (this[NATIVE]) return void this[NATIVE].cancel();
    if (this._cancelled) return;
    this._cancelled = true;
    if (this._onCancel) this._onCancel();
  }

  stop(options) {
    if (this[NATIVE]) return call(this[NATIVE]._stop(options));
    this.cancel();
    return Promise.resolve();
  }

  pause() {
    return this[NATIVE] ? call(this[NATIVE]._pause()) : Promise.resolve();
  }

  resume() {
    return this[NATIVE] ? call(this[NATIVE]._resume()) : Promise.resolve();
  }
}

/**
 * An Execution around a native handle. Its `result` is made on first read,
 * so a detached run nobody awaits does not keep its host alive. It never
 * causes an unhandled rejection: a caller that awaits it still sees the error.
 */
function fromNative(n, span) {
  const ex = Object.create(Execution.prototype);
  Object.defineProperty(ex, 'id', { value: n.id, enumerable: true });
  ex[NATIVE] = n;
  Object.defineProperty(ex, 'result', {
    configurable: true,
    enumerable: true,
    get() {
      const p = n._outcome().then(unwrap);
      p.catch(() => {});
      Object.defineProperty(this, 'result', { value: p, enumerable: true });
      return p;
    },
  });
  if (span) n._outcome().then((o) => endSpan(span, n, o), () => {});
  return ex;
}

// ---- DockerRunner ----

const { DockerRunner } = native;

function kindOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  const t = typeof v;
  return t === 'object' ? 'an object' : `a ${t}`;
}

/** `obj[name]`, turning a throwing getter or proxy trap into an error naming the field. */
function readField(obj, name) {
  try {
    return obj[name];
  } catch (e) {
    throw new TypeError(`Invalid ${name}: reading it threw: ${e && e.message}`);
  }
}

function isAbortSignal(s) {
  return s !== null && typeof s === 'object' && typeof s.aborted === 'boolean'
    && typeof s.addEventListener === 'function';
}

let warnedOnLog = false;

DockerRunner.prototype.run = function run(request) {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw new TypeError(`Invalid request: expected an object, got ${kindOf(request)}`);
  }
  // Read one by one: a spread would run every getter of unknown fields too.
  const onLog = readField(request, 'onLog');
  const signal = readField(request, 'signal');
  const input = readField(request, 'input');
  const detached = readField(request, 'detached') === true;
  if (onLog !== undefined && typeof onLog !== 'function') {
    throw new TypeError(`Invalid onLog: expected a function, got ${kindOf(onLog)}`);
  }
  let isSignal;
  let aborted = false;
  try {
    isSignal = signal === undefined || isAbortSignal(signal);
    aborted = isSignal && signal !== undefined && signal.aborted === true;
  } catch (e) {
    throw new TypeError(`Invalid signal: reading it threw: ${e && e.message}`);
  }
  if (!isSignal) throw new TypeError(`Invalid signal: expected an AbortSignal, got ${kindOf(signal)}`);
  let inputJson;
  if (input !== undefined) {
    try {
      inputJson = JSON.stringify(input);
    } catch (e) {
      throw new TypeError(`Invalid input: expected a JSON value, but it could not be serialized (${e && e.message})`);
    }
    if (inputJson === undefined) throw new TypeError(`Invalid input: expected a JSON value, got ${kindOf(input)}`);
  }
  // Lines arrive in batches; onLog sees them one at a time. A throwing
  // onLog must not crash the process or lose the run.
  const safeLog = onLog && ((lines) => {
    for (const line of lines) {
      try {
        onLog(line);
      } catch (e) {
        if (!warnedOnLog) {
          warnedOnLog = true;
          process.emitWarning(`light-runner: onLog threw (${e && e.message}); further lines are still delivered`);
        }
      }
    }
  });
  const n = this._run(request, detached ? undefined : safeLog, aborted, inputJson);
  const span = startSpan(request);
  const execution = fromNative(n, detached ? null : span);
  if (detached) {
    // Keep the process alive until the container has started; after that a
    // detached run no longer needs its host.
    n._started().then(() => { if (span) endSpan(span, n, { ok: true }); }, () => {});
  }
  if (signal && !aborted) {
    const onAbort = () => execution.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    if (!detached) execution.result.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => {});
  }
  // An attached run keeps its host alive until it ends (it dies with it).
  if (!detached) void execution.result;
  return execution;
};

DockerRunner.attach = function attach(id, options) {
  const n = DockerRunner._attach(id, options);
  return n ? fromNative(n, null) : null;
};

for (const name of ['cleanupOrphanStates', 'reapOrphans', 'cleanupOrphanVolumes', 'cleanupOrphanCache', 'cleanupDanglingImages']) {
  const impl = DockerRunner[`_${name}`];
  DockerRunner[name] = function maintenance() {
    return call(impl.call(DockerRunner));
  };
}

// ---- functions ----

function listStates() {
  return native.listStates();
}

function readState(id) {
  if (typeof id !== 'string') throw new TypeError(`Invalid id: expected a string, got ${kindOf(id)}`);
  return native.readState(id);
}

function deleteState(id) {
  if (typeof id !== 'string') throw new TypeError(`Invalid id: expected a string, got ${kindOf(id)}`);
  native.deleteState(id);
}

function createNetwork(name, options) {
  return call(native._createNetwork(name, options));
}

function deleteNetwork(name) {
  return call(native._deleteNetwork(name)).then(() => undefined);
}

function networkExists(name) {
  return call(native._networkExists(name));
}

function cleanupOrphanNetworks(options) {
  return call(native._cleanupOrphanNetworks(options));
}

module.exports = {
  DockerRunner,
  Execution,
  LightRunnerError,
  listStates,
  readState,
  deleteState,
  createNetwork,
  deleteNetwork,
  networkExists,
  cleanupOrphanNetworks,
};
