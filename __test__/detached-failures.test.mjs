// Detached runs that go wrong: nothing is lost when a finalizer dies
// mid-extraction, a deadline already past when a host attaches, a container
// removed under a watching host, setup failures, a launcher killed during
// setup, a stop or cancel that arrives after the container exited.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, LightRunnerError, readState } from '../index.mjs';
import {
  BUSYBOX, assertGone, child, containerExists, containerListedFast, containerState, docker, makeBigDir,
  privateStateDir, scopeOf, sleep, volumeExists, waitExited, waitFor, waitRunning,
} from './helpers.mjs';

test('a finalizer SIGKILLed around the exit/extraction: another host still collects the full result', async (t) => {
  const sd = privateStateDir(t);
  const to = sd.tmp('lr-det-out-');
  const SIZE = 200_000_000;
  const launcher = child('detached-launch', {
    request: {
      command: `sleep 1; head -c ${SIZE} /dev/zero > /app/big.bin; echo end > /app/end.txt`,
      extract: [{ from: '/app/big.bin', to }, { from: '/app/end.txt', to }],
    },
    awaitResult: true,
  });
  const { id } = await launcher.event('id');
  sd.track(id);
  await waitRunning(id);
  // Kill the launcher as soon as the container has exited: it is then
  // claiming or extracting.
  await waitFor(() => containerState(id)?.Status !== 'running', { timeout: 30_000, every: 20, what: 'container exit' });
  launcher.kill('SIGKILL');
  await launcher.exited;
  const ex = DockerRunner.attach(id);
  assert.ok(ex);
  const r = await ex.result;
  assert.equal(r.success, true, JSON.stringify(r));
  assert.deepEqual(r.extracted.map((e) => e.status), ['ok', 'ok']);
  assert.equal(fs.statSync(path.join(to, 'big.bin')).size, SIZE, 'the whole file was extracted');
  assert.equal(fs.readFileSync(path.join(to, 'end.txt'), 'utf8'), 'end\n');
  const st = readState(id);
  assert.equal(st.status, 'exited');
  assert.deepEqual(st.extracted, r.extracted);
  assertGone(id);
});

test('attach after the deadline already passed (launcher dead) kills at once: timedOut', async (t) => {
  const sd = privateStateDir(t);
  const launcher = child('detached-launch', { request: { command: 'sleep 60', timeout: 2000 }, awaitResult: true });
  const { id, state } = await launcher.event('id');
  sd.track(id);
  await waitRunning(id);
  launcher.kill('SIGKILL');
  await launcher.exited;
  await sleep(Math.max(0, Date.parse(state.startedAt) + 3000 - Date.now()));
  assert.equal(containerState(id)?.Running, true);
  const t0 = Date.now();
  const r = await DockerRunner.attach(id).result;
  assert.ok(Date.now() - t0 < 5000, `resolved ${Date.now() - t0} ms after attach`);
  assert.equal(r.timedOut, true);
  assert.equal(r.success, false);
  assert.equal(readState(id).timedOut, true);
  assertGone(id);
});

test('a detached container removed under a watching launcher: the run ends failed, not hanging', async (t) => {
  const sd = privateStateDir(t);
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'sleep 60', detached: true });
  sd.track(ex.id);
  await waitRunning(ex.id);
  docker('rm', '-f', ex.id);
  let timer;
  const r = await Promise.race([
    ex.result.then((v) => ({ v }), (e) => ({ e })),
    new Promise((res) => { timer = setTimeout(() => res(null), 20_000); }),
  ]);
  clearTimeout(timer);
  assert.ok(r, 'result settles after the container vanished');
  if (r.v) {
    assert.equal(r.v.success, false);
  }
  const st = readState(ex.id);
  // `docker rm -f` kills (137) then removes: either the kill was seen
  // (exited 137) or only the vanishing (failed). Never a success.
  assert.ok(['exited', 'failed'].includes(st.status), JSON.stringify(st));
  if (st.status === 'exited') assert.equal(st.exitCode, 137);
  assert.equal(r.v?.success ?? false, false);
  await waitFor(() => !volumeExists(ex.id), { timeout: 10_000, what: 'volume removed' });
});

