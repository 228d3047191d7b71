// Detached runs: the state file (synchronous write, seed fields, atomic
// concurrent updates, permissions, no secrets, where it lives) and `input`
// rejected synchronously with `detached: true`.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, listStates, readState } from '../index.mjs';
import {
  BUSYBOX, assertGone, child, containerState, privateStateDir, readStateFile, scopeOf, sleep, tempFiles,
  waitFor, waitRunning,
} from './helpers.mjs';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

test('run({detached}) writes the state file synchronously with the seed fields, 0600 in 0700, no secrets', async (t) => {
  const sd = privateStateDir(t);
  // A nested dir that does not exist yet: the package creates it (0700).
  const nested = path.join(sd.dir, 'deep', 'er');
  process.env.LIGHT_RUNNER_STATE_DIR = nested;
  const out = sd.tmp();
  let id;
  const runner = new DockerRunner();
  const before = Date.now();
  const ex = runner.run({
    image: BUSYBOX,
    command: 'echo ok > /app/r.txt; sleep 1',
    timeout: 60_000,
    env: { SECRET_TOKEN: 'hunter2-very-secret' },
    extract: [{ from: '/app/r.txt', to: out }],
    detached: true,
  });
  id = sd.track(ex.id);
  assert.match(id, /^light-runner-[0-9a-f]{12}$/);
  // Synchronously: no await between run() and these reads.
  const st = readState(id);
  assert.ok(st, 'readState right after run() returns the state');
  const file = path.join(nested, `${id}.json`);
  assert.ok(fs.existsSync(file), 'state file exists when run() returns');
  assert.equal(st.status, 'running');
  assert.equal(st.id, id);
  assert.equal(st.container, id);
  assert.equal(st.volume, id);
  assert.equal(st.image, BUSYBOX);
  assert.equal(st.workdir, '/app');
  assert.equal(st.entrypoint, 'echo ok > /app/r.txt; sleep 1');
  assert.equal(st.command, 'echo ok > /app/r.txt; sleep 1');
  assert.equal(st.timeout, 60_000);
  assert.deepEqual(st.extract, [{ from: '/app/r.txt', to: out }]);
  assert.match(st.startedAt, ISO);
  const started = Date.parse(st.startedAt);
  assert.ok(started >= before - 1000 && started <= Date.now() + 1000, `startedAt ${st.startedAt}`);
  // The file itself: pretty-printed JSON, private.
  const text = fs.readFileSync(file, 'utf8');
  assert.deepEqual(JSON.parse(text), st, 'readState returns the file as stored');
  assert.match(text, /\n {2}"status": "running"/, 'pretty-printed');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'state file is 0600');
  assert.equal(fs.statSync(nested).mode & 0o777, 0o700, 'state dir is 0700');
  assert.ok(!text.includes('hunter2'), 'env values are never stored');
  assert.ok(!text.includes('SECRET_TOKEN'), 'env names are not stored either');

  const result = await ex.result;
  assert.equal(result.success, true, JSON.stringify(result));
  const end = readState(id);
  assert.equal(end.status, 'exited');
  assert.equal(end.exitCode, 0);
  assert.match(end.finishedAt, ISO);
  assert.equal(typeof end.durationMs, 'number');
  assert.equal(end.cancelled, false);
  assert.equal(end.extracted?.[0]?.status, 'ok');
  const endText = fs.readFileSync(file, 'utf8');
  assert.ok(!endText.includes('hunter2'));
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'state file stays 0600 after updates');
  assert.deepEqual(tempFiles(nested), [], 'no temp file left behind');
  assertGone(id);
});

test('a run without command records no command; image default cmd runs', async (t) => {
  const sd = privateStateDir(t);
  const ex = new DockerRunner().run({ image: BUSYBOX, detached: true });
  sd.track(ex.id);
  const st = readState(ex.id);
  assert.equal(st.status, 'running');
  assert.equal(st.command, undefined);
  assert.equal(st.entrypoint, undefined);
  const r = await ex.result;
  assert.equal(typeof r.exitCode, 'number');
  assert.notEqual(readState(ex.id).status, 'running');
});

test('input with detached: true throws synchronously and leaves nothing behind', (t) => {
  const sd = privateStateDir(t);
  const runner = new DockerRunner();
  for (const input of [{ a: 1 }, 'text', 0, [1, 2]]) {
    assert.throws(
      () => runner.run({ image: BUSYBOX, command: 'cat', input, detached: true }),
      (e) => e instanceof Error && /input/i.test(e.message),
      `input ${JSON.stringify(input)} with detached must throw`,
    );
  }
  assert.deepEqual(listStates(), [], 'no state file written');
  assert.equal(fs.existsSync(sd.dir) ? fs.readdirSync(sd.dir).filter((f) => f.endsWith('.json')).length : 0, 0);
});

