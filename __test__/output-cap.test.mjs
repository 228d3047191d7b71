// maxLogBytes: past the cap, lines are no longer delivered or kept, the
// container keeps running, and the result and the state say
// logsTruncated: true.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, deleteState, readState } from 'light-runner';
import { BUSYBOX, rmrf, tmpdir } from './helpers.mjs';

const N = 500;
const CAP = 1000;
// The lines onLog may see: the longest prefix of "line 1".."line N" whose
// bytes, plus one newline each, fit in CAP.
function prefix() {
  const out = [];
  let used = 0;
  for (let i = 1; i <= N; i += 1) {
    const l = `line ${i}`;
    if (used + l.length + 1 > CAP) break;
    used += l.length + 1;
    out.push(l);
  }
  return out;
}
// Past the cap the job writes 5 MB more (its output is still drained: a
// container whose output nobody read would block), then leaves a file
// behind: extracting it proves the container was not stopped by the cap.
const JOB = `for i in $(seq 1 ${N}); do echo "line $i"; done; head -c 5000000 /dev/zero | tr '\\0' x; echo; echo finished > done.txt`;

for (const detached of [false, true]) {
  const kind = detached ? 'detached' : 'attached';
  test(`maxLogBytes (${kind}): lines stop at the cap, the run goes on, result and state say logsTruncated`, { timeout: 60_000 }, async () => {
    const out = tmpdir('lr-cap-');
    const lines = [];
    const ex = new DockerRunner({ maxLogBytes: CAP }).run({
      image: BUSYBOX, command: JOB, detached, extract: [{ from: 'done.txt', to: out }],
      ...(detached ? {} : { onLog: (l) => lines.push(l) }),
    });
    try {
      assert.equal(readState(ex.id).maxLogBytes, CAP, 'the cap is recorded for every host');
      let result;
      if (detached) {
        const again = DockerRunner.attach(ex.id, { onLog: (l) => lines.push(l) });
        result = await again.result;
      } else {
        result = await ex.result;
      }
      assert.deepEqual(lines, prefix());
      assert.equal(result.success, true);
      assert.equal(result.logsTruncated, true);
      assert.equal(result.extracted[0].status, 'ok');
      assert.equal(fs.readFileSync(path.join(out, 'done.txt'), 'utf8'), 'finished\n');
      const state = readState(ex.id);
      assert.equal(state.logsTruncated, true);
      assert.equal(state.logs.lines, prefix().length, 'only the delivered lines are kept');
      const replayed = [];
      await DockerRunner.attach(ex.id, { onLog: (l) => replayed.push(l) }).result;
      assert.deepEqual(replayed, prefix());
      assert.deepEqual((await DockerRunner.attach(ex.id).result).logsTruncated, true);
    } finally {
      await ex.result.catch(() => {});
      deleteState(ex.id);
      rmrf(out);
    }
  });
}

test('maxLogBytes: a run under the cap has no logsTruncated; a bad value throws naming the field', { timeout: 60_000 }, async () => {
  const ex = new DockerRunner({ maxLogBytes: 1 << 20 }).run({ image: BUSYBOX, command: 'echo small' });
  try {
    const r = await ex.result;
    assert.equal('logsTruncated' in r, false);
    assert.equal(readState(ex.id).logsTruncated, undefined);
  } finally {
    deleteState(ex.id);
  }
  for (const bad of [0, -1, 1.5, '1m', true]) {
    assert.throws(() => new DockerRunner({ maxLogBytes: bad }), /maxLogBytes/);
  }
});
