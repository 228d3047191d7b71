// The one helper library of the node:test files. Tests talk to a real Docker
// daemon; a missing daemon fails the suite (never a silent skip). Not a test
// file: its name matches none of node:test's patterns.
//
// Cleanup never hides an effect. No helper removes a run's container or
// volume before the test has looked at them: runs are registered with the
// test's scope (`scopeOf(t)`; runToEnd, startedRun, privateStateDir and
// orphanRun do it), and when the test ends the scope first checks that every
// registered run left nothing in Docker, then removes whatever is there (also
// when the check failed), so a failing test still leaves nothing behind.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURES = path.join(ROOT, '__test__', 'fixtures');
export const BUSYBOX = 'light-runner-busybox:latest';
export const NODE_IMAGE = 'light-runner-node:latest';
export const LABEL = 'light-runner.run-id';

// Every test process shares one state dir of the suite's own, so the last
// test (zz-leaks) can check nothing was left behind. Tests that start
// detached runs use a private dir of their own (privateStateDir).
export const STATE_DIR = process.env.LIGHT_RUNNER_STATE_DIR
  ?? path.join(os.tmpdir(), 'light-runner-test-state');
process.env.LIGHT_RUNNER_STATE_DIR = STATE_DIR;

// How long a scope waits, at the end of a test, for the resources of its runs
// to disappear before it calls them leaked. Removal by another process (a
// detached run finalized elsewhere, a dead host's watchdog) is asynchronous.
const LEAK_GRACE_MS = 10_000;

