// Attached runs are persisted too (0.17): a state file from run() on, with
// its terminal record; listed, read, attached from another process, failed
// when their host dies; deleteState, cleanupOldStates and cleanupOrphanStates
// over them (reapOrphans: sweeps.test.mjs); detached runs unchanged beside them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, deleteState, listStates, readState } from 'light-runner';
import {
  BUSYBOX, LABEL, assertGone, child, containerExists, docker, fakeId, privateStateDir, scopeOf, sleep,
  waitFor, writeStateFile,
} from './helpers.mjs';

/** The pid of a process that has exited. */
function deadPid() {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid;
}

/** `fixtures/state-peer.mjs` in a child process (another host), killed when the test ends. */
const peer = (cfg) => child('state-peer', cfg);

const mode = (p) => fs.statSync(p).mode & 0o777;

/** `promise`, or a rejection naming `what` after `ms`. */
function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} not settled within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

test('an attached run is a state file from run() on: running (detached: false) at once, then its terminal record; listed, attachable, deletable', async (t) => {
  const sd = privateStateDir(t);
  const to = path.join(sd.root, 'out');
  const ex = new DockerRunner().run({
    image: BUSYBOX,
    command: 'read -r line; mkdir -p /app/o; echo "$line" > /app/o/in.json; echo done',
    env: { SECRET_TOKEN: 'hunter2' },
    input: { password: 'hunter3' },
    extract: [{ from: '/app/o', to }],
  });
  const id = sd.track(ex.id);
  // Synchronously, before any await.
  const first = readState(id);
  assert.equal(first.status, 'running');
  assert.equal(first.detached, false);
  assert.equal(first.id, id);
  assert.equal(first.image, BUSYBOX);
  assert.equal(first.host.pid, process.pid);
  assert.deepEqual(first.extract, [{ from: '/app/o', to }]);
  assert.equal(mode(sd.dir), 0o700, 'state dir 0700');
  assert.equal(mode(sd.file(id)), 0o600, 'state file 0600');
  const raw = fs.readFileSync(sd.file(id), 'utf8');
  assert.ok(!raw.includes('hunter2') && !raw.includes('hunter3'), `no env or input on disk: ${raw}`);
  assert.deepEqual(listStates().map((s) => s.id), [id]);
  assert.deepEqual(DockerRunner.list().map((s) => [s.id, s.status, s.detached]), [[id, 'running', false]]);

  const result = await ex.result;
  assert.equal(result.success, true, JSON.stringify(result));
  assert.equal(result.extracted[0].status, 'ok');

  const end = readState(id);
  assert.equal(end.status, 'exited', JSON.stringify(end));
  assert.equal(end.exitCode, 0);
  assert.equal(end.detached, false);
  assert.equal(end.cancelled, false);
  assert.equal(end.timedOut, false);
  assert.equal(end.durationMs, result.duration);
  assert.ok(Date.parse(end.finishedAt) >= Date.parse(end.startedAt), end.finishedAt);
  assert.deepEqual(end.extracted, result.extracted);
  assert.equal(end.phase, undefined, 'no phase once over');
  assert.equal(mode(sd.file(id)), 0o600, 'still 0600 after the terminal write');
  assert.deepEqual(listStates().map((s) => [s.id, s.status]), [[id, 'exited']]);

  // attach() to the terminal record gives the same result.
  const again = DockerRunner.attach(id);
  assert.deepEqual(await again.result, result);

  deleteState(id);
  assert.equal(readState(id), null);
  assert.equal(fs.existsSync(sd.file(id)), false);
  assert.deepEqual(listStates(), []);
  assert.equal(DockerRunner.attach(id), null);
  deleteState(id); // absent is fine
  deleteState(fakeId());
  assert.throws(() => deleteState(42), /Invalid id/);
  assertGone(id);
});

