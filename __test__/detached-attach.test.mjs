// Detached runs: attach() (unknown ids, terminal states, no race right after
// run(), no false failure while the launcher seeds, a container that exited
// unwatched) and exactly-once finalization.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, readState } from '../index.mjs';
import {
  assertGone, child, containerListedFast, countContainerEvents, fakeId, makeBigDir, privateStateDir,
  readStateFile, sleep, waitExited, waitRunning, writeStateFile,
} from './helpers.mjs';

test('attach(): null for an unknown or malformed id', (t) => {
  const sd = privateStateDir(t);
  assert.equal(DockerRunner.attach(fakeId()), null);
  assert.equal(DockerRunner.attach('light-runner-000000000000'), null);
  assert.equal(DockerRunner.attach('../../etc/passwd'), null);
  assert.equal(DockerRunner.attach(''), null);
  assert.equal(readState(fakeId()), null);
});

test('attach(): terminal states (exited, cancelled, failed) resolve at once, extracted included', async (t) => {
  const sd = privateStateDir(t);
  const base = (id, extra) => ({
    id, container: id, volume: id, image: 'light-runner-busybox:latest', workdir: '/app',
    entrypoint: 'true', timeout: 0, extract: [{ from: '/app/x', to: '/tmp/nowhere' }],
    startedAt: '2026-04-27T10:15:00.000Z', ...extra,
  });
  const extracted = [{ from: '/app/x', to: '/tmp/nowhere', status: 'ok', bytes: 1024 }];
  const exited = fakeId();
  const exited3 = fakeId();
  const cancelled = fakeId();
  const failed = fakeId();
  writeStateFile(sd.dir, base(exited, {
    status: 'exited', exitCode: 0, finishedAt: '2026-04-27T10:16:00.000Z', durationMs: 60000,
    cancelled: false, extracted,
  }));
  writeStateFile(sd.dir, base(exited3, {
    status: 'exited', exitCode: 3, finishedAt: '2026-04-27T10:16:00.000Z', durationMs: 5,
  }));
  writeStateFile(sd.dir, base(cancelled, {
    status: 'cancelled', exitCode: 137, finishedAt: '2026-04-27T10:16:00.000Z', durationMs: 10,
    cancelled: true,
  }));
  writeStateFile(sd.dir, base(failed, { status: 'failed', finishedAt: '2026-04-27T10:16:00.000Z' }));

  const t0 = Date.now();
  const eEx = DockerRunner.attach(exited);
  const rEx = await eEx.result;
  assert.ok(Date.now() - t0 < 1000, 'resolved at once');
  assert.equal(eEx.id, exited);
  assert.equal(eEx.result, eEx.result, 'result is one stable Promise');
  assert.deepEqual(rEx, {
    success: true, exitCode: 0, duration: 60000, cancelled: false, timedOut: false, oomKilled: false, extracted,
  });

  const r3 = await DockerRunner.attach(exited3).result;
  assert.equal(r3.success, false);
  assert.equal(r3.exitCode, 3);
  assert.equal(r3.duration, 5);
  assert.equal(r3.extracted, undefined);

  const eC = DockerRunner.attach(cancelled);
  const rC = await eC.result;
  assert.equal(rC.cancelled, true);
  assert.equal(rC.success, false);
  assert.equal(rC.exitCode, 137);
  assert.equal(eC.cancelled, true);

  const t1 = Date.now();
  const rF = await DockerRunner.attach(failed).result;
  assert.ok(Date.now() - t1 < 1000, 'failed state resolved at once');
  assert.equal(rF.success, false);
  assert.equal(typeof rF.exitCode, 'number');
  assert.notEqual(rF.exitCode, 0);

  // Attaching never rewrites a terminal state.
  assert.equal(readStateFile(sd.dir, exited).status, 'exited');
  assert.deepEqual(readStateFile(sd.dir, exited).extracted, extracted);
  assert.equal(readStateFile(sd.dir, failed).status, 'failed');
  // Control calls on a terminal attach are harmless.
  eEx.cancel();
  await eEx.stop({ grace: 0 });
  assert.deepEqual(await eEx.result, rEx);
  assert.equal(readStateFile(sd.dir, exited).status, 'exited');
});

test('attach right after run() does not race (same process and another process)', async (t) => {
  const sd = privateStateDir(t);
  const to = sd.tmp('lr-det-out-');
  // Same process.
  const runner = new DockerRunner();
  const ex = runner.run({
    image: 'light-runner-busybox:latest', command: 'echo a > /app/a.txt', detached: true,
    extract: [{ from: '/app/a.txt', to }],
  });
  sd.track(ex.id);
  const again = DockerRunner.attach(ex.id);
  assert.ok(again, 'attach right after run() finds the run');
  assert.equal(again.id, ex.id);
  const [r1, r2] = await Promise.all([ex.result, again.result]);
  assert.equal(r1.success, true, JSON.stringify(r1));
  assert.deepEqual(r2, r1);
  assert.equal(r1.extracted?.[0]?.status, 'ok');
  assertGone(ex.id);

  // Another process, attaching as soon as it learns the id (before the
  // container exists).
  const launcher = child('detached-launch', {
    request: { command: 'sleep 1; exit 0' },
    awaitResult: true,
  });
  const { id } = await launcher.event('id');
  sd.track(id);
  const early = DockerRunner.attach(id);
  assert.ok(early);
  const rEarly = await early.result;
  const rLaunch = (await launcher.event('result', 30_000)).result;
  assert.equal(rEarly.success, true, JSON.stringify(rEarly));
  assert.equal(rEarly.exitCode, 0);
  assert.deepEqual(rEarly, rLaunch);
  assert.equal(readState(id).status, 'exited');
  assertGone(id);
});