test('setup failures of a detached run: result rejects, state failed, nothing left in Docker', async (t) => {
  const sd = privateStateDir(t);
  const runner = new DockerRunner();
  const noDir = runner.run({ image: BUSYBOX, dir: '/nonexistent/lr-det', command: 'true', detached: true });
  sd.track(noDir.id);
  // Its state is there as soon as run() returns; the setup's failure may
  // already be on record (the driver runs on its own threads).
  assert.ok(['running', 'failed'].includes(readState(noDir.id).status));
  await assert.rejects(noDir.result, (e) => {
    assert.ok(e instanceof LightRunnerError);
    assert.match(e.message, /dir path not found: \/nonexistent\/lr-det/);
    return true;
  });
  assert.equal(readState(noDir.id).status, 'failed');
  assertGone(noDir.id);

  const noImage = runner.run({ image: 'light-runner-no-such-image:nope', command: 'true', detached: true });
  sd.track(noImage.id);
  await assert.rejects(noImage.result, (e) => e instanceof LightRunnerError && e.code === 'CONTAINER_START_FAILED');
  const st = readState(noImage.id);
  assert.equal(st.status, 'failed');
  assert.equal(containerExists(noImage.id), false);
  assert.equal(volumeExists(noImage.id), false);
  // A later attach resolves with the failed result at once.
  const r = await DockerRunner.attach(noImage.id).result;
  assert.equal(r.success, false);
  assert.notEqual(r.exitCode, 0);
});

test('a detached run whose container exits non-zero: no extraction, state exited with the code', async (t) => {
  const sd = privateStateDir(t);
  const to = sd.tmp('lr-det-out-');
  const ex = new DockerRunner().run({
    image: BUSYBOX, command: 'echo x > /app/x.txt; exit 9', detached: true,
    extract: [{ from: '/app/x.txt', to }],
  });
  sd.track(ex.id);
  const r = await ex.result;
  assert.equal(r.exitCode, 9);
  assert.equal(r.success, false);
  assert.equal(r.extracted, undefined);
  assert.deepEqual(fs.readdirSync(to), []);
  const st = readState(ex.id);
  assert.equal(st.status, 'exited');
  assert.equal(st.exitCode, 9);
  assert.equal(st.extracted, undefined);
  assertGone(ex.id);
});

test('the deadline holds for a paused detached run', async (t) => {
  const sd = privateStateDir(t);
  const t0 = Date.now();
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'sleep 60', timeout: 2500, detached: true });
  sd.track(ex.id);
  await waitRunning(ex.id);
  await ex.pause();
  assert.equal(containerState(ex.id).Paused, true);
  let timer;
  const r = await Promise.race([
    ex.result,
    new Promise((res) => { timer = setTimeout(() => res(null), 20_000); }),
  ]);
  clearTimeout(timer);
  assert.ok(r, 'a paused run past its deadline is still killed');
  assert.equal(r.timedOut, true, JSON.stringify(r));
  assert.equal(r.success, false);
  assert.ok(Date.now() - t0 < 12_000);
  assert.equal(readState(ex.id).timedOut, true);
  await waitFor(() => !containerExists(ex.id), { timeout: 5000, what: 'container removed' });
  assertGone(ex.id);
});

