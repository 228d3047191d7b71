// Controlling a run (SPEC 11): stop({signal, grace}), pause()/resume() and
// cancel(), for attached and detached runs, from the launcher or from another
// process, with the state transitions of the seed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, readState } from '../index.mjs';
import {
  BUSYBOX, assertGone, child, containerListedFast, containerState, countContainerEvents, makeBigDir,
  privateStateDir, sleep, waitFor, waitRunning,
} from './helpers.mjs';

const TRAP42 = "trap 'exit 42' TERM; while true; do sleep 0.1; done";
const IGNORE_TERM = "trap '' TERM; while true; do sleep 0.1; done";

for (const detached of [false, true]) {
  const kind = detached ? 'detached' : 'attached';

  test(`stop(): a TERM trap exiting 42 within the grace gives exitCode 42 (${kind})`, async (t) => {
    const sd = privateStateDir(t);
    const ex = new DockerRunner().run({ image: BUSYBOX, command: TRAP42, detached });
    sd.track(ex.id);
    await waitRunning(ex.id);
    const t0 = Date.now();
    await ex.stop({ signal: 'SIGTERM', grace: 10_000 });
    assert.ok(Date.now() - t0 < 8000, 'stop returned well within the grace');
    assert.equal(ex.cancelled, true, 'stop marks cancelled');
    const r = await ex.result;
    assert.equal(r.exitCode, 42, JSON.stringify(r));
    assert.equal(r.cancelled, true);
    assert.equal(r.success, false);
    if (detached) {
      const st = readState(ex.id);
      assert.equal(st.status, 'cancelled');
      assert.equal(st.cancelled, true);
      assert.equal(st.exitCode, 42);
    }
    await waitFor(() => containerState(ex.id) === null, { timeout: 5000, what: 'container removed' });
    assertGone(ex.id);
    // stop() on a finished run is a no-op.
    await ex.stop({ grace: 0 });
  });

  test(`stop({grace: 0}) kills at once a run that ignores SIGTERM (${kind})`, async (t) => {
    const sd = privateStateDir(t);
    const ex = new DockerRunner().run({ image: BUSYBOX, command: IGNORE_TERM, detached });
    sd.track(ex.id);
    await waitRunning(ex.id);
    const t0 = Date.now();
    await ex.stop({ signal: 'SIGTERM', grace: 0 });
    const r = await ex.result;
    const took = Date.now() - t0;
    assert.ok(took < 3000, `grace 0 killed in ${took} ms`);
    assert.equal(r.exitCode, 137, JSON.stringify(r));
    assert.equal(r.cancelled, true);
    if (detached) assert.equal(readState(ex.id).status, 'cancelled');
  });

  test(`pause()/resume(): docker shows paused then running, not a cancel, run completes (${kind})`, async (t) => {
    const sd = privateStateDir(t);
    const to = sd.tmp('lr-det-out-');
    // ~3 s of work in 0.1 s steps; then a result file to extract.
    const ex = new DockerRunner().run({
      image: BUSYBOX,
      command: 'i=0; while [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; echo done > /app/done.txt',
      extract: [{ from: '/app/done.txt', to }],
      detached,
    });
    sd.track(ex.id);
    await waitRunning(ex.id);
    await ex.pause();
    let st = containerState(ex.id);
    assert.equal(st.Paused, true);
    assert.equal(st.Status, 'paused');
    assert.equal(ex.cancelled, false, 'pause is not a cancel');
    if (detached) {
      assert.equal(readState(ex.id).status, 'running');
      assert.equal(readState(ex.id).cancelled, false);
    }
    // Paused for longer than the job would need: the run is still alive.
    await sleep(3500);
    st = containerState(ex.id);
    assert.equal(st.Paused, true, 'still paused');
    await ex.resume();
    st = containerState(ex.id);
    assert.equal(st.Paused, false);
    assert.equal(st.Running, true);
    assert.equal(st.Status, 'running');
    assert.equal(ex.cancelled, false);
    const r = await ex.result;
    assert.equal(r.success, true, JSON.stringify(r));
    assert.equal(r.exitCode, 0);
    assert.equal(r.cancelled, false);
    assert.equal(r.extracted?.[0]?.status, 'ok');
    assert.equal(fs.readFileSync(path.join(to, 'done.txt'), 'utf8'), 'done\n');
    if (detached) {
      const s = readState(ex.id);
      assert.equal(s.status, 'exited');
      assert.equal(s.cancelled, false);
    }
    // pause()/resume() on a finished run reject with the docker op named.
    await assert.rejects(ex.pause(), (e) => e instanceof Error && e.message.startsWith('docker pause failed:'));
    await assert.rejects(ex.resume(), (e) => e instanceof Error && e.message.startsWith('docker unpause failed:'));
  });

  test(`cancel(): sync, kills the run; detached state becomes cancelled (${kind})`, async (t) => {
    const sd = privateStateDir(t);
    const ex = new DockerRunner().run({ image: BUSYBOX, command: 'sleep 60', detached });
    sd.track(ex.id);
    await waitRunning(ex.id);
    const t0 = Date.now();
    const ret = ex.cancel();
    assert.equal(ret, undefined);
    assert.equal(ex.cancelled, true, 'cancelled is set synchronously');
    if (detached) assert.equal(readState(ex.id).cancelled, true, 'state marked cancelled at once');
    const r = await ex.result;
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(r.cancelled, true);
    assert.equal(r.success, false);
    assert.notEqual(r.exitCode, 0);
    if (detached) {
      const st = readState(ex.id);
      assert.equal(st.status, 'cancelled');
      assert.equal(st.cancelled, true);
      assert.equal(typeof st.exitCode, 'number');
      assert.equal(typeof st.finishedAt, 'string');
      assert.equal(typeof st.durationMs, 'number');
    }
    await waitFor(() => containerState(ex.id) === null, { timeout: 5000, what: 'container removed' });
    assertGone(ex.id);
    ex.cancel(); // again: harmless
  });

  test(`pause()/resume() on a run whose container is gone reject with docker ... failed (${kind})`, async (t) => {
    const sd = privateStateDir(t);
    const ex = new DockerRunner().run({ image: BUSYBOX, command: 'exit 0', detached });
    sd.track(ex.id);
    const r = await ex.result;
    assert.equal(r.success, true);
    await assert.rejects(ex.pause(), (e) => {
      assert.match(e.message, /^docker pause failed: /);
      return true;
    });
    await assert.rejects(ex.resume(), (e) => {
      assert.match(e.message, /^docker unpause failed: /);
      return true;
    });
  });
}

