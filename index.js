'use strict';
// The JS layer does only what JS must do: load the addon, wire AbortSignal,
// stringify `input` exactly as JSON.stringify does, make LightRunnerError a
// real JS class, hold the `Execution` a caller may also build by hand, and
// report spans to OpenTelemetry when the caller uses it. Every Docker, tar,
// state-file and timing decision is made in Rust (src/).

const path = require('node:path');
const native = require('./native.js');

native._setWatchdogScript(path.join(__dirname, 'watchdog.js'));

// What this process shares among its runs (the runs it drives, a client per
// daemon): one per loaded package, passed to every native call.
const HOST = new native.Host();

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

const VERSION = require('./package.json').version;

/**
 * The run's `docker.run` span in the caller's active context, or null when
 * nobody records spans. Telemetry never breaks a run: any failure of the
 * API or of a provider is ignored.
 */
function startSpan(n, request, detached) {
  const api = otel();
  if (!api) return null;
  try {
    const tracer = api.trace.getTracer('light-runner', VERSION);
    const span = tracer.startSpan('docker.run', {
      kind: api.SpanKind.INTERNAL,
      attributes: {
        'light-runner.run_id': n.id,
        'light-runner.image': String(request.image),
        'light-runner.detached': detached,
        'light-runner.warm': n._warm === true,
      },
    }, api.context.active());
    if (!span.isRecording()) return null;
    return { api, span };
  } catch {
    return null;
  }
}

/**
 * Ends a run's span: its phases (from the native handle) as events, how it
 * ended as attributes, an error recorded as an exception.
 */
function endSpan(t, n, outcome) {
  const { api, span } = t;
  try {
    for (const [name, at] of n._phases()) span.addEvent(name, undefined, at);
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
  } catch {
    // A broken exporter or provider must not break the run.
  }
  try {
    span.end();
  } catch {
    // Same.
  }
}

/**
 * A detached run's span ends once its container started. A run that did
 * not start (setup failed, or cancelled first) is already over by then:
 * its outcome says how.
 */
function endDetachedSpan(t, n) {
  n._started().then(() => {
    if (n._phases().some(([name]) => name === 'started')) endSpan(t, n, { ok: true });
    else n._outcome().then((o) => endSpan(t, n, o), () => endSpan(t, n, { ok: true }));
  }, () => endSpan(t, n, { ok: true }));
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
    try {
      if (this._onCancel) this._onCancel();
    } catch {
      // As the original: a throwing hook does not escape cancel().
    }
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

  /**
   * The run's output as an async iterator of `{ stream, line, time }`: from
   * its start (or `since`), then, with `follow` (default true), until its
   * container stops. Works for any run with a state file, from any process.
   */
  logs(options) {
    return outputOf(this.id, logOptions(options).native);
  }
}

// ---- output ----

const STREAMS = { o: 'stdout', e: 'stderr' };

/** `{ since, follow }` for the native side (a Date `since` as epoch ms), and `onLog`. */
function logOptions(options) {
  if (options === undefined || options === null) return { native: undefined, onLog: undefined };
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`Invalid options: expected an object, got ${kindOf(options)}`);
  }
  const onLog = readField(options, 'onLog');
  if (onLog !== undefined && typeof onLog !== 'function') {
    throw new TypeError(`Invalid onLog: expected a function, got ${kindOf(onLog)}`);
  }
  let since = readField(options, 'since');
  if (since instanceof Date) {
    since = since.getTime();
    if (Number.isNaN(since)) throw new TypeError('Invalid since: an invalid Date');
  }
  return { native: { since, follow: readField(options, 'follow') }, onLog };
}

/** An async iterator over a native reader of run `id`'s output. */
function outputOf(id, options) {
  const reader = native._openLogs(HOST, id, options);
  let lines = [];
  let streams = '';
  let times = [];
  let i = 0;
  let done = false;
  const finish = () => {
    done = true;
    reader.close();
    return { done: true, value: undefined };
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      while (i >= lines.length) {
        if (done) return { done: true, value: undefined };
        let batch;
        try {
          batch = await call(reader._next());
        } catch (e) {
          finish();
          throw e;
        }
        if (batch === null) return finish();
        ({ lines, streams, times } = batch);
        i = 0;
      }
      const value = { stream: STREAMS[streams[i]], line: lines[i], time: times[i] };
      i += 1;
      return { done: false, value };
    },
    async return() {
      return finish();
    },
  };
}

