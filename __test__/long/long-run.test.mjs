// Long runs, run by hand (`npm run test:long`), not in `npm test`: a run
// longer than bollard's 2-minute request limit completes with its output
// whole (the unit test `requests_are_not_cut_at_bollards_two_minutes` is the
// mechanism; this is the end-to-end proof). `npm run test:long` also runs the
// fuzz of every entry point at 10,000 values each (`npm test` runs 1,000).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DockerRunner } from 'light-runner';
import { BUSYBOX, assertGone, assertResultShape, runToEnd } from '../helpers.mjs';

const runner = new DockerRunner();

describe('long runs', () => {
  test('a run longer than 2 minutes with a larger timeout completes (no 120 s client timeout)',
    { timeout: 300_000 }, async (t) => {
      const { id, result, lines } = await runToEnd(t, runner, {
        image: BUSYBOX, command: 'echo begin; sleep 125; echo done', timeout: 200_000,
      });
      assertResultShape(result);
      assert.equal(result.timedOut, false);
      assert.equal(result.cancelled, false);
      assert.equal(result.exitCode, 0);
      assert.equal(result.success, true);
      assert.deepEqual(lines, ['begin', 'done']);
      assert.ok(result.duration >= 125_000, `duration ${result.duration}`);
      assertGone(id);
    });
});
