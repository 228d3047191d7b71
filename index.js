'use strict';
// The JS layer does only what JS must do: load the addon, wire AbortSignal,
// stringify `input` exactly as JSON.stringify does, make LightRunnerError a
// real JS class and expose `Execution.result` as one stable Promise. Every
// Docker, tar, state-file and timing decision is made in Rust (src/).

const path = require('node:path');
const native = require('./native.js');

native._setWatchdogScript(path.join(__dirname, 'watchdog.js'));

/** A Docker failure of a run, with a stable `code`. */
class LightRunnerError extends Error {
  constructor(opts) {
    super(opts.message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
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

const { DockerRunner, Execution } = native;

function unwrap(outcome) {
  if (outcome.ok) return outcome.value;
  throw new LightRunnerError(outcome.error);
}

// One Promise per Execution, created on first read. It never causes an
// unhandled rejection: a caller that awaits it still sees the error.
Object.defineProperty(Execution.prototype, 'result', {
  configurable: true,
  enumerable: true,
  get() {
    const p = this._outcome().then(unwrap);
    p.catch(() => {});
    Object.defineProperty(this, 'result', { value: p, enumerable: true });
    return p;
  },
});

function isAbortSignal(s) {
  return s !== null && typeof s === 'object' && typeof s.aborted === 'boolean'
    && typeof s.addEventListener === 'function';
}

let warnedOnLog = false;

DockerRunner.prototype.run = function run(request) {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw new TypeError(`request must be an object, got ${request === null ? 'null' : typeof request}`);
  }
  const { onLog, signal, input, ...rest } = request;
  if (onLog !== undefined && typeof onLog !== 'function') {
    throw new TypeError(`Invalid onLog: expected a function, got ${typeof onLog}`);
  }
  if (signal !== undefined && !isAbortSignal(signal)) {
    throw new TypeError('Invalid signal: expected an AbortSignal');
  }
  let inputJson;
  if (input !== undefined) {
    try {
      inputJson = JSON.stringify(input);
    } catch (e) {
      throw new TypeError(`Invalid input: not serializable as JSON (${e.message})`);
    }
    if (inputJson === undefined) throw new TypeError(`Invalid input: ${typeof input} is not a JSON value`);
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
  const detached = rest.detached === true;
  const execution = this._run(rest, detached ? undefined : safeLog, Boolean(signal && signal.aborted), inputJson);
  if (signal && !signal.aborted) {
    const onAbort = () => execution.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    if (!detached) execution.result.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => {});
  }
  // An attached run keeps its host alive until it ends (it dies with it).
  if (!detached) void execution.result;
  return execution;
};

function listStates() {
  return native.listStates();
}

function readState(id) {
  if (typeof id !== 'string') throw new TypeError(`Invalid id: expected a string, got ${typeof id}`);
  return native.readState(id);
}

module.exports = { DockerRunner, Execution, LightRunnerError, listStates, readState };
