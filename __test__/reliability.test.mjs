// The short version of `npm run reliability`: every probe with a small N
// (hosts SIGKILLed at random moments, a private dockerd stopped under
// running runs with and without live-restore, floods, hostile jobs, full
// disks, a soak, two "machines" sharing a state directory). It fails on any
// broken expectation; the report is printed either way.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import path from 'node:path';

import { ROOT, runNode } from './helpers.mjs';

test('reliability probes, short run: every expectation met, nothing leaked', async () => {
  const { code, signal, stdout, stderr } = await runNode(
    [path.join(ROOT, 'bench', 'reliability', 'run.mjs'), '--short'],
    { timeout: 20 * 60_000 },
  );
  process.stdout.write(stdout.split('\n').map((l) => `# ${l}`).join('\n') + '\n');
  assert.equal(signal, null, `killed by ${signal}\n${stderr}`);
  assert.equal(code, 0, `broken expectations:\n${stderr}\n${stdout}`);
  assert.match(stdout, /\| probe \| N \| outcomes \| leaks \| host \| figures \| expectations \|/);
  assert.doesNotMatch(stdout, /BROKEN/);
});
