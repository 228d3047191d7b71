// Detached runs across processes: two processes sharing one state dir and
// one daemon, each with its own HOME: one starts, the other lists,
// attaches, stops and finalizes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { readState } from '../index.mjs';
import {
  assertGone, child, containerState, privateStateDir, waitRunning,
} from './helpers.mjs';

function homes(sd) {
  return [sd.tmp('lr-det-homeA-'), sd.tmp('lr-det-homeB-')];
}

test('start in one process, list/attach/finalize (with extraction) from another with a different HOME', async (t) => {
  const sd = privateStateDir(t);
  const to = sd.tmp('lr-det-out-');
  const [homeA, homeB] = homes(sd);
  const env = { LIGHT_RUNNER_STATE_DIR: sd.dir };
  // A starts the run and exits by itself.
  const a = child('detached-launch', {
    request: {
      command: 'sleep 2; mkdir -p /app/o; echo from-A > /app/o/r.txt',
      extract: [{ from: '/app/o', to }],
    },
  }, { env: { ...env, HOME: homeA } });
  const { id } = await a.event('id');
  sd.track(id);
  assert.equal((await a.exited).code, 0, a.stderr);
  assert.equal(containerState(id)?.Running, true, 'running after A exited');

  // B only knows the shared state dir.
  const b = child('detached-attach', { list: true }, { env: { ...env, HOME: homeB } });
  const listed = await b.event('list');
  assert.equal(listed.home, homeB);
  assert.deepEqual(listed.states.map((s) => s.id), [id]);
  assert.equal(listed.states[0].status, 'running');
  const att = await b.event('attached');
  assert.equal(att.found, true);
  assert.equal(att.state.id, id);
  const { result, state } = await b.event('result', 30_000);
  assert.equal(result.success, true, JSON.stringify(result));
  assert.equal(result.extracted?.[0]?.status, 'ok');
  assert.equal(fs.readFileSync(path.join(to, 'r.txt'), 'utf8'), 'from-A\n');
  assert.equal(state.status, 'exited');
  assert.deepEqual(state.extracted, result.extracted);
  assertGone(id);
  // Neither HOME got a state dir of its own.
  assert.equal(fs.existsSync(path.join(homeA, '.light-runner')), false);
  assert.equal(fs.existsSync(path.join(homeB, '.light-runner')), false);
});

test('start in one process (still waiting), stop from another: both see exitCode 42, state cancelled', async (t) => {
  const sd = privateStateDir(t);
  const [homeA, homeB] = homes(sd);
  const env = { LIGHT_RUNNER_STATE_DIR: sd.dir };
  const a = child('detached-launch', {
    request: { command: "trap 'exit 42' TERM; while true; do sleep 0.1; done" },
    awaitResult: true,
  }, { env: { ...env, HOME: homeA } });
  const { id } = await a.event('id');
  sd.track(id);
  await waitRunning(id);
  const b = child('detached-attach', {
    list: true, action: 'stop', stop: { signal: 'SIGTERM', grace: 5000 },
  }, { env: { ...env, HOME: homeB } });
  const listed = await b.event('list');
  assert.deepEqual(listed.states.map((s) => s.id), [id]);
  const rb = (await b.event('result', 30_000)).result;
  const ra = (await a.event('result', 30_000)).result;
  assert.equal(rb.exitCode, 42, JSON.stringify(rb));
  assert.equal(rb.cancelled, true);
  assert.equal(rb.success, false);
  assert.deepEqual(ra, rb, 'the launcher sees the result of the stop');
  const st = readState(id);
  assert.equal(st.status, 'cancelled');
  assert.equal(st.exitCode, 42);
  assert.equal(st.cancelled, true);
  assertGone(id);
  assert.equal(fs.existsSync(path.join(homeA, '.light-runner')), false);
  assert.equal(fs.existsSync(path.join(homeB, '.light-runner')), false);
});

test('cancel from another process after the launcher exited', async (t) => {
  const sd = privateStateDir(t);
  const [homeA, homeB] = homes(sd);
  const env = { LIGHT_RUNNER_STATE_DIR: sd.dir };
  const a = child('detached-launch', { request: { command: 'sleep 60' } }, { env: { ...env, HOME: homeA } });
  const { id } = await a.event('id');
  sd.track(id);
  await a.exited;
  await waitRunning(id);
  const b = child('detached-attach', { id, action: 'cancel' }, { env: { ...env, HOME: homeB } });
  const c = await b.event('cancelled');
  assert.equal(c.cancelled, true);
  const { result, state } = await b.event('result', 30_000);
  assert.equal(result.cancelled, true);
  assert.equal(result.success, false);
  assert.equal(state.status, 'cancelled');
  assertGone(id);
});

test('a relative extract `to` is resolved against the launcher cwd, whoever finalizes', async (t) => {
  const sd = privateStateDir(t);
  const [homeA, homeB] = homes(sd);
  const cwdA = sd.tmp('lr-det-cwdA-');
  const cwdB = sd.tmp('lr-det-cwdB-');
  const env = { LIGHT_RUNNER_STATE_DIR: sd.dir };
  const a = child('detached-launch', {
    request: { command: 'sleep 1; echo rel > /app/rel.txt', extract: [{ from: 'rel.txt', to: 'out' }] },
  }, { env: { ...env, HOME: homeA }, cwd: cwdA });
  const { id, state } = await a.event('id');
  sd.track(id);
  assert.equal(state.extract[0].to, path.join(cwdA, 'out'), 'recorded absolute');
  await a.exited;
  const b = child('detached-attach', { id }, { env: { ...env, HOME: homeB }, cwd: cwdB });
  const { result } = await b.event('result', 30_000);
  assert.equal(result.success, true, JSON.stringify(result));
  assert.equal(result.extracted?.[0]?.status, 'ok');
  assert.equal(fs.readFileSync(path.join(cwdA, 'out', 'rel.txt'), 'utf8'), 'rel\n');
  assert.equal(fs.existsSync(path.join(cwdB, 'out')), false);
  assertGone(id);
});

test('a graceful stop() from another process gets its full grace while the launcher watches', async (t) => {
  const sd = privateStateDir(t);
  const [homeA, homeB] = homes(sd);
  const env = { LIGHT_RUNNER_STATE_DIR: sd.dir };
  // The TERM handler needs 3 s to wind down; the grace is 10 s.
  const a = child('detached-launch', {
    request: { command: "trap 'sleep 3; exit 42' TERM; while true; do sleep 0.1; done" },
    awaitResult: true,
  }, { env: { ...env, HOME: homeA } });
  const { id } = await a.event('id');
  sd.track(id);
  await waitRunning(id);
  const t0 = Date.now();
  const b = child('detached-attach', { id, action: 'stop', stop: { signal: 'SIGTERM', grace: 10_000 } },
    { env: { ...env, HOME: homeB } });
  const rb = (await b.event('result', 30_000)).result;
  const ra = (await a.event('result', 30_000)).result;
  assert.equal(rb.exitCode, 42, `no host SIGKILLed it within the grace: ${JSON.stringify(rb)}`);
  assert.ok(Date.now() - t0 >= 2500, 'the handler ran its course');
  assert.equal(rb.cancelled, true);
  assert.deepEqual(ra, rb);
  assert.equal(readState(id).status, 'cancelled');
  assertGone(id);
});