// ---- time ------------------------------------------------------------------

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns truthy (and returns that), or throws after `timeout` ms. */
export async function waitFor(fn, { timeout = 15_000, every = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not met within ${timeout} ms`);
    await sleep(every);
  }
}

// ---- files -----------------------------------------------------------------

export function tmpdir(prefix = 'lr-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function rmrf(p) {
  if (p) fs.rmSync(p, { recursive: true, force: true });
}

/**
 * Every entry below `root` (lstat, never following links), as a sorted list
 * of `<relative path>:<kind>` with kind file | dir | symlink | fifo | other.
 */
export function treeOf(root) {
  const out = [];
  const walk = (rel) => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r));
      const kind = st.isSymbolicLink() ? 'symlink'
        : st.isDirectory() ? 'dir'
          : st.isFIFO() ? 'fifo'
            : st.isFile() ? 'file' : 'other';
      out.push(`${r}:${kind}`);
      if (kind === 'dir') walk(r);
    }
  };
  walk('');
  return out.sort();
}

/**
 * Writes `files` files of `size` bytes in 40 subdirs under root/big: a
 * directory the launcher needs a few seconds to seed (4000 x 100 KB = 400 MB).
 */
export function makeBigDir(root, files = 4000, size = 100_000) {
  const dir = path.join(root, 'big');
  const block = Buffer.alloc(size);
  for (let i = 0; i + 4 <= block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
  const per = Math.ceil(files / 40);
  for (let d = 0; d < 40; d++) {
    const sub = path.join(dir, `d${d}`);
    fs.mkdirSync(sub, { recursive: true });
    for (let f = 0; f < per; f++) fs.writeFileSync(path.join(sub, `f${f}`), block);
  }
  return dir;
}

// ---- the docker CLI, for assertions only (the package never uses it) -------

/** Runs `docker <args>` and returns its trimmed stdout; throws on failure. */
export function docker(...args) {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** `docker <args>`: its trimmed stdout, or null when it failed. */
export function dockerTry(...args) {
  try {
    return docker(...args);
  } catch {
    return null;
  }
}

/** Whether `docker <args>` succeeded. */
export function dockerOk(...args) {
  return dockerTry(...args) !== null;
}

export function containerExists(id) {
  return dockerOk('container', 'inspect', '-f', '{{.Id}}', id);
}

export function volumeExists(id) {
  return dockerOk('volume', 'inspect', '-f', '{{.Name}}', id);
}

/** `State` of a container from `docker inspect`, or null when it does not exist. */
export function containerState(id) {
  const out = dockerTry('container', 'inspect', '-f', '{{json .State}}', id);
  return out ? JSON.parse(out) : null;
}

/** `docker inspect` of a container (or any object), parsed. */
export function inspectJson(...args) {
  return JSON.parse(docker('inspect', ...args))[0];
}

export async function waitRunning(id, timeout = 20_000) {
  return waitFor(() => containerState(id)?.Running === true, { timeout, what: `container ${id} running` });
}

export async function waitExited(id, timeout = 20_000) {
  return waitFor(() => {
    const s = containerState(id);
    return s && s.Status === 'exited' ? s : null;
  }, { timeout, what: `container ${id} exited` });
}

/** Containers and volumes carrying the label of run `id`. */
export function labelledResources(id) {
  const filter = `label=${LABEL}=${id}`;
  return {
    containers: docker('ps', '-a', '--filter', filter, '--format', '{{.Names}}').split('\n').filter(Boolean),
    volumes: docker('volume', 'ls', '-q', '--filter', filter).split('\n').filter(Boolean),
  };
}

/**
 * What of the runs `ids` is still in Docker: containers and volumes named
 * after one of them or carrying its label (empty: nothing).
 */
export function leftoversOf(...ids) {
  const wanted = new Set(ids.filter(Boolean));
  if (wanted.size === 0) return [];
  const out = [];
  const scan = (kind, args) => {
    for (const line of docker(...args, '--format', `{{${kind === 'container' ? '.Names' : '.Name'}}}\t{{.Label "${LABEL}"}}`).split('\n')) {
      const [name, label] = line.split('\t');
      if (wanted.has(name) || wanted.has(label)) out.push(`${kind} ${name}${label && label !== name ? ` (label ${label})` : ''}`);
    }
  };
  scan('container', ['ps', '-a']);
  scan('volume', ['volume', 'ls']);
  return out;
}

/** Asserts that nothing of run `id` is left in Docker, by name or by label. */
export function assertGone(id) {
  const left = leftoversOf(id);
  assert.deepEqual(left, [], `left behind by ${id}: ${left.join(', ')}`);
}

/**
 * Removes by force whatever of run `id` is in Docker (by name and by label).
 * Cleanup only: a test checks first (the scope of a test does it for the runs
 * it tracks).
 */
export function removeRun(id) {
  if (!id) return;
  let labelled = { containers: [], volumes: [] };
  try {
    labelled = labelledResources(id);
  } catch { /* by name only */ }
  for (const c of new Set([id, ...labelled.containers])) dockerTry('rm', '-f', '-v', c);
  for (const v of new Set([id, ...labelled.volumes])) dockerTry('volume', 'rm', '-f', v);
}

/**
 * Every Docker event (parsed `docker events` JSON) about the container or
 * volume named `name` between `sinceMs` and `untilMs` (host epoch ms; the
 * window is widened by a second on each side; an `untilMs` in the future
 * makes the call wait until then).
 */
export function dockerEvents(name, sinceMs, untilMs = Date.now()) {
  const out = docker('events', '--since', ((sinceMs - 1000) / 1000).toFixed(3),
    '--until', ((untilMs + 1000) / 1000).toFixed(3), '--format', '{{json .}}');
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((ev) => {
    const a = ev.Actor ?? {};
    return a.ID === name || a.Attributes?.name === name;
  });
}

/** How many `action` events container `name` had between two times (ms). */
export function countContainerEvents(name, action, sinceMs, untilMs = Date.now()) {
  return dockerEvents(name, sinceMs, untilMs).filter((e) => e.Type === 'container' && e.Action === action).length;
}

/** GET on the Engine API over its unix socket: the parsed JSON body of a 200, else null. */
function engineGet(apiPath) {
  return new Promise((resolve) => {
    const req = http.request({
      socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock',
      path: apiPath,
      method: 'GET',
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve(null);
        try {
          resolve(JSON.parse(body));
        } catch {
          resolve(null);
        }
      });
    });
    req.on('error', () => resolve(null));
    req.end();
  });
}

/**
 * The container's state as the container *list* reports it ('created',
 * 'running', ... or null). Unlike inspect, listing does not wait for the
 * container lock, which the daemon holds while a directory is uploaded.
 */
export async function containerListedFast(id) {
  const filters = encodeURIComponent(JSON.stringify({ name: [`^/${id}$`] }));
  return (await engineGet(`/containers/json?all=1&filters=${filters}`))?.[0]?.State ?? null;
}

// ---- the scope of one test: check, then clean up ---------------------------

const scopes = new WeakMap();

/**
 * The scope of test `t` (created on first use; one per test). It runs once
 * the test has ended (a `t.after` hook), in this order:
 *  1. kills the fixture processes (`child()`) still alive;
 *  2. checks that every tracked run left nothing in Docker (waiting up to
 *     LEAK_GRACE_MS for removals made by other processes), except the runs
 *     the test declared `leaveRunning`;
 *  3. removes every tracked run's resources and its state file and kept
 *     output in the suite's STATE_DIR, runs the `defer`red functions (last first),
 *     restores the environment variables saved with `saveEnv`, deletes its
 *     temporary directories (private state dirs included);
 *  4. fails the test if step 2 found anything.
 */
export function scopeOf(t) {
  assert.equal(typeof t?.after, 'function', 'scopeOf(t) needs the TestContext of a test');
  let scope = scopes.get(t);
  if (!scope) {
    scope = new Scope();
    scopes.set(t, scope);
    t.after(() => scope.close());
  }
  return scope;
}

class Scope {
  runs = new Set();
  running = new Set();
  deferred = [];
  dirs = [];
  env = new Map();

  /** Registers run `id`: it must leave nothing in Docker by the end of the test. */
  track(id) {
    if (id) this.runs.add(id);
    return id;
  }

  /** A run the test leaves running on purpose: removed at the end, not checked. */
  leaveRunning(id) {
    this.track(id);
    this.running.add(id);
    return id;
  }

  /** `fn` runs at the end of the test (after the check), whatever happened. */
  defer(fn) {
    this.deferred.push(fn);
  }

  /** A temporary directory deleted at the end of the test. */
  tmp(prefix) {
    const dir = tmpdir(prefix);
    this.dirs.push(dir);
    return dir;
  }

  /** Saves environment variable `name` (once); it is restored at the end. */
  saveEnv(name) {
    if (!this.env.has(name)) this.env.set(name, process.env[name]);
  }

  async close() {
    await killChildren();
    // Runs whose state file sits in one of this test's state dirs are this
    // test's runs too, tracked or not.
    for (const dir of this.dirs) {
      for (const f of readdirSafe(path.join(dir, 'state'))) {
        const m = /^(light-runner-[0-9a-f]+)\.json$/.exec(f);
        if (m) this.track(m[1]);
      }
    }
    const checked = [...this.runs].filter((id) => !this.running.has(id));
    let leaked = [];
    let checkFailed = null;
    try {
      await waitFor(() => {
        leaked = leftoversOf(...checked);
        return leaked.length === 0;
      }, { timeout: LEAK_GRACE_MS, every: 250 });
    } catch (e) {
      checkFailed = e; // reported below, after the cleanup
    }

    const errors = [];
    for (const id of this.runs) {
      removeRun(id);
      // Every run has a state file (and may keep its output beside it);
      // those in the suite's shared dir go too (zz-leaks then sees only the
      // files of runs nobody tracked).
      rmrf(path.join(STATE_DIR, `${id}.json`));
      rmrf(path.join(STATE_DIR, `${id}.log`));
    }
    for (const fn of this.deferred.reverse()) {
      try {
        await fn();
      } catch (e) {
        errors.push(e);
      }
    }
    for (const [name, value] of this.env) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    for (const dir of this.dirs) rmrf(dir);

    assert.deepEqual(leaked, [], `left behind in Docker when the test ended: ${leaked.join(', ')}`);
    if (checkFailed) throw checkFailed; // the check itself could not run (docker CLI)
    if (errors.length) throw errors[0];
  }
}

function readdirSafe(dir) {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

// ---- attached runs in this process -----------------------------------------

/**
 * Runs `request` on `runner` to its end, collecting every onLog line (the
 * request's own onLog is still called). Resolves with `{ ex, id, result,
 * lines }`; a rejected `result` rejects with the original error, `.runId`
 * attached. Removes nothing: the run is tracked by the test's scope.
 */
export async function runToEnd(t, runner, request) {
  const lines = [];
  const userLog = request.onLog;
  const ex = runner.run({
    ...request,
    onLog: (l) => {
      lines.push(l);
      if (userLog) userLog(l);
    },
  });
  scopeOf(t).track(ex.id);
  try {
    return { ex, id: ex.id, result: await ex.result, lines };
  } catch (e) {
    if (e && typeof e === 'object') e.runId = ex.id;
    throw e;
  }
}

/**
 * Starts `request` on `runner`; `started` resolves once the run logged
 * `marker` (its container runs), and rejects if the run ends first. The run
 * is tracked by the test's scope.
 */
export function startedRun(t, runner, request, marker = 'started') {
  let seen;
  let failed;
  const started = new Promise((resolve, reject) => {
    seen = resolve;
    failed = reject;
  });
  started.catch(() => {});
  const lines = [];
  const ex = runner.run({
    ...request,
    onLog: (l) => {
      lines.push(l);
      if (l === marker) seen();
    },
  });
  scopeOf(t).track(ex.id);
  ex.result.then(
    (r) => failed(new Error(`run ended before it logged '${marker}': ${JSON.stringify(r)}`)),
    (e) => failed(e),
  );
  return { ex, started, lines };
}

/** A RunResult has exactly its fields (plus `extracted` and `logsTruncated` when set), and success follows from them. */
export function assertResultShape(r) {
  assert.deepEqual(Object.keys(r).filter((k) => k !== 'extracted' && k !== 'logsTruncated').sort(),
    ['cancelled', 'duration', 'exitCode', 'oomKilled', 'success', 'timedOut']);
  assert.equal(typeof r.oomKilled, 'boolean');
  assert.equal(typeof r.duration, 'number');
  assert.ok(r.duration >= 0);
  assert.equal(r.success, r.exitCode === 0 && !r.cancelled && !r.timedOut);
}

/** Cancels a run and waits until it settled (whatever its outcome). Removes nothing. */
export async function finish(ex) {
  ex.cancel();
  await ex.result.catch(() => {});
}

// ---- child processes -------------------------------------------------------

/** Runs `node <args>` and resolves with { code, signal, stdout, stderr }. */
export function runNode(args, { env = process.env, timeout = 60_000, cwd = ROOT } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeout);
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}


/**
 * A proxy on `<dir>/proxy.sock` in front of the daemon's socket: every
 * archive download (`GET /containers/{id}/archive`) is answered by
 * `answer(res)`; everything else, upgrades included, goes to the daemon.
 * `intercepted()` counts the downloads answered.
 */
export async function archiveProxy(dir, answer) {
  const daemon = process.env.DOCKER_HOST?.startsWith('unix://')
    ? process.env.DOCKER_HOST.slice('unix://'.length) : '/var/run/docker.sock';
  const socket = path.join(dir, 'proxy.sock');
  let intercepted = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET' && /^\/(v[\d.]+\/)?containers\/[^/]+\/archive/.test(req.url)) {
        intercepted++;
        answer(res);
        return;
      }
      const up = http.request({ socketPath: daemon, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      // A client gone mid-answer (a long wait): its upstream goes too.
      res.on('close', () => up.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  forwardUpgrades(server, daemon);
  await new Promise((r) => server.listen(socket, r));
  return { socket, intercepted: () => intercepted, close: () => new Promise((r) => server.close(r)) };
}

/**
 * Makes an http.Server proxy in front of the daemon pass hijacked
 * connections through (attach upgrades the connection to a raw stream).
 */
export function forwardUpgrades(server, daemonSocket) {
  server.on('upgrade', (req, socket, head) => {
    const up = net.connect(daemonSocket, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head && head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
    // Either end gone: the other goes, so no hijacked stream outlives its client.
    socket.on('close', () => up.destroy());
    up.on('close', () => socket.destroy());
  });
}

const children = new Map(); // process -> its exit promise
process.on('exit', () => {
  for (const c of children.keys()) {
    try {
      c.kill('SIGKILL');
    } catch { /* gone */ }
  }
});

/** SIGKILLs every `child()` process still alive and waits (a little) for them. */
async function killChildren() {
  const waits = [];
  for (const [c, exited] of children) {
    try {
      c.kill('SIGKILL');
    } catch { /* gone */ }
    waits.push(exited);
  }
  await Promise.race([Promise.all(waits), sleep(5000)]);
}

/**
 * Starts `node fixtures/<name>.mjs '<json cfg>'`. The child prints one JSON
 * object per line with an `event` field. Killed, if still alive, when the
 * test that started it ends. Returns a handle:
 *  - event(name, ms): resolves with the first line of that event (past or future)
 *  - exited: Promise<{ code, signal, at }>
 *  - send(line): writes a line to its stdin
 *  - kill(sig)
 */
export function child(name, cfg = {}, { env = {}, unsetEnv = [], cwd } = {}) {
  const fullEnv = { ...process.env, ...env };
  for (const k of unsetEnv) delete fullEnv[k];
  const proc = spawn(process.execPath, [path.join(FIXTURES, `${name}.mjs`), JSON.stringify(cfg)], {
    env: fullEnv,
    cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines = [];
  const waiters = [];
  let stderr = '';
  let buf = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        msg = { event: 'text', text: line };
      }
      msg.at = Date.now();
      lines.push(msg);
      for (const w of [...waiters]) w();
    }
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal, at: Date.now() });
      for (const w of [...waiters]) w();
    });
  });
  children.set(proc, exited);
  let isExited = false;
  exited.then(() => {
    isExited = true;
  });
  return {
    proc,
    pid: proc.pid,
    lines,
    exited,
    get stderr() {
      return stderr;
    },
    event(ev, ms = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => l.event === ev);
          if (hit) {
            done();
            resolve(hit);
            return true;
          }
          const err = lines.find((l) => l.event === 'error');
          if (err && ev !== 'error') {
            done();
            reject(new Error(`${name}: child reported error: ${err.message}\n${stderr}`));
            return true;
          }
          if (isExited) {
            done();
            reject(new Error(`${name}: child exited before '${ev}'; lines=${JSON.stringify(lines)}\nstderr=${stderr}`));
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no '${ev}' within ${ms} ms; lines=${JSON.stringify(lines)}\nstderr=${stderr}`));
        }, ms);
        const w = () => check();
        const done = () => {
          clearTimeout(timer);
          const k = waiters.indexOf(w);
          if (k >= 0) waiters.splice(k, 1);
        };
        waiters.push(w);
        // exit status may arrive after the exit promise resolves
        exited.then(() => setImmediate(w));
        check();
      });
    },
    send(line) {
      proc.stdin.write(line + '\n');
    },
    kill(sig = 'SIGKILL') {
      try {
        proc.kill(sig);
      } catch { /* gone */ }
    },
  };
}