test('while an attached run is running, its record says phase "started"', async (t) => {
  const sd = privateStateDir(t);
  let running;
  const seen = new Promise((r) => { running = r; });
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'echo up; sleep 2', onLog: () => running() });
  const id = sd.track(ex.id);
  assert.equal(readState(id).phase, 'setup');
  await seen;
  const mid = await waitFor(() => {
    const s = readState(id);
    return s.phase === 'started' ? s : null;
  }, { timeout: 5000, every: 50 });
  assert.equal(mid.status, 'running');
  assert.equal((await ex.result).exitCode, 0);
  assert.equal(readState(id).phase, undefined);
  deleteState(id);
});

test('terminal records of attached runs: exit code, cancel, timeout, setup failure', async (t) => {
  const sd = privateStateDir(t);
  const ids = [];
  const runner = new DockerRunner();
  const exit3 = runner.run({ image: BUSYBOX, command: 'exit 3' });
  let started;
  const up = new Promise((r) => { started = r; });
  const cancelled = runner.run({ image: BUSYBOX, command: 'echo up; sleep 30', onLog: () => started() });
  const timedOut = runner.run({ image: BUSYBOX, command: 'sleep 30', timeout: 1000 });
  const missing = path.join(sd.root, 'no-such-dir');
  const failed = runner.run({ image: BUSYBOX, command: 'true', dir: missing });
  ids.push(exit3.id, cancelled.id, timedOut.id, failed.id);
  ids.forEach((i) => sd.track(i));
  await up;
  cancelled.cancel();

  const [r3, rc, rt] = await Promise.all([exit3.result, cancelled.result, timedOut.result]);
  await assert.rejects(failed.result, /dir path not found/);

  assert.equal(r3.exitCode, 3);
  let s = readState(exit3.id);
  assert.deepEqual([s.status, s.exitCode, s.cancelled, s.timedOut], ['exited', 3, false, false]);

  assert.equal(rc.cancelled, true);
  s = readState(cancelled.id);
  assert.deepEqual([s.status, s.exitCode, s.cancelled], ['cancelled', rc.exitCode, true]);

  assert.equal(rt.timedOut, true);
  s = readState(timedOut.id);
  assert.deepEqual([s.status, s.timedOut, s.exitCode], ['exited', true, rt.exitCode]);

  s = readState(failed.id);
  assert.equal(s.status, 'failed');
  assert.match(s.error, /dir path not found/);
  assert.equal(typeof s.finishedAt, 'string');
  // The failure is read back by attach() as a failed result.
  const r = await DockerRunner.attach(failed.id).result;
  assert.equal(r.success, false);

  assert.deepEqual(listStates().map((x) => x.id).sort(), [...ids].sort());
  for (const id of ids) assertGone(id);
});

test('attach() from another process to a live attached run waits for its end and resolves with the same result', async (t) => {
  const sd = privateStateDir(t);
  const to = path.join(sd.root, 'out');
  const ex = new DockerRunner().run({
    image: BUSYBOX,
    command: 'sleep 3; mkdir -p /app/o; echo ok > /app/o/r.txt; exit 0',
    extract: [{ from: '/app/o', to }],
  });
  const id = sd.track(ex.id);
  let settled = false;
  ex.result.finally(() => { settled = true; }).catch(() => {});
  const attacher = peer({ action: 'attach', id });
  const a = await attacher.event('attached');
  assert.equal(a.found, true);
  assert.equal(settled, false, 'the other process attached while the run was still going');
  assert.equal(readState(id).status, 'running');

  const mine = await ex.result;
  const theirs = (await attacher.event('result', 30_000)).result;
  assert.equal(mine.success, true, JSON.stringify(mine));
  assert.deepEqual(theirs, mine, 'the attacher resolves with the launcher\'s result, extracted included');
  assert.equal(fs.readFileSync(path.join(to, 'r.txt'), 'utf8'), 'ok\n');
  assert.equal(readState(id).status, 'exited');
  assertGone(id);
});

