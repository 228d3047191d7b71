// Shared by the node:test files. Tests talk to a real Docker daemon; a
// missing daemon fails the suite (never a silent skip).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
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
}
