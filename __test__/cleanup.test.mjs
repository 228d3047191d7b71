// An attached run leaves nothing behind in Docker, however it ends: success,
// non-zero exit, bad image, seed failure, cancel, timeout, daemon-side error,
// many at once. Each check runs on the run's own resources right after its
// result settled, before anything of the test removes them.
// (cleanupOrphanVolumes() is tested in sweeps.test.mjs.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner, LightRunnerError } from 'light-runner';
import {
  BUSYBOX, assertGone, docker, dockerEvents, finish, runToEnd, scopeOf, sleep, startedRun,
} from './helpers.mjs';

const runner = new DockerRunner();

describe('an attached run leaves nothing behind', () => {
  test('after a successful run', async (t) => {
    const { id, result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'echo x > /app/f; cat /app/f' });
    assert.equal(result.success, true);
    assertGone(id);
  });

  test('after a non-zero exit', async (t) => {
    const { id, result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'exit 9' });
    assert.equal(result.exitCode, 9);
    assertGone(id);
  });

  test('after a bad image', async (t) => {
    const ex = runner.run({ image: 'localhost:1/light-runner-nope:latest', command: 'true' });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof LightRunnerError);
    assert.equal(err.code, 'CONTAINER_START_FAILED');
    assertGone(ex.id);
  });

  test('after a seed failure (dir not found): no Docker resource created at all', async (t) => {
    const since = Date.now() - 1000;
    const dir = path.join(scopeOf(t).tmp('lr-test-'), 'does-not-exist');
    const ex = runner.run({ image: BUSYBOX, command: 'true', dir });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof Error);
    assert.match(err.message, new RegExp(`dir path not found: ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assertGone(ex.id);
    assert.deepEqual(dockerEvents(ex.id, since), [], 'no Docker event for the run at all');
  });

  test('after a seed failure (dir is a file): no Docker resource created at all', async (t) => {
    const since = Date.now() - 1000;
    const file = path.join(scopeOf(t).tmp('lr-test-'), 'a-file.txt');
    fs.writeFileSync(file, 'not a dir');
    const ex = runner.run({ image: BUSYBOX, command: 'true', dir: file });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.match(err.message, /dir path is not a directory: /);
    assert.ok(err.message.includes(file));
    assertGone(ex.id);
    assert.deepEqual(dockerEvents(ex.id, since), [], 'no Docker event for the run at all');
  });

  test('after cancel mid-run', async (t) => {
    const { ex, started } = startedRun(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60' });
    try {
      await started;
      ex.cancel();
      assert.equal((await ex.result).cancelled, true);
      assertGone(ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('after cancel before start', async (t) => {
    const ex = runner.run({ image: BUSYBOX, command: 'sleep 60' });
    scopeOf(t).track(ex.id);
    ex.cancel();
    assert.equal((await ex.result).cancelled, true);
    assertGone(ex.id);
    await sleep(1000);
    assertGone(ex.id);
  });

  test('after a timeout', async (t) => {
    const { id, result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'sleep 60', timeout: 1500 });
    assert.equal(result.timedOut, true);
    assertGone(id);
  });

  test('after a daemon-side error: a named network that does not exist', async (t) => {
    const ex = runner.run({ image: BUSYBOX, command: 'true', network: `lr-test-no-such-net-${process.pid}` });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof LightRunnerError, `got ${err}`);
    assert.equal(err.name, 'LightRunnerError');
    assert.match(err.message, /lr-test-no-such-net/);
    assertGone(ex.id);
  });

  test('after a daemon-side error: an unknown runtime', async (t) => {
    const ex = new DockerRunner({ runtime: 'kata' }).run({ image: BUSYBOX, command: 'true' });
    scopeOf(t).track(ex.id);
    const info = JSON.parse(docker('info', '--format', '{{json .Runtimes}}'));
    if ('kata' in info) {
      // Cannot provoke the error on this daemon.
      await ex.result.catch(() => {});
      return;
    }
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof LightRunnerError, `got ${err}`);
    assertGone(ex.id);
  });

  test('ten concurrent runs with mixed endings leave nothing behind', { timeout: 120_000 }, async (t) => {
    const kinds = ['ok', 'exit', 'timeout', 'cancel', 'badimage'];
    const exs = [];
    try {
      for (let i = 0; i < 10; i++) {
        const kind = kinds[i % kinds.length];
        const req = {
          ok: { image: BUSYBOX, command: 'echo started; seq 1 100 > /app/x; wc -l /app/x' },
          exit: { image: BUSYBOX, command: 'echo started; exit 5' },
          timeout: { image: BUSYBOX, command: 'echo started; sleep 60', timeout: 2000 },
          cancel: { image: BUSYBOX, command: 'echo started; sleep 60' },
          badimage: { image: 'localhost:1/light-runner-nope:latest', command: 'true' },
        }[kind];
        const run = startedRun(t, runner, req);
        if (kind === 'cancel') run.started.then(() => run.ex.cancel(), () => {});
        exs.push({ kind, ...run });
      }
      const settled = await Promise.allSettled(exs.map((e) => e.ex.result));
      settled.forEach((s, i) => {
        const { kind } = exs[i];
        if (kind === 'badimage') {
          assert.equal(s.status, 'rejected');
          assert.equal(s.reason.code, 'CONTAINER_START_FAILED');
          return;
        }
        assert.equal(s.status, 'fulfilled', `${kind}: ${s.reason}`);
        const r = s.value;
        if (kind === 'ok') assert.equal(r.success, true);
        if (kind === 'exit') assert.equal(r.exitCode, 5);
        if (kind === 'timeout') assert.equal(r.timedOut, true);
        if (kind === 'cancel') assert.equal(r.cancelled, true);
      });
      for (const { ex } of exs) assertGone(ex.id);
    } finally {
      for (const { ex } of exs) await finish(ex);
    }
  });
});