test('attach from another process while the launcher seeds a 400 MB dir does not fail the run', async (t) => {
  const sd = privateStateDir(t);
  const src = sd.tmp('lr-det-big-');
  const big = makeBigDir(src);
  const launcher = child('detached-launch', {
    request: {
      dir: big,
      command: 'test -f /app/d39/f99 && test "$(ls /app | wc -l)" = 40',
    },
    awaitResult: true,
  });
  const { id } = await launcher.event('id');
  sd.track(id);
  const attacher = child('detached-attach', { id });
  const att = await attacher.event('attached');
  assert.equal(att.found, true);
  assert.equal(att.state.status, 'running');
  const cAtAttach = await containerListedFast(id);
  assert.ok(cAtAttach === null || cAtAttach === 'created',
    `attached before the container started (${cAtAttach})`);
  const [a, l] = await Promise.all([
    attacher.event('result', 90_000),
    launcher.event('result', 90_000),
  ]);
  assert.equal(a.result.success, true, `attacher: ${JSON.stringify(a.result)} ${JSON.stringify(a.state)}`);
  assert.equal(a.result.exitCode, 0);
  assert.deepEqual(a.result, l.result);
  const st = readState(id);
  assert.equal(st.status, 'exited', JSON.stringify(st));
  assert.equal(st.exitCode, 0);
  assert.equal(st.error, undefined);
  assertGone(id);
});

test('attach to a container that exited while nobody watched resolves promptly with its exit code', async (t) => {
  const sd = privateStateDir(t);
  const launcher = child('detached-launch', {
    request: { command: 'sleep 1; exit 7' },
    awaitResult: true,
  });
  const { id } = await launcher.event('id');
  sd.track(id);
  await waitRunning(id);
  launcher.kill('SIGKILL');
  await launcher.exited;
  const st = await waitExited(id);
  assert.equal(st.ExitCode, 7);
  await sleep(500);
  assert.equal(readState(id).status, 'running', 'nobody finalized it yet');

  const t0 = Date.now();
  const ex = DockerRunner.attach(id);
  assert.ok(ex);
  const r = await ex.result;
  const took = Date.now() - t0;
  assert.ok(took < 5000, `resolved in ${took} ms`);
  assert.equal(r.exitCode, 7);
  assert.equal(r.success, false);
  assert.equal(r.cancelled, false);
  assert.equal(r.timedOut, false);
  const end = readState(id);
  assert.equal(end.status, 'exited');
  assert.equal(end.exitCode, 7);
  assertGone(id);
});

test('exactly-once finalization: launcher + two attached processes, one extraction, same result', async (t) => {
  const sd = privateStateDir(t);
  const to = sd.tmp('lr-det-out-');
  const since = Date.now();
  const launcher = child('detached-launch', {
    request: {
      command: 'sleep 3; mkdir -p /app/out; echo once > /app/out/r.txt; echo two > /app/out/s.txt',
      extract: [{ from: '/app/out', to }],
    },
    awaitResult: true,
  });
  const { id } = await launcher.event('id');
  sd.track(id);
  await waitRunning(id);
  const a1 = child('detached-attach', { id });
  const a2 = child('detached-attach', { id });
  assert.equal((await a1.event('attached')).found, true);
  assert.equal((await a2.event('attached')).found, true);
  const results = await Promise.all([launcher, a1, a2].map((c) => c.event('result', 60_000)));
  for (const c of [launcher, a1, a2]) assert.equal((await c.exited).code, 0, c.stderr);
  const [r0, r1, r2] = results.map((x) => x.result);
  assert.equal(r0.success, true, JSON.stringify(r0));
  assert.equal(r0.extracted?.length, 1);
  assert.equal(r0.extracted[0].status, 'ok');
  assert.deepEqual(r1, r0, 'first attached process: same result, extracted included');
  assert.deepEqual(r2, r0, 'second attached process: same result, extracted included');
  assert.deepEqual(fs.readdirSync(to).sort(), ['r.txt', 's.txt']);
  assert.equal(fs.readFileSync(path.join(to, 'r.txt'), 'utf8'), 'once\n');

  const st = readState(id);
  assert.equal(st.status, 'exited');
  assert.deepEqual(st.extracted, r0.extracted, 'the state records extracted');
  assert.equal(st.finalizing, undefined);
  assertGone(id);
  // The daemon saw exactly one archive read (one extraction) and one removal.
  const until = Date.now();
  assert.equal(countContainerEvents(id, 'archive-path', since, until), 1, 'extracted exactly once');
  assert.equal(countContainerEvents(id, 'destroy', since, until), 1);

  // A later attach of the terminal state returns the same result.
  const later = await DockerRunner.attach(id).result;
  assert.deepEqual(later, r0);
});