test('LIGHT_RUNNER_STATE_DIR is read at call time; each run keeps its own dir', async (t) => {
  const sdA = privateStateDir(t);
  const dirA = sdA.dir;
  const sdB = privateStateDir(t);
  const dirB = sdB.dir;
  const runner = new DockerRunner();
  process.env.LIGHT_RUNNER_STATE_DIR = dirA;
  const a = runner.run({ image: BUSYBOX, command: 'sleep 1', detached: true });
  sdA.track(a.id);
  process.env.LIGHT_RUNNER_STATE_DIR = dirB;
  const b = runner.run({ image: BUSYBOX, command: 'sleep 1', detached: true });
  sdB.track(b.id);
  assert.ok(fs.existsSync(path.join(dirA, `${a.id}.json`)));
  assert.ok(fs.existsSync(path.join(dirB, `${b.id}.json`)));
  assert.ok(!fs.existsSync(path.join(dirA, `${b.id}.json`)));
  assert.equal(readState(a.id), null, 'readState looks in the dir of the moment');
  assert.ok(readState(b.id));
  assert.deepEqual(listStates().map((s) => s.id), [b.id]);
  // Run `a` was started with dir A: changing the variable afterwards must
  // not make it lose its state file or its result.
  const [ra, rb] = await Promise.all([a.result, b.result]);
  assert.equal(ra.success, true, `run a: ${JSON.stringify(ra)}`);
  assert.equal(rb.success, true, `run b: ${JSON.stringify(rb)}`);
  assert.equal(readStateFile(dirA, a.id).status, 'exited');
  assert.equal(readStateFile(dirB, b.id).status, 'exited');
  assertGone(a.id);
  assertGone(b.id);
});

test('default state dir is ~/.light-runner/state when the variable is unset', async (t) => {
  const sd = privateStateDir(t);
  const home = sd.tmp('lr-det-home-');
  const c = child('detached-launch', { request: { command: 'exit 0' }, awaitResult: true }, {
    env: { HOME: home },
    unsetEnv: ['LIGHT_RUNNER_STATE_DIR'],
  });
  const { id } = await c.event('id');
  sd.track(id);
  const { result } = await c.event('result', 30_000);
  assert.equal(result.success, true);
  const dir = path.join(home, '.light-runner', 'state');
  const file = path.join(dir, `${id}.json`);
  assert.ok(fs.existsSync(file), `state file in ${dir}`);
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).status, 'exited');
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.existsSync(path.join(sd.dir, `${id}.json`)), false);
  assert.equal((await c.exited).code, 0);
});

test('20 processes updating one state at once never leave a torn or lost file', async (t) => {
  const sd = privateStateDir(t);
  const N = 20;
  const kids = [];
  let reading = true;
  scopeOf(t).defer(() => { reading = false; });
  // The launcher starts the run and exits by itself (never reads result).
  const launcher = child('detached-launch', { request: { command: 'trap "" TERM; while true; do sleep 0.2; done' } });
  const { id } = await launcher.event('id');
  sd.track(id);
  await waitRunning(id);
  await launcher.exited;
  const file = sd.file(id);

  for (let i = 0; i < N; i++) {
    kids.push(child('detached-attach', { id, action: 'cancel', waitGo: true }));
  }
  for (const k of kids) {
    const a = await k.event('attached', 60_000);
    assert.equal(a.found, true);
    assert.equal(a.state.status, 'running');
  }
  // The parent reads the file as fast as it can while the children write.
  let reads = 0;
  const torn = [];
  const reader = (async () => {
    while (reading) {
      let text;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (e) {
        torn.push(`missing: ${e.code}`);
        await sleep(1);
        continue;
      }
      try {
        const v = JSON.parse(text);
        if (v.id !== id) torn.push('wrong id');
      } catch {
        torn.push(`torn: ${text.slice(0, 80)}`);
      }
      reads++;
      await sleep(0);
    }
  })();
  for (const k of kids) k.send('go');
  const results = [];
  for (const k of kids) results.push((await k.event('result', 60_000)).result);
  reading = false;
  await reader;
  for (const k of kids) assert.equal((await k.exited).code, 0, k.stderr);

  assert.deepEqual(torn, [], `the state file was always whole and present (${reads} reads)`);
  assert.ok(reads > 10, `reader ran (${reads} reads)`);
  const final = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(final.status, 'cancelled', JSON.stringify(final));
  assert.equal(final.cancelled, true);
  assert.equal(typeof final.exitCode, 'number');
  assert.match(final.finishedAt, ISO);
  assert.equal(typeof final.durationMs, 'number');
  assert.equal(final.id, id);
  assert.equal(final.image, BUSYBOX);
  for (const r of results) {
    assert.deepEqual(r, results[0], 'every process resolves with the same result');
  }
  assert.equal(results[0].cancelled, true);
  assert.equal(results[0].success, false);
  assert.deepEqual(tempFiles(sd.dir), [], 'no temp file left behind');
  assert.deepEqual(fs.readdirSync(sd.dir).filter((f) => f.endsWith('.json')), [`${id}.json`]);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(containerState(id), null, 'container removed');
  assertGone(id);
});

test('many concurrent runs in one process write one whole state file each', async (t) => {
  const sd = privateStateDir(t);
  const runner = new DockerRunner();
  const exs = [];
  for (let i = 0; i < 8; i++) exs.push(runner.run({ image: BUSYBOX, command: `exit ${i}`, detached: true }));
  for (const ex of exs) sd.track(ex.id);
  assert.equal(new Set(exs.map((e) => e.id)).size, 8);
  assert.equal(listStates().length, 8);
  const rs = await Promise.all(exs.map((e) => e.result));
  rs.forEach((r, i) => assert.equal(r.exitCode, i));
  const states = listStates();
  assert.equal(states.length, 8);
  for (const s of states) assert.equal(s.status, 'exited');
  assert.deepEqual(tempFiles(sd.dir), []);
  await waitFor(() => exs.every((e) => containerState(e.id) === null), { timeout: 10_000, what: 'containers removed' });
});
