// Detached runs outlive their host: a run survives the SIGKILL of its host
// and is collected by another process; a script that never reads `result`
// exits by itself; the deadline holds without the launcher.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, readState } from '../index.mjs';
import {
  assertGone, child, containerState, orphanRun, privateStateDir, sleep, waitFor, waitRunning,
} from './helpers.mjs';

const ISO = /^\d{4}-\d{2}-\d{2}T/;

test('a detached run survives the SIGKILL of its host; another process collects it', async (t) => {
  const sd = privateStateDir(t);
  const to = sd.tmp('lr-det-out-');
  const launcher = child('detached-launch', {
    request: {
      command: 'sleep 3; mkdir -p /app/out; echo survived > /app/out/result.txt',
      extract: [{ from: '/app/out', to }],
    },
    awaitResult: true,
  });
  const { id } = await launcher.event('id');
  sd.track(id);
  await waitRunning(id);
  launcher.kill('SIGKILL');
  const ex = await launcher.exited;
  assert.equal(ex.signal, 'SIGKILL');
  // The container runs on without its host.
  await sleep(1000);
  assert.equal(containerState(id)?.Running, true, 'container still running after the host died');
  assert.equal(readState(id).status, 'running');

  const collector = child('detached-attach', { id });
  const att = await collector.event('attached');
  assert.equal(att.found, true);
  const { result, state } = await collector.event('result', 30_000);
  assert.equal(result.success, true, JSON.stringify(result));
  assert.equal(result.exitCode, 0);
  assert.equal(result.cancelled, false);
  assert.equal(result.timedOut, false);
  assert.equal(result.extracted?.length, 1, JSON.stringify(result));
  assert.equal(result.extracted[0].status, 'ok');
  assert.equal(result.extracted[0].to, to);
  assert.equal(fs.readFileSync(path.join(to, 'result.txt'), 'utf8'), 'survived\n');
  assert.equal(state.status, 'exited');
  assert.equal(state.exitCode, 0);
  assert.match(state.finishedAt, ISO);
  assert.equal(typeof state.durationMs, 'number');
  assert.ok(state.durationMs >= 2500, `durationMs ${state.durationMs} covers the run`);
  assert.deepEqual(state.extracted, result.extracted);
  assert.equal((await collector.exited).code, 0);
  assertGone(id);
});

test('a script that never reads result exits by itself once the container started', async (t) => {
  const sd = privateStateDir(t);
  const t0 = Date.now();
  const launcher = child('detached-launch', { request: { command: 'sleep 30' } });
  const { id } = await launcher.event('id');
  sd.track(id);
  let timer;
  const exit = await Promise.race([
    launcher.exited,
    new Promise((res) => { timer = setTimeout(() => res(null), 15_000); }),
  ]);
  clearTimeout(timer);
  assert.ok(exit, 'the launcher exited by itself within 15 s');
  assert.equal(exit.code, 0, launcher.stderr);
  const st = containerState(id);
  assert.equal(st?.Running, true, 'the container runs on after its launcher exited');
  const startedAt = Date.parse(st.StartedAt);
  assert.ok(exit.at - startedAt < 5000, `exited ${exit.at - startedAt} ms after the container started`);
  assert.ok(exit.at - t0 < 15_000);
  assert.equal(readState(id).status, 'running');
  // And the run can still be collected: cancel it from here.
  const ex = DockerRunner.attach(id);
  ex.cancel();
  const r = await ex.result;
  assert.equal(r.cancelled, true);
  assert.equal(readState(id).status, 'cancelled');
  assertGone(id);
});

test('deadline without launcher: an attached host kills the run at its deadline', async (t) => {
  const sd = privateStateDir(t);
  const { id, state: first } = await orphanRun(sd, { command: 'sleep 60', timeout: 2000 });
  assert.equal(first.timeout, 2000);
  const startedAt = Date.parse(first.startedAt);

  // Two hosts attached: both enforce the deadline, one finalizes.
  const watcher = child('detached-attach', { id });
  const watcher2 = child('detached-attach', { id });
  assert.equal((await watcher.event('attached')).found, true);
  assert.equal((await watcher2.event('attached')).found, true);
  const { result, state } = await watcher.event('result', 30_000);
  const at = Date.now();
  assert.deepEqual((await watcher2.event('result', 30_000)).result, result, 'both hosts: the same result');
  assert.equal(result.timedOut, true, JSON.stringify(result));
  assert.equal(result.success, false);
  assert.notEqual(result.exitCode, 0);
  assert.ok(at - startedAt < 12_000, `killed ${at - startedAt} ms after start (deadline 2000)`);
  assert.ok(at - startedAt >= 1900, 'not killed before the deadline');
  assert.equal(state.timedOut, true);
  assert.notEqual(state.status, 'running');
  assert.equal(typeof state.exitCode, 'number');
  assertGone(id);
});

test('deadline without launcher: cleanupOrphanStates() kills and finalizes a run past its deadline', async (t) => {
  const sd = privateStateDir(t);
  const { id, state: first } = await orphanRun(sd, { command: 'sleep 60', timeout: 2000 });
  // Nobody attached: past the deadline the container still runs.
  const startedAt = Date.parse(first.startedAt);
  await sleep(Math.max(0, startedAt + 2500 - Date.now()));
  assert.equal(containerState(id)?.Running, true, 'still running: nobody enforced the deadline yet');
  const n = await DockerRunner.cleanupOrphanStates();
  assert.equal(n, 1);
  const st = readState(id);
  assert.equal(st.timedOut, true, JSON.stringify(st));
  assert.notEqual(st.status, 'running');
  assert.equal(typeof st.exitCode, 'number');
  assert.match(st.finishedAt, ISO);
  assertGone(id);
  // A later attach reports the timed-out result.
  const r = await DockerRunner.attach(id).result;
  assert.equal(r.timedOut, true);
  assert.equal(r.success, false);
  // Nothing left to change.
  assert.equal(await DockerRunner.cleanupOrphanStates(), 0);
});

test('cleanupOrphanStates() leaves a run within its deadline running', async (t) => {
  const sd = privateStateDir(t);
  const id = sd.leaveRunning((await orphanRun(sd, { command: 'sleep 60', timeout: 60_000 })).id);
  assert.equal(await DockerRunner.cleanupOrphanStates(), 0);
  assert.equal(containerState(id)?.Running, true);
  assert.equal(readState(id).status, 'running');
  assert.equal(readState(id).timedOut ?? false, false);
});

test('deadline of a detached run with its launcher alive: timedOut result, state timedOut', async (t) => {
  const sd = privateStateDir(t);
  const t0 = Date.now();
  const ex = new DockerRunner().run({ image: 'light-runner-busybox:latest', command: 'sleep 60', timeout: 1500, detached: true });
  sd.track(ex.id);
  const r = await ex.result;
  assert.equal(r.timedOut, true);
  assert.equal(r.success, false);
  assert.ok(Date.now() - t0 < 10_000);
  const st = readState(ex.id);
  assert.equal(st.timedOut, true);
  assert.notEqual(st.status, 'running');
  await waitFor(() => containerState(ex.id) === null, { timeout: 5000, what: 'container removed' });
  assertGone(ex.id);
});