test('cancel() from another process that attached cancels the attached run; both hosts resolve cancelled', async (t) => {
  const sd = privateStateDir(t);
  let up;
  const running = new Promise((r) => { up = r; });
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'echo up; sleep 30', onLog: () => up() });
  const id = sd.track(ex.id);
  await running;
  const attacher = peer({ action: 'attach', id, cancel: true });
  const mine = await within(ex.result, 30_000, 'the launcher\'s result');
  const theirs = (await attacher.event('result', 30_000)).result;
  assert.equal(mine.cancelled, true, JSON.stringify(mine));
  assert.equal(mine.success, false);
  assert.deepEqual(theirs, mine);
  const s = readState(id);
  assert.deepEqual([s.status, s.cancelled], ['cancelled', true]);
  assertGone(id);
});

test('the launcher of an attached run killed by SIGKILL: an attacher resolves failed once the watchdog removed the container', async (t) => {
  const sd = privateStateDir(t);
  const launcher = peer({ action: 'launch', request: { image: BUSYBOX, command: 'echo up; sleep 300' } });
  const id = sd.track((await launcher.event('id', 60_000)).id);
  const ex = DockerRunner.attach(id);
  assert.ok(ex, 'attach() finds the running attached run');
  let settled = false;
  ex.result.finally(() => { settled = true; }).catch(() => {});
  await sleep(1000);
  assert.equal(settled, false, 'the attacher waits while the launcher lives');
  assert.equal(containerExists(id), true);
  assert.equal(readState(id).status, 'running');

  launcher.kill();
  await launcher.exited;
  const r = await within(ex.result, 30_000, 'the attacher\'s result');
  assert.deepEqual([r.success, r.exitCode, r.cancelled], [false, -1, false], JSON.stringify(r));
  // Effects checked before anything of ours removes them: the host's
  // watchdog removed the run, and the record says why it failed.
  assertGone(id);
  const s = readState(id);
  assert.equal(s.status, 'failed', JSON.stringify(s));
  assert.match(s.error, /host process .* died/);
});

test('cleanupOrphanStates(): an attached run whose host died is marked failed and its leftovers removed; a live host\'s run is left alone', async (t) => {
  const sd = privateStateDir(t);
  const dead = fakeId();
  const live = fakeId();
  const ghost = fakeId();
  const base = (id) => ({
    id, container: id, volume: id, image: BUSYBOX, workdir: '/app', command: 'sleep 100', timeout: 0,
    extract: [], startedAt: new Date(Date.now() - 60_000).toISOString(), status: 'running',
  });
  // A dead host's run whose watchdog never ran: its container is still there.
  docker('volume', 'create', '--label', `${LABEL}=${dead}`, dead);
  docker('create', '--label', `${LABEL}=${dead}`, '--name', dead, '-v', `${dead}:/app`, BUSYBOX, 'true');
  writeStateFile(sd.dir, {
    ...base(dead), detached: false, phase: 'started', host: { hostname: os.hostname(), pid: deadPid() },
  });
  // A run of a live host (this process, which is not driving it).
  writeStateFile(sd.dir, { ...base(live), detached: false, phase: 'started', host: { hostname: os.hostname(), pid: process.pid } });
  // A detached run of the original's format whose container vanished.
  writeStateFile(sd.dir, base(ghost));

  const n = await DockerRunner.cleanupOrphanStates();
  assert.equal(n, 2, 'the dead host\'s run and the ghost changed');
  const d = readState(dead);
  assert.equal(d.status, 'failed', JSON.stringify(d));
  assert.match(d.error, /died/);
  assert.equal(d.exitCode, -1);
  assertGone(dead);
  assert.equal(readState(live).status, 'running', 'a live host\'s attached run is its own');
  assert.equal(readState(ghost).status, 'failed');
  assert.equal(await DockerRunner.cleanupOrphanStates(), 0, 'nothing more to change');
});

