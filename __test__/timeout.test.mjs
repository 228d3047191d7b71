// `timeout` of an attached run: on expiry the container is killed (even a
// process that ignores SIGTERM) and the result says timedOut; 0 means none.
// (A run longer than two minutes, not cut off by any client-side limit: the
// client's lifted limit is a unit test, `requests_are_not_cut_at_bollards_
// two_minutes`; the 125 s run itself is in __test__/long/, `npm run test:long`.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DockerRunner } from 'light-runner';
import { BUSYBOX, assertGone, assertResultShape, runToEnd } from './helpers.mjs';

const runner = new DockerRunner();

describe('timeout kills the container', () => {
  test('expiry kills the container: success false, timedOut true, non-zero exit', async (t) => {
    const { id, result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60; echo finished', timeout: 2000 });
    assertResultShape(result);
    assert.equal(result.timedOut, true);
    assert.equal(result.success, false);
    assert.equal(result.cancelled, false);
    assert.notEqual(result.exitCode, 0);
    assert.ok(result.duration < 60_000, 'killed before the command ended');
    assert.deepEqual(lines, ['started']);
    assertGone(id);
  });

  test('a process that ignores SIGTERM is still killed at expiry', async (t) => {
    const { id, result } = await runToEnd(t, runner, { image: BUSYBOX, command: "trap '' TERM INT; echo started; sleep 60", timeout: 1500 });
    assert.equal(result.timedOut, true);
    assert.equal(result.success, false);
    assert.notEqual(result.exitCode, 0);
    assert.ok(result.duration < 60_000);
    assertGone(id);
  });

  test('timeout 0 means none', async (t) => {
    const { result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'sleep 2; echo ok', timeout: 0 });
    assert.equal(result.success, true);
    assert.equal(result.timedOut, false);
  });
});