let warnedOnLog = false;

/** Calls `onLog(line, meta)` for each line of a batch; a throw warns once. */
function deliver(onLog, lines, streams, times) {
  for (let i = 0; i < lines.length; i += 1) {
    try {
      onLog(lines[i], { stream: STREAMS[streams[i]], time: times[i] });
    } catch (e) {
      if (!warnedOnLog) {
        warnedOnLog = true;
        process.emitWarning(`light-runner: onLog threw (${e && e.message}); further lines are still delivered`);
      }
    }
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
  const safeLog = onLog && ((lines, streams, times) => deliver(onLog, lines, streams, times));
  const n = this._run(HOST, request, detached ? undefined : safeLog, aborted, inputJson);
  const span = startSpan(n, request, detached);
  const execution = fromNative(n, detached ? null : span);
  if (detached) {
    // Keep the process alive until the container has started; after that a
    // detached run no longer needs its host.
    if (span) endDetachedSpan(span, n);
    else n._started().then(() => {}, () => {});
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

DockerRunner.prototype.prewarm = function prewarm(request, count) {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    return Promise.reject(new TypeError(`Invalid request: expected an object, got ${kindOf(request)}`));
  }
  if (count !== undefined && count !== null
    && !(typeof count === 'number' && Number.isInteger(count) && count >= 1 && count <= 1000)) {
    return Promise.reject(new TypeError(`Invalid count: expected a whole number of containers (1 to 1000), got ${kindOf(count)}`));
  }
  const shape = {};
  for (const k of ['image', 'run', 'networks', 'network', 'workdir']) {
    const v = readField(request, k);
    if (v !== undefined) shape[k] = v;
  }
  let p;
  try {
    p = this._prewarm(HOST, shape, count ?? undefined);
  } catch (e) {
    return Promise.reject(e);
  }
  return call(p).then(() => undefined);
};

DockerRunner.prototype.close = function close() {
  return this._close().then(() => undefined);
};

DockerRunner.attach = function attach(id, options) {
  const { native: opts, onLog } = logOptions(options);
  const n = DockerRunner._attach(HOST, id, opts);
  if (!n) return null;
  const ex = fromNative(n, null);
  if (!onLog) return ex;
  // Replay then follow the output; `result` settles once every line was
  // delivered, as for an attached run.
  const reader = native._openLogs(HOST, id, opts);
  const delivered = (async () => {
    for (;;) {
      const batch = await call(reader._next());
      if (batch === null) return;
      deliver(onLog, batch.lines, batch.streams, batch.times);
    }
  })();
  delivered.catch((e) => process.emitWarning(`light-runner: reading the output of ${id} failed: ${e && e.message}`));
  Object.defineProperty(ex, 'result', {
    configurable: true,
    enumerable: true,
    get() {
      const p = n._outcome().then(unwrap).then(
        (r) => delivered.then(() => r, () => r),
        (e) => delivered.then(() => { throw e; }, () => { throw e; }),
      );
      p.catch(() => {});
      Object.defineProperty(this, 'result', { value: p, enumerable: true });
      return p;
    },
  });
  return ex;
};

for (const name of ['cleanupOrphanStates', 'reapOrphans', 'cleanupOrphanVolumes', 'cleanupOrphanCache', 'cleanupDanglingImages']) {
  const impl = DockerRunner[`_${name}`];
  DockerRunner[name] = function maintenance() {
    return call(impl.call(DockerRunner, HOST));
  };
}

{
  const isAvailable = DockerRunner._isAvailable;
  const cleanupOldStates = DockerRunner._cleanupOldStates;
  DockerRunner.isAvailable = function isAvailableHere() {
    return isAvailable.call(DockerRunner, HOST);
  };
  DockerRunner.cleanupOldStates = function cleanupOldStatesHere() {
    return cleanupOldStates.call(DockerRunner, HOST);
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
  return call(native._createNetwork(HOST, name, options));
}

function deleteNetwork(name) {
  return call(native._deleteNetwork(HOST, name)).then(() => undefined);
}

function networkExists(name) {
  return call(native._networkExists(HOST, name));
}

function cleanupOrphanNetworks(options) {
  return call(native._cleanupOrphanNetworks(HOST, options));
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