test('launcher SIGKILLed while seeding: attach and cleanupOrphanStates end the run failed, resources removed', async (t) => {
  const sd = privateStateDir(t);
  const src = sd.tmp('lr-det-big-');
  const big = makeBigDir(src);
  for (const via of ['attach', 'cleanup']) {
    const launcher = child('detached-launch', { request: { dir: big, command: 'true' }, awaitResult: true });
    const { id } = await launcher.event('id');
    sd.track(id);
    // Wait until its container exists (created, being seeded), then kill.
    // (Listed, not inspected: inspect blocks while the daemon receives the upload.)
    await waitFor(async () => (await containerListedFast(id)) === 'created', { timeout: 20_000, every: 5, what: 'container created' });
    launcher.kill('SIGKILL');
    await launcher.exited;
    const cs = containerState(id);
    assert.notEqual(cs?.Running, true, `${via}: never started ${JSON.stringify(cs)} ${JSON.stringify(readState(id))}`);
    let r;
    if (via === 'attach') {
      const t0 = Date.now();
      r = await DockerRunner.attach(id).result;
      assert.ok(Date.now() - t0 < 15_000, `resolved in ${Date.now() - t0} ms`);
    } else {
      assert.equal(await DockerRunner.cleanupOrphanStates(), 1);
      r = await DockerRunner.attach(id).result;
    }
    assert.equal(r.success, false, `${via}: ${JSON.stringify(r)}`);
    const st = readState(id);
    assert.equal(st.status, 'failed', `${via}: ${JSON.stringify(st)}`);
    await waitFor(() => !containerExists(id) && !volumeExists(id), { timeout: 10_000, what: `${via}: resources removed` });
  }
});

test('launcher SIGKILLed before it created anything: attach resolves failed promptly', async (t) => {
  const sd = privateStateDir(t);
  // A "daemon" that accepts connections and never answers: the launcher is
  // stuck in setup with only its state file written.
  const sockets = [];
  const server = net.createServer((s) => sockets.push(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  scopeOf(t).defer(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const launcher = child('detached-launch', { request: { command: 'true' }, awaitResult: true }, {
    env: { DOCKER_HOST: `tcp://127.0.0.1:${server.address().port}` },
  });
  const { id, state } = await launcher.event('id');
  sd.track(id);
  assert.equal(state.status, 'running');
  await waitFor(() => sockets.length > 0, { timeout: 5000, what: 'launcher connected' });
  await sleep(200);
  assert.deepEqual(launcher.lines.map((l) => l.event), ['id'], 'launcher still setting up');
  launcher.kill('SIGKILL');
  await launcher.exited;
  const t0 = Date.now();
  const r = await DockerRunner.attach(id).result;
  const took = Date.now() - t0;
  assert.ok(took < 10_000, `resolved in ${took} ms`);
  assert.equal(r.success, false);
  assert.equal(readState(id).status, 'failed');
  assertGone(id);
});

for (const how of ['stop', 'cancel']) {
  test(`${how}() on an attach of a run whose container already exited 0 does not discard its result`, async (t) => {
    const sd = privateStateDir(t);
    const to = sd.tmp('lr-det-out-');
    const launcher = child('detached-launch', {
      request: { command: 'echo x > /app/x.txt; sleep 1', extract: [{ from: '/app/x.txt', to }] },
      awaitResult: true,
    });
    const { id } = await launcher.event('id');
    sd.track(id);
    await waitRunning(id);
    launcher.kill('SIGKILL');
    await launcher.exited;
    const exited = await waitExited(id);
    assert.equal(exited.ExitCode, 0);
    // The job is over (only its finalization is pending): stopping or
    // cancelling it now is a no-op, its result and outputs are kept.
    const ex = DockerRunner.attach(id);
    if (how === 'stop') await ex.stop({ grace: 0 });
    else ex.cancel();
    const r = await ex.result;
    assert.equal(r.exitCode, 0);
    assert.equal(r.success, true, JSON.stringify(r));
    assert.equal(r.extracted?.[0]?.status, 'ok');
    assert.equal(fs.readFileSync(path.join(to, 'x.txt'), 'utf8'), 'x\n');
    assert.equal(readState(id).status, 'exited');
    assertGone(id);
  });
}