test('cancel() right after run() (detached) prevents the start; state cancelled', async (t) => {
  const sd = privateStateDir(t);
  const since = Date.now();
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'echo should-not-run > /app/x; sleep 30', detached: true });
  sd.track(ex.id);
  ex.cancel();
  const r = await ex.result;
  assert.equal(r.cancelled, true);
  assert.equal(r.success, false);
  const st = readState(ex.id);
  assert.equal(st.status, 'cancelled', JSON.stringify(st));
  assert.equal(st.cancelled, true);
  assertGone(ex.id);
  assert.equal(countContainerEvents(ex.id, 'start', since, Date.now()), 0, 'the container never started');
});

test('an aborted signal on a detached run: never started, state cancelled', async (t) => {
  const sd = privateStateDir(t);
  const since = Date.now();
  const ac = new AbortController();
  ac.abort();
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'sleep 30', detached: true, signal: ac.signal });
  sd.track(ex.id);
  const r = await ex.result;
  assert.equal(r.cancelled, true);
  assert.equal(readState(ex.id).status, 'cancelled');
  assertGone(ex.id);
  assert.equal(countContainerEvents(ex.id, 'start', since, Date.now()), 0, 'the container never started');
});

test('stop() waits out the grace then SIGKILLs a run that ignores SIGTERM (detached)', async (t) => {
  const sd = privateStateDir(t);
  const ex = new DockerRunner().run({ image: BUSYBOX, command: IGNORE_TERM, detached: true });
  sd.track(ex.id);
  await waitRunning(ex.id);
  const t0 = Date.now();
  await ex.stop({ grace: 1500 });
  const took = Date.now() - t0;
  assert.ok(took >= 1400, `waited the grace (${took} ms)`);
  assert.ok(took < 6000, `then killed (${took} ms)`);
  const r = await ex.result;
  assert.equal(r.exitCode, 137);
  assert.equal(readState(ex.id).status, 'cancelled');
});

