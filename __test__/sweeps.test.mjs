// The sweeps over the whole daemon: reapOrphans() and cleanupOrphanVolumes()
// take every labelled (or light-runner-*) resource they may, not only this
// process's, so scripts/node-test.mjs runs this file with no other file
// beside it. The tests come from attached-runs-persisted, cleanup and warm.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { describe, test } from 'node:test';

import { DockerRunner } from 'light-runner';
import {
  BUSYBOX, LABEL, assertGone, child, containerExists, docker, dockerOk, fakeId, leftoversOf, privateStateDir, scopeOf,
  sleep, volumeExists, waitFor, writeStateFile,
} from './helpers.mjs';

const WARM_LABEL = 'light-runner.warm';

/** The pid of a process that has exited. */
function deadPid() {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid;
}

test('reapOrphans() reaps the leftovers of a dead host\'s attached run, never those of a live host\'s', async (t) => {
  const sd = privateStateDir(t);
  scopeOf(t).saveEnv('LIGHT_RUNNER_REAP_AGE_MS');
  // Another process's reapOrphans() on the same daemon may take the
  // leftovers first (they are not protected by its state dir): then the
  // attempt proves nothing and is made again.
  for (let attempt = 1; ; attempt++) {
    const dead = fakeId();
    const live = fakeId();
    sd.track(dead);
    // A live host's run stays in Docker by design: removed, not checked, at the end.
    sd.leaveRunning(live);
    const t0 = Date.now();
    for (const [id, pid] of [[dead, deadPid()], [live, process.pid]]) {
      docker('volume', 'create', '--label', `${LABEL}=${id}`, id);
      docker('create', '--label', `${LABEL}=${id}`, '--name', id, '-v', `${id}:/app`, BUSYBOX, 'true');
      writeStateFile(sd.dir, {
        id, container: id, volume: id, image: BUSYBOX, workdir: '/app', command: 'true', timeout: 0, extract: [],
        startedAt: new Date().toISOString(), status: 'running', detached: false, phase: 'started',
        host: { hostname: os.hostname(), pid },
      });
    }
    // Old enough for a 10 s reap age (short ages would reach other suites' runs).
    await sleep(Math.max(0, t0 + 11_500 - Date.now()));
    const there = [dead, live].every((id) => containerExists(id) && volumeExists(id));
    if (!there && attempt < 3) continue;
    assert.ok(there, 'the leftovers exist before the reap (three attempts: another process kept reaping them)');
    process.env.LIGHT_RUNNER_REAP_AGE_MS = '10000';
    const r = await DockerRunner.reapOrphans();
    assert.ok(r.containers >= 1 && r.volumes >= 1, JSON.stringify(r));
    assertGone(dead);
    assert.equal(containerExists(live), true, 'a live host\'s attached container is kept');
    assert.equal(volumeExists(live), true, 'and its volume');
    break;
  }
});

describe('cleanupOrphanVolumes()', () => {
  test('removes unused light-runner-* volumes and returns the count', async (t) => {
    const orphan = `light-runner-${randomBytes(6).toString('hex')}`;
    const inUse = `light-runner-${randomBytes(6).toString('hex')}`;
    const other = `lr-test-keep-${randomBytes(6).toString('hex')}`;
    const holder = `lr-test-holder-${randomBytes(6).toString('hex')}`;
    scopeOf(t).defer(() => {
      dockerOk('rm', '-f', holder);
      for (const v of [orphan, inUse, other]) dockerOk('volume', 'rm', '-f', v);
    });
    docker('volume', 'create', orphan);
    docker('volume', 'create', other);
    docker('run', '-d', '--network', 'none', '--name', holder, '-v', `${inUse}:/data`, BUSYBOX, 'sleep', '120');
    const n = await DockerRunner.cleanupOrphanVolumes();
    assert.equal(typeof n, 'number');
    assert.ok(n >= 1, `returned ${n}`);
    assert.equal(volumeExists(orphan), false, 'the unused light-runner-* volume is removed');
    assert.equal(volumeExists(inUse), true, 'a volume in use is kept');
    assert.equal(volumeExists(other), true, 'a volume of another name is kept');
  });
});

test('warm containers die with their host (SIGKILL), and reapOrphans() removes a dead owner\'s even running', async (t) => {
  const host = child('warm-host', { image: BUSYBOX, count: 2 });
  const { ids } = await host.event('ready', 60_000);
  assert.equal(ids.length, 2);
  host.kill('SIGKILL');
  await host.exited;
  await waitFor(() => ids.every((id) => leftoversOf(id).length === 0), { timeout: 20_000, what: 'the watchdog removed them' });
  // One that outlived its owner (its watchdog too): labelled as warm, running.
  const ghost = `light-runner-${'f'.repeat(4)}${Date.now().toString(16).slice(-8)}`;
  scopeOf(t).track(ghost);
  docker('volume', 'create', '--label', `${LABEL}=${ghost}`, ghost);
  docker('run', '-d', '--name', ghost, '--label', `${LABEL}=${ghost}`, '--label', `${WARM_LABEL}=${os.hostname()}:${host.pid}`,
    '-v', `${ghost}:/app`, BUSYBOX, 'sleep', '60');
  const r = await DockerRunner.reapOrphans();
  assert.ok(r.containers >= 1, JSON.stringify(r));
  assert.deepEqual(leftoversOf(ghost), [], 'removed although it was running');
});
