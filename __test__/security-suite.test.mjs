// The short version of `npm run security` (the escape and abuse suite of
// bench/security/): every attempt under baseline, restricted and runsc with
// its positive control, smaller sizes, on a private dockerd with a small
// loop-mounted data root. It fails on any broken expectation (a control that
// does not succeed, an attempt that fails for an unrelated reason, an
// attempt that succeeds under restricted without a stated reason, a result
// not recorded, anything left in the daemon); the table is printed either way.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { ROOT, runNode } from './helpers.mjs';

test('escape and abuse probes, short run: every expectation met, nothing leaked', async () => {
  const { code, signal, stdout, stderr } = await runNode(
    [path.join(ROOT, 'bench', 'security', 'run.mjs'), '--short'],
    { timeout: 15 * 60_000 },
  );
  process.stdout.write(stdout.split('\n').map((l) => `# ${l}`).join('\n') + '\n');
  assert.equal(signal, null, `killed by ${signal}\n${stderr}`);
  assert.equal(code, 0, `broken expectations:\n${stderr}\n${stdout}`);
  assert.match(stdout, /\| attempt \| baseline \| restricted \| runsc \(baseline profile\) \| positive control \|/);
  assert.match(stdout, /0 broken expectations/);
});
