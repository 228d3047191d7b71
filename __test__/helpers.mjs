// Shared by the node:test files. Tests talk to a real Docker daemon; a
// missing daemon fails the suite (never a silent skip).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BUSYBOX = 'light-runner-busybox:latest';
export const NODE_IMAGE = 'light-runner-node:latest';

// Every test process shares one state dir of the suite's own, so the last
// test can check nothing was left behind.
export const STATE_DIR = process.env.LIGHT_RUNNER_STATE_DIR
  ?? path.join(os.tmpdir(), 'light-runner-test-state');
process.env.LIGHT_RUNNER_STATE_DIR = STATE_DIR;

/** docker CLI, for assertions only (the package itself never uses it). */
export function docker(...args) {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function dockerOk(...args) {
  try {
    docker(...args);
    return true;
  } catch {
    return false;
  }
}

export function containerExists(id) {
  return dockerOk('container', 'inspect', id);
}

export function volumeExists(id) {
  return dockerOk('volume', 'inspect', id);
}

/** Asserts that nothing of run `id` is left in Docker. */
export function assertGone(id) {
  assert.equal(containerExists(id), false, `container ${id} left behind`);
  assert.equal(volumeExists(id), false, `volume ${id} left behind`);
}

export function tmpdir(prefix = 'lr-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function rmrf(p) {
  fs.rmSync(p, { recursive: true, force: true });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns truthy or `ms` passes. */
export async function waitFor(fn, ms = 10_000, every = 100) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await sleep(every);
  }
}

/** Removes a run's resources and state by force (cleanup in `finally`). */
export function forceCleanup(id) {
  dockerOk('rm', '-f', id);
  dockerOk('volume', 'rm', '-f', id);
  rmrf(path.join(STATE_DIR, `${id}.json`));
  rmrf(path.join(STATE_DIR, `${id}.log`));
}

// ---- added for seed / extract / workload tests ----

/**
 * Runs `request` on `runner`, collecting every onLog line. Resolves with
 * `{ id, result, lines }`; always removes what the run may have left
 * (forceCleanup) once it settled, so callers need no extra `finally`.
 * A rejected `result` rejects with the original error, `.runId` attached.
 */
export async function runCollect(runner, request) {
  const lines = [];
  const userLog = request.onLog;
  const exec = runner.run({
    ...request,
    onLog: (l) => {
      lines.push(l);
      if (userLog) userLog(l);
    },
  });
  try {
    const result = await exec.result;
    return { id: exec.id, result, lines };
  } catch (e) {
    if (e && typeof e === 'object') e.runId = exec.id;
    throw e;
  } finally {
    forceCleanup(exec.id);
  }
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

/** Labelled light-runner containers / volumes whose name or label mention `id`. */
export function labelledResources(id) {
  const filter = `label=light-runner.run-id=${id}`;
  return {
    containers: docker('ps', '-a', '--filter', filter, '--format', '{{.Names}}').split('\n').filter(Boolean),
    volumes: docker('volume', 'ls', '-q', '--filter', filter).split('\n').filter(Boolean),
  };
}

/** `docker inspect` of a container (or any object), parsed. */
export function inspectJson(...args) {
  return JSON.parse(docker('inspect', ...args))[0];
}

/**
 * Every Docker event between `sinceMs` and `untilMs` (host epoch ms) that
 * concerns the container or volume named `name`.
 */
export function eventsFor(name, sinceMs, untilMs = Date.now() + 1000) {
  const out = docker('events', '--since', (sinceMs / 1000).toFixed(3),
    '--until', (untilMs / 1000).toFixed(3), '--format', '{{json .}}');
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((ev) => {
    const a = ev.Actor ?? {};
    return a.ID === name || a.Attributes?.name === name;
  });
}

/** Runs `node <args>` and resolves with { code, signal, stdout, stderr }. */
export function runNode(args, { env = process.env, timeout = 60_000, cwd = ROOT } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export const FIXTURES = path.join(ROOT, '__test__', 'fixtures');

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
  });
}
