// Extracting into a destination that fills up (a 1 MiB tmpfs as `to`): the
// entry reports the disk's error, no partial file stays, the other entries
// and the run's result are intact. (Needs root for the tmpfs, as the suite's
// Docker tests do.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, deleteState } from 'light-runner';
import { BUSYBOX, assertGone, rmrf, tmpdir } from './helpers.mjs';

test('a full extract destination: that entry errors, no partial file, the rest and the result intact', async () => {
  const root = tmpdir('lr-full-');
  const full = path.join(root, 'full');
  const roomy = path.join(root, 'roomy');
  fs.mkdirSync(full);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', full]);
  let id;
  try {
    const ex = new DockerRunner().run({
      image: BUSYBOX,
      command: 'mkdir -p out small && head -c 4194304 /dev/zero > out/big.bin && echo kept > small/s.txt',
      extract: [{ from: 'out', to: full }, { from: 'out/big.bin', to: full }, { from: 'small', to: roomy }],
    });
    id = ex.id;
    const r = await ex.result;
    assert.equal(r.success, true, JSON.stringify(r));
    assert.equal(r.exitCode, 0);
    const [dir, file, small] = r.extracted;
    for (const e of [dir, file]) {
      assert.equal(e.status, 'error', JSON.stringify(e));
      assert.match(e.error, /No space left on device/);
      assert.match(e.error, new RegExp(full.replace(/[/.]/g, '\\$&')), 'the error names the file it could not write');
    }
    assert.deepEqual(fs.readdirSync(full), [], 'no partial file in the full destination');
    assert.equal(small.status, 'ok');
    assert.equal(fs.readFileSync(path.join(roomy, 's.txt'), 'utf8'), 'kept\n');
    assertGone(id);
  } finally {
    execFileSync('umount', [full]);
    rmrf(root);
    if (id) deleteState(id);
  }
});
