// onLog backpressure bounds the host's memory by what is queued, not by
// how many batches: a flood of one-byte lines read by a slow onLog keeps
// the host's RSS growth small, and every line arrives.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { FIXTURES, runNode } from './helpers.mjs';

test('a flood of one-byte lines to a slow onLog: every line arrives, host RSS grows < 50 MiB', async () => {
  const n = 3_000_000;
  // V8's young generation alone may grow by some 30 MiB under such a burst
  // of short strings: kept at 1 MiB, what is measured is what the package
  // holds (before the bound by bytes: +60 to +115 MiB here; after: about +20).
  const { code, stdout, stderr } = await runNode(
    ['--max-semi-space-size=1', path.join(FIXTURES, 'log-flood.mjs'), String(n)],
    { timeout: 300_000 },
  );
  assert.equal(code, 0, stderr);
  const r = JSON.parse(stdout.trim().split('\n').pop());
  assert.equal(r.success, true);
  assert.equal(r.lines, n);
  assert.equal(r.bad, 0);
  const grewMiB = (r.rssPeak - r.rssStart) / 2 ** 20;
  assert.ok(grewMiB < 50, `host RSS grew ${grewMiB.toFixed(1)} MiB while ${n} lines were queued for onLog`);
});
