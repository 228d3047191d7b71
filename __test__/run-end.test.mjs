// How a run ends, told apart: the memory cap (`oomKilled`), a kill from
// outside (an exit code like any other), and a container removed from
// outside while it runs (`CONTAINER_LOST`, state `lost: 'removed'`), for
// attached and detached runs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DockerRunner, LightRunnerError, deleteState, readState } from 'light-runner';
import { BUSYBOX, assertGone, docker, dockerOk, sleep, volumeExists } from './helpers.mjs';

// Doubles a shell string until the memory cap kills the shell.
const EAT_MEMORY = 'echo started; x=a; while true; do x="$x$x"; done';

async function until(what, fn, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

function running(id) {
  try {
    return docker('container', 'inspect', '-f', '{{.State.Running}}', id) === 'true';
  } catch {
    return false;
  }
}

/** An attached run that has printed `started`. */
async function startedRun(runner, request) {
  let started = false;
  const ex = runner.run({
    image: BUSYBOX,
    ...request,
    onLog: (l) => {
      if (l === 'started') started = true;
    },
  });
  await until(`${ex.id} started`, () => started);
  return ex;
}

function cleanup(id) {
  dockerOk('rm', '-f', id);
  dockerOk('volume', 'rm', '-f', id);
  deleteState(id);
}

function assertLost(e, id, why) {
  assert.ok(e instanceof LightRunnerError, String(e));
  assert.equal(e.code, 'CONTAINER_LOST');
  assert.equal(e.containerId, id);
  assert.equal(e.dockerOp, 'wait');
  assert.match(e.message, why);
  return true;
}

describe('the memory cap: oomKilled', () => {
  test('attached: exit 137 with oomKilled, in the result and the state file', async () => {
    const ex = new DockerRunner({ memory: '16m' }).run({ image: BUSYBOX, command: EAT_MEMORY });
    try {
      const r = await ex.result;
      assert.equal(r.exitCode, 137, JSON.stringify(r));
      assert.equal(r.oomKilled, true);
      assert.equal(r.success, false);
      assert.equal(r.cancelled, false);
      assert.equal(r.timedOut, false);
      const st = readState(ex.id);
      assert.equal(st.status, 'exited');
      assert.equal(st.oomKilled, true);
      assert.equal(st.lost, undefined);
      assertGone(ex.id);
    } finally {
      cleanup(ex.id);
    }
  });

  test('detached: the finalizer records oomKilled; a later attach reports it', async () => {
    const ex = new DockerRunner({ memory: '16m' }).run({ image: BUSYBOX, command: EAT_MEMORY, detached: true });
    try {
      const r = await ex.result;
      assert.equal(r.exitCode, 137, JSON.stringify(r));
      assert.equal(r.oomKilled, true);
      assert.equal(r.success, false);
      const st = readState(ex.id);
      assert.equal(st.status, 'exited');
      assert.equal(st.oomKilled, true);
      const again = await DockerRunner.attach(ex.id).result;
      assert.equal(again.oomKilled, true);
      assert.equal(again.exitCode, 137);
      assertGone(ex.id);
    } finally {
      cleanup(ex.id);
    }
  });

  test('a run that stays under the cap is not oomKilled', async () => {
    const ex = new DockerRunner({ memory: '16m' }).run({ image: BUSYBOX, command: 'exit 3' });
    try {
      const r = await ex.result;
      assert.equal(r.exitCode, 3);
      assert.equal(r.oomKilled, false);
      assert.equal(readState(ex.id).oomKilled, undefined);
    } finally {
      cleanup(ex.id);
    }
  });
});

describe('killed from outside: an exit code like any other', () => {
  test('docker kill of an attached run: exit 137, not oomKilled, not cancelled', async () => {
    const ex = await startedRun(new DockerRunner(), { command: 'echo started; sleep 60' });
    try {
      docker('kill', ex.id);
      const r = await ex.result;
      assert.equal(r.exitCode, 137);
      assert.equal(r.oomKilled, false);
      assert.equal(r.cancelled, false);
      assert.equal(r.timedOut, false);
      assert.equal(readState(ex.id).status, 'exited');
      assertGone(ex.id);
    } finally {
      cleanup(ex.id);
    }
  });
});

describe('removed from outside while running: CONTAINER_LOST', () => {
  test('attached: result rejects CONTAINER_LOST, state failed with lost "removed", volume removed', async () => {
    const ex = await startedRun(new DockerRunner(), { command: 'echo started; sleep 60' });
    try {
      docker('rm', '-f', ex.id);
      await assert.rejects(ex.result, (e) => assertLost(e, ex.id, /removed while the run was running/));
      const st = readState(ex.id);
      assert.equal(st.status, 'failed');
      assert.equal(st.lost, 'removed');
      assert.match(st.error, /removed while the run was running/);
      assert.equal(st.exitCode, -1);
      assert.equal(typeof st.durationMs, 'number');
      assert.equal(volumeExists(ex.id), false);
      assertGone(ex.id);
    } finally {
      cleanup(ex.id);
    }
  });

  test('detached: the launcher and a later attach both reject CONTAINER_LOST', async () => {
    const ex = new DockerRunner().run({ image: BUSYBOX, command: 'sleep 60', detached: true });
    try {
      await until(`${ex.id} running`, () => running(ex.id));
      docker('rm', '-f', ex.id);
      let first;
      await assert.rejects(ex.result, (e) => {
        first = e;
        return assertLost(e, ex.id, /removed while the run was running/);
      });
      const st = readState(ex.id);
      assert.equal(st.status, 'failed');
      assert.equal(st.lost, 'removed');
      await assert.rejects(DockerRunner.attach(ex.id).result, (e) => {
        assertLost(e, ex.id, /removed/);
        assert.equal(e.message, first.message);
        return true;
      });
      await until('volume removed', () => !volumeExists(ex.id));
      assertGone(ex.id);
    } finally {
      cleanup(ex.id);
    }
  });
});
