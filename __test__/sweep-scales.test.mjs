// cleanupOrphanStates() over many states reconciles them concurrently and
// never lingers per state in the caller's path (issue: 4 launchers that
// died in setup took 20 s through light-run's maintenance path; 1,000 would
// have taken 83 minutes). 40 states whose launcher died while setting its
// run up (no container was ever created) all end `failed` within a few
// seconds; what a create in flight may land later is looked for in the
// background while the process lives (else the next reapOrphans()).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { test } from 'node:test';

import { DockerRunner, readState } from 'light-runner';
import { BUSYBOX, fakeId, leftoversOf, privateStateDir, writeStateFile } from './helpers.mjs';

/** The pid of a process that just exited: a launcher that died. */
function deadPid() {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('40 states whose launcher died in setup all end failed within a few seconds', { timeout: 120_000 }, async (t) => {
  const sd = privateStateDir(t);
  const pid = deadPid();
  const started = new Date(Date.now() - 10_000).toISOString();
  const ids = Array.from({ length: 40 }, () => fakeId());
  for (const id of ids) {
    sd.track(id);
    writeStateFile(sd.dir, {
      id, container: id, volume: id, image: BUSYBOX, workdir: '/app', command: 'true',
      timeout: 0, extract: [], startedAt: started, status: 'running', detached: true,
      phase: 'setup', cancelled: false, host: { hostname: os.hostname(), pid },
    });
  }
  const t0 = Date.now();
  const changed = await DockerRunner.cleanupOrphanStates();
  const took = Date.now() - t0;
  assert.equal(changed, 40);
  for (const id of ids) {
    const st = readState(id);
    assert.equal(st.status, 'failed', id);
    assert.equal(st.error, 'the container never started');
  }
  assert.ok(took < 15_000, `took ${took} ms (one 5 s linger per state would be 200 s)`);
  assert.deepEqual(leftoversOf(...ids), []);
  assert.equal(await DockerRunner.cleanupOrphanStates(), 0, 'nothing left to change');
});