test('stop/cancel/pause from another process on a detached run (attached handle)', async (t) => {
  const sd = privateStateDir(t);
  const launcher = child('detached-launch', { request: { command: TRAP42 }, awaitResult: true });
  const { id } = await launcher.event('id');
  sd.track(id);
  await waitRunning(id);
  // Pause from here via attach: the launcher is not fooled into a cancel.
  const ex = DockerRunner.attach(id);
  await ex.pause();
  assert.equal(containerState(id).Paused, true);
  await ex.resume();
  assert.equal(containerState(id).Running, true);
  assert.equal(containerState(id).Paused, false);
  assert.equal(readState(id).status, 'running');
  const stopper = child('detached-attach', { id, action: 'stop', stop: { signal: 'SIGTERM', grace: 5000 } });
  const { result } = await stopper.event('result', 30_000);
  assert.equal(result.exitCode, 42);
  assert.equal(result.cancelled, true);
  const lr = (await launcher.event('result', 30_000)).result;
  assert.deepEqual(lr, result, 'the launcher sees the same stopped result');
  assert.deepEqual(await ex.result, result);
  assert.equal(readState(id).status, 'cancelled');
  assertGone(id);
});

test('cancel() from another process while the launcher seeds prevents the start', async (t) => {
  const sd = privateStateDir(t);
  const src = sd.tmp('lr-det-big-');
  const big = makeBigDir(src);
  const since = Date.now();
  const launcher = child('detached-launch', {
    request: { dir: big, command: 'sleep 5; exit 0' },
    awaitResult: true,
  });
  const { id } = await launcher.event('id');
  sd.track(id);
  // (Listed, not inspected: inspect blocks while the daemon receives the upload.)
  await waitFor(async () => (await containerListedFast(id)) === 'created', { timeout: 20_000, every: 5, what: 'container created' });
  const canceller = child('detached-attach', { id, action: 'cancel' });
  assert.equal((await canceller.event('cancelled')).cancelled, true);
  const rc = (await canceller.event('result', 60_000)).result;
  const rl = (await launcher.event('result', 60_000)).result;
  assert.equal(rc.cancelled, true, JSON.stringify(rc));
  assert.equal(rc.success, false);
  assert.deepEqual(rl, rc, 'the launcher reports the same cancelled result');
  assert.equal(readState(id).status, 'cancelled');
  assertGone(id);
  assert.equal(countContainerEvents(id, 'start', since, Date.now()), 0, 'a run cancelled during setup never starts');
  assert.notEqual(rc.exitCode, 0, 'the job did not run to completion');
});

test('stop() from another process on a run past setup but paused: killed, state cancelled', async (t) => {
  const sd = privateStateDir(t);
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'sleep 60', detached: true });
  sd.track(ex.id);
  await waitRunning(ex.id);
  await ex.pause();
  const stopper = child('detached-attach', { id: ex.id, action: 'stop', stop: { grace: 500 } });
  const { result } = await stopper.event('result', 30_000);
  assert.equal(result.cancelled, true);
  assert.equal(result.success, false);
  assert.deepEqual(await ex.result, result);
  assert.equal(readState(ex.id).status, 'cancelled');
  assertGone(ex.id);
});

test('stop({signal}) sends the given signal (SIGUSR1 trap exits 43) on a detached run', async (t) => {
  const sd = privateStateDir(t);
  const ex = new DockerRunner().run({
    image: BUSYBOX, command: "trap 'exit 43' USR1; while true; do sleep 0.1; done", detached: true,
  });
  sd.track(ex.id);
  await waitRunning(ex.id);
  await ex.stop({ signal: 'SIGUSR1', grace: 5000 });
  const r = await ex.result;
  assert.equal(r.exitCode, 43, JSON.stringify(r));
  assert.equal(r.cancelled, true);
  const st = readState(ex.id);
  assert.equal(st.status, 'cancelled');
  assert.equal(st.exitCode, 43);
});
