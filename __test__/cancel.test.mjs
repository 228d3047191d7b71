// cancel() and AbortSignal on an attached run: synchronous, kills the
// container (even a process that ignores SIGTERM), harmless when repeated or
// late; an already-aborted signal or a cancel right after run() means the
// container never starts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DockerRunner } from 'light-runner';
import {
  BUSYBOX, assertGone, assertResultShape, countContainerEvents, finish, scopeOf, startedRun,
} from './helpers.mjs';

const runner = new DockerRunner();

describe('cancel() and AbortSignal', () => {
  test('cancel() mid-run kills the container: cancelled true', async (t) => {
    const { ex, started, lines } = startedRun(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60; echo finished' });
    try {
      await started;
      assert.equal(ex.cancelled, false);
      const ret = ex.cancel();
      assert.equal(ret, undefined, 'cancel() is synchronous');
      assert.equal(ex.cancelled, true, 'marked cancelled at once');
      const result = await ex.result;
      assertResultShape(result);
      assert.equal(result.cancelled, true);
      assert.equal(result.success, false);
      assert.equal(result.timedOut, false);
      assert.ok(result.duration < 60_000);
      assert.deepEqual(lines, ['started']);
      assertGone(ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('cancel() kills a process that ignores SIGTERM', async (t) => {
    const { ex, started } = startedRun(t, runner, { image: BUSYBOX, command: "trap '' TERM INT; echo started; sleep 60" });
    try {
      await started;
      ex.cancel();
      const result = await ex.result;
      assert.equal(result.cancelled, true);
      assert.equal(result.success, false);
      assert.ok(result.duration < 60_000);
      assertGone(ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('a run that ends normally is not cancelled', async (t) => {
    const ex = runner.run({ image: BUSYBOX, command: 'true' });
    scopeOf(t).track(ex.id);
    const result = await ex.result;
    assert.equal(result.cancelled, false);
    assert.equal(ex.cancelled, false);
  });

  test('cancel() twice and after the end is harmless', async (t) => {
    const { ex, started } = startedRun(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60' });
    try {
      await started;
      ex.cancel();
      ex.cancel();
      const result = await ex.result;
      assert.equal(result.cancelled, true);
      ex.cancel();
      assert.equal(await ex.result, result);
    } finally {
      await finish(ex);
    }
  });

  test('AbortSignal aborted mid-run cancels the run', async (t) => {
    const ac = new AbortController();
    const { ex, started } = startedRun(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60', signal: ac.signal });
    try {
      await started;
      ac.abort();
      const result = await ex.result;
      assert.equal(result.cancelled, true);
      assert.equal(result.success, false);
      assert.equal(result.timedOut, false);
      assert.equal(ex.cancelled, true);
      assertGone(ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('an already-aborted signal: the container is never started', async (t) => {
    const since = Date.now() - 1000;
    const ex = runner.run({ image: BUSYBOX, command: 'echo should-not-run', signal: AbortSignal.abort(), onLog: () => assert.fail('logged') });
    scopeOf(t).track(ex.id);
    const result = await ex.result;
    assertResultShape(result);
    assert.equal(result.cancelled, true);
    assert.equal(result.success, false);
    assert.equal(ex.cancelled, true);
    assertGone(ex.id);
    assert.equal(countContainerEvents(ex.id, 'start', since), 0, 'no start event for the container');
  });

  test('cancel() right after run() prevents the start', async (t) => {
    const since = Date.now() - 1000;
    const ex = runner.run({ image: BUSYBOX, command: 'echo should-not-run; sleep 30', onLog: () => assert.fail('logged') });
    scopeOf(t).track(ex.id);
    ex.cancel();
    const result = await ex.result;
    assert.equal(result.cancelled, true);
    assert.equal(result.success, false);
    assertGone(ex.id);
    assert.equal(countContainerEvents(ex.id, 'start', since), 0, 'no start event for the container');
  });
});