test('DockerRunner.cleanupOldStates(): synchronous; TTL, then the count budget, over terminal states only', (t) => {
  const sd = privateStateDir(t);
  scopeOf(t).saveEnv('LIGHT_RUNNER_STATE_TTL_MS');
  scopeOf(t).saveEnv('LIGHT_RUNNER_MAX_STATES');
  const day = 24 * 3600 * 1000;
  const now = Date.now();
  const st = (status, finishedAgo, extra = {}) => {
    const id = fakeId();
    const s = {
      id, container: id, volume: id, image: BUSYBOX, workdir: '/app', timeout: 0, extract: [],
      startedAt: new Date(now - finishedAgo - 1000).toISOString(), status, ...extra,
    };
    if (status !== 'running') s.finishedAt = new Date(now - finishedAgo).toISOString();
    writeStateFile(sd.dir, s);
    return id;
  };
  const old1 = st('exited', 10 * day, { exitCode: 0, detached: false });
  const old2 = st('failed', 8 * day);
  const r1 = st('exited', 60_000, { exitCode: 0 });
  const r2 = st('cancelled', 120_000, { cancelled: true, detached: false });
  const r3 = st('failed', 180_000);
  const runningOld = st('running', 30 * day);
  const attachedRunning = st('running', 30 * day, { detached: false, host: { hostname: os.hostname(), pid: deadPid() } });
  fs.writeFileSync(path.join(sd.dir, 'light-runner-c0441c0441c0.json'), '{ torn');
  const left = () => listStates().map((s) => s.id).sort();

  delete process.env.LIGHT_RUNNER_STATE_TTL_MS;
  delete process.env.LIGHT_RUNNER_MAX_STATES;
  const n = DockerRunner.cleanupOldStates();
  assert.equal(typeof n, 'number', 'a number, not a promise');
  assert.equal(n, 2, 'older than the default 7 days');
  assert.deepEqual(left(), [r1, r2, r3, runningOld, attachedRunning].sort());

  process.env.LIGHT_RUNNER_MAX_STATES = '1';
  assert.equal(DockerRunner.cleanupOldStates(), 2, 'past a budget of 1, the two oldest terminal states');
  assert.deepEqual(left(), [r1, runningOld, attachedRunning].sort());

  delete process.env.LIGHT_RUNNER_MAX_STATES;
  process.env.LIGHT_RUNNER_STATE_TTL_MS = '1000';
  assert.equal(DockerRunner.cleanupOldStates(), 1);
  process.env.LIGHT_RUNNER_STATE_TTL_MS = '0';
  process.env.LIGHT_RUNNER_MAX_STATES = '0';
  assert.equal(DockerRunner.cleanupOldStates(), 0, 'running states are never removed');
  assert.deepEqual(left(), [runningOld, attachedRunning].sort());
  assert.equal(fs.existsSync(path.join(sd.dir, 'light-runner-c0441c0441c0.json')), true, 'an unreadable file is not a terminal state');
  for (const id of [old1, old2]) assert.equal(readState(id), null);
});

test('detached runs behave as before with attached states around them', async (t) => {
  const sd = privateStateDir(t);
  const to = path.join(sd.root, 'out');
  // A live attached run of another process, in the same state dir. When
  // the test ends the scope kills that process, then checks that its
  // watchdog removed the run.
  const launcher = peer({ action: 'launch', request: { image: BUSYBOX, command: 'echo up; sleep 300' } });
  const attachedId = sd.track((await launcher.event('id', 60_000)).id);
  const ex = new DockerRunner().run({
    image: BUSYBOX,
    command: 'sleep 2; mkdir -p /app/o; echo det > /app/o/d.txt',
    extract: [{ from: '/app/o', to }],
    detached: true,
  });
  const detachedId = sd.track(ex.id);
  assert.deepEqual(
    DockerRunner.list().map((s) => [s.id, s.status, s.detached]).sort(),
    [[attachedId, 'running', false], [detachedId, 'running', true]].sort(),
  );
  assert.equal(await DockerRunner.cleanupOrphanStates(), 0, 'neither run is an orphan');
  const r = await DockerRunner.attach(detachedId).result;
  assert.equal(r.success, true, JSON.stringify(r));
  assert.deepEqual(await ex.result, r);
  assert.equal(fs.readFileSync(path.join(to, 'd.txt'), 'utf8'), 'det\n');
  assert.equal(readState(detachedId).status, 'exited');
  assertGone(detachedId);
  assert.equal(readState(attachedId).status, 'running', 'the attached run was left alone');
  assert.equal(containerExists(attachedId), true);
});
