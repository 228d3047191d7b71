// The host finalizing a detached run records the result, then removes the
// container, then the volume; killed in between, it leaves the volume (the
// container already gone). A host that watched the run removes what is left
// before it resolves.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, deleteState, readState } from 'light-runner';
import { BUSYBOX, LABEL, STATE_DIR, docker, dockerOk, fakeId, sleep, volumeExists, writeStateFile } from './helpers.mjs';

async function until(what, fn, ms = 60_000) {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

/** Rewrites a state file as another host would (atomically). */
function editState(id, f) {
  const file = path.join(STATE_DIR, `${id}.json`);
  const st = JSON.parse(fs.readFileSync(file, 'utf8'));
  f(st);
  fs.writeFileSync(`${file}.edit.tmp`, JSON.stringify(st, null, 2));
  fs.renameSync(`${file}.edit.tmp`, file);
}

test('a finalizer killed after removing the container but not the volume: a watching host removes the volume', async () => {
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'sleep 2', detached: true });
  const { id } = ex;
  // A live process of this machine "holds" the finalization claim.
  const holder = spawn('sleep', ['120'], { stdio: 'ignore' });
  try {
    await until('started', () => readState(id)?.phase === 'started');
    editState(id, (st) => {
      st.finalizing = { hostname: os.hostname(), pid: holder.pid, heartbeat: Date.now() };
    });
    await until('exited', () => {
      try {
        return docker('container', 'inspect', '-f', '{{.State.Status}}', id) === 'exited';
      } catch {
        return false;
      }
    });
    await sleep(1500);
    assert.equal(readState(id).status, 'running', 'the claim holder keeps this host from finalizing');
    // The holder has recorded the result and removed the container (here
    // in the other order, so this host cannot tidy up first), and dies
    // before it removes the volume.
    docker('rm', id);
    assert.equal(volumeExists(id), true, 'the volume is left');
    editState(id, (st) => {
      delete st.finalizing;
      st.status = 'exited';
      st.exitCode = 0;
      st.finishedAt = new Date().toISOString();
      st.durationMs = 2000;
    });
    holder.kill('SIGKILL');
    const r = await ex.result;
    assert.equal(r.success, true);
    assert.equal(volumeExists(id), false, 'the watcher removed the volume before it resolved');
  } finally {
    holder.kill('SIGKILL');
    dockerOk('rm', '-f', id);
    dockerOk('volume', 'rm', '-f', id);
    deleteState(id);
  }
});

test('attach() to a run whose finalizer died after removing the container, not the volume: the attaching host removes the volume', async () => {
  // Nobody watched the run when its finalizer died: the state is terminal,
  // the container gone, the volume left (found by the reliability suite's
  // launcher kills: 1 of 120).
  const id = fakeId();
  docker('volume', 'create', '--label', `${LABEL}=${id}`, id);
  try {
    writeStateFile(STATE_DIR, {
      id, container: id, volume: id, image: BUSYBOX, workdir: '/app', command: 'true', timeout: 0,
      extract: [], startedAt: new Date(Date.now() - 5000).toISOString(), status: 'exited', exitCode: 0,
      finishedAt: new Date(Date.now() - 1000).toISOString(), durationMs: 4000, detached: true, phase: 'started',
    });
    assert.equal(volumeExists(id), true, 'the volume is left');
    const r = await DockerRunner.attach(id).result;
    assert.equal(r.exitCode, 0);
    assert.equal(volumeExists(id), false, 'the attaching host removed the volume before it resolved');
  } finally {
    dockerOk('volume', 'rm', '-f', id);
    deleteState(id);
  }
});

test('attach() to a finished run whose volume stays in use past the 5 s bound: the removal goes on after the result is given', async () => {
  // The bound on the sweep ends the wait for the result, not the removal:
  // a volume the daemon refuses for longer (here, mounted by an unrelated
  // container for 8 s) is still removed once it is free.
  const id = fakeId();
  const holder = `${id}-holder`;
  docker('volume', 'create', '--label', `${LABEL}=${id}`, id);
  try {
    docker('run', '-d', '--name', holder, '-v', `${id}:/held`, BUSYBOX, 'sleep', '600');
    writeStateFile(STATE_DIR, {
      id, container: id, volume: id, image: BUSYBOX, workdir: '/app', command: 'true', timeout: 0,
      extract: [], startedAt: new Date(Date.now() - 5000).toISOString(), status: 'exited', exitCode: 0,
      finishedAt: new Date(Date.now() - 1000).toISOString(), durationMs: 4000, detached: true, phase: 'started',
    });
    const attached = Date.now();
    const r = await DockerRunner.attach(id).result;
    assert.equal(r.exitCode, 0);
    assert.equal(volumeExists(id), true, 'still in use when the result is given');
    await sleep(Math.max(0, 8000 - (Date.now() - attached)));
    docker('rm', '-f', holder);
    await until('the volume removed', () => !volumeExists(id), 30_000);
  } finally {
    dockerOk('rm', '-f', holder);
    dockerOk('volume', 'rm', '-f', id);
    deleteState(id);
  }
});