// ---- detached runs and state files -----------------------------------------

/**
 * A private state dir for test `t`: sets process.env.LIGHT_RUNNER_STATE_DIR
 * (the package reads it at call time) to `<root>/state` (created by the
 * package on first use). At the end of the test the scope restores the
 * variable, checks then removes the runs of every state file found there and
 * every tracked id, and deletes `root`.
 */
export function privateStateDir(t, prefix = 'lr-state-') {
  const scope = scopeOf(t);
  scope.saveEnv('LIGHT_RUNNER_STATE_DIR');
  const root = scope.tmp(prefix);
  const dir = path.join(root, 'state');
  process.env.LIGHT_RUNNER_STATE_DIR = dir;
  return {
    dir,
    root,
    track: (id) => scope.track(id),
    leaveRunning: (id) => scope.leaveRunning(id),
    tmp: (p) => scope.tmp(p),
    file: (id) => path.join(dir, `${id}.json`),
  };
}

/** Writes a state file by hand (as another version or host would). */
export function writeStateFile(dir, state) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, `${state.id}.json`), JSON.stringify(state, null, 2), { mode: 0o600 });
}

export function readStateFile(dir, id) {
  return JSON.parse(fs.readFileSync(path.join(dir, `${id}.json`), 'utf8'));
}

/** Files left in a dir whose names mark them as temporary. */
export function tempFiles(dir) {
  return readdirSafe(dir).filter((f) => f.endsWith('.tmp') || /\.tmp\b/.test(f));
}

export function fakeId() {
  return 'light-runner-' + [...crypto.getRandomValues(new Uint8Array(6))]
    .map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Starts a detached run in a launcher child, waits until its container runs,
 * then SIGKILLs the launcher: a run whose host died. The run is tracked by
 * the scope of `sd` (a privateStateDir). Returns its id and the state the
 * launcher saw right after run().
 */
export async function orphanRun(sd, request, env) {
  const launcher = child('detached-launch', { request, awaitResult: true }, { env });
  const { id, state } = await launcher.event('id');
  sd.track(id);
  await waitRunning(id);
  launcher.kill('SIGKILL');
  await launcher.exited;
  return { id, state };
}
