// The Docker daemon stops or dies while runs are in flight. Without
// live-restore the daemon stops the containers with it: attached and
// detached runs reject with CONTAINER_LOST (`lost: 'daemon-stopped'`), even
// when the job exited 0 on the daemon's SIGTERM; a daemon that stays away
// past LIGHT_RUNNER_DAEMON_GRACE_MS is `daemon-unreachable`, and the run's
// container and volume are removed once it is back. With live-restore the
// runs go on and end normally. Every scenario runs on a private dockerd of
// this file (the shared one is never touched) and leaves nothing in it. The
// private daemon gets a bridge of its own: `--bridge=none` would make it
// delete the host's docker0, which the shared daemon uses.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DockerRunner, LightRunnerError, deleteState, readState } from 'light-runner';
import { BUSYBOX, rmrf, sleep, tmpdir } from './helpers.mjs';

const ROOT = tmpdir('lr-dd-');
const SOCK = `unix://${ROOT}/d.sock`;
const PIDFILE = path.join(ROOT, 'd.pid');
// An interface name (at most 15 bytes) and a /24 no route uses yet.
const BRIDGE = `lrdd${process.pid.toString(16).slice(-6)}`;
const prevHost = process.env.DOCKER_HOST;
const prevGrace = process.env.LIGHT_RUNNER_DAEMON_GRACE_MS;
let daemon = null;

/** docker CLI against the private daemon. */
function pd(...args) {
  return execFileSync('docker', ['-H', SOCK, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function pdOk(...args) {
  try {
    pd(...args);
    return true;
  } catch {
    return false;
  }
}

async function until(what, fn, ms = 60_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

function freeSubnet() {
  const routes = execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
  for (let i = 0; i < 200; i++) {
    const net = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
    if (!routes.includes(`${net}.`)) return net;
  }
  throw new Error('no free 10.x /24 for the private bridge');
}

function makeBridge() {
  execFileSync('ip', ['link', 'add', 'name', BRIDGE, 'type', 'bridge']);
  execFileSync('ip', ['addr', 'add', `${freeSubnet()}.1/24`, 'dev', BRIDGE]);
  execFileSync('ip', ['link', 'set', BRIDGE, 'up']);
}

async function startDaemon({ liveRestore = false } = {}) {
  rmrf(PIDFILE);
  const log = fs.openSync(path.join(ROOT, 'dockerd.log'), 'a');
  const args = ['--data-root', path.join(ROOT, 'root'), '--exec-root', path.join(ROOT, 'exec'),
    '--pidfile', PIDFILE, '-H', SOCK, `--bridge=${BRIDGE}`, '--iptables=false'];
  if (liveRestore) args.push('--live-restore');
  daemon = spawn('dockerd', args, { detached: true, stdio: ['ignore', log, log] });
  daemon.unref();
  fs.closeSync(log);
  await until('private dockerd up', () => pdOk('info'));
  assert.equal(pd('info', '--format', '{{.LiveRestoreEnabled}}'), String(liveRestore));
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops the private daemon with `signal` and waits until it is gone, and
 * its containerd too (a dockerd started while the old containerd is still
 * exiting fails to start).
 */
async function stopDaemon(signal = 'SIGTERM') {
  const d = daemon;
  daemon = null;
  if (!d || d.exitCode !== null) return;
  let containerd = 0;
  try {
    containerd = Number(fs.readFileSync(path.join(ROOT, 'exec', 'containerd', 'containerd.pid'), 'utf8'));
  } catch {}
  d.kill(signal);
  // Polled: the unref'd child's exit event alone would not keep this process up.
  await until('dockerd gone', () => d.exitCode !== null || d.signalCode !== null || !alive(d.pid), 60_000);
  if (containerd > 0) await until('containerd gone', () => !alive(containerd), 30_000);
}

function assertLost(settled, id, why) {
  const e = settled.error;
  assert.ok(e instanceof LightRunnerError, `expected a rejection, got ${JSON.stringify(settled)}`);
  assert.equal(e.code, 'CONTAINER_LOST', e.message);
  assert.equal(e.containerId, id);
  const st = readState(id);
  assert.equal(st.status, 'failed', JSON.stringify(st));
  assert.equal(st.lost, why, JSON.stringify(st));
  assert.equal(st.error, e.message);
  return true;
}

async function assertGoneHere(id) {
  await until(`${id} removed from the private daemon`, () => !pdOk('container', 'inspect', id) && !pdOk('volume', 'inspect', id));
}

/** An attached run that printed `started`, and its settled outcome. */
async function attachedStarted(request) {
  let started = false;
  const ex = new DockerRunner().run({
    image: BUSYBOX,
    ...request,
    onLog: (l) => {
      if (l === 'started') started = true;
    },
  });
  const settled = ex.result.then((value) => ({ value }), (error) => ({ error }));
  await until(`${ex.id} started`, () => started, 30_000);
  return { ex, settled };
}

async function detachedRunning(request) {
  const ex = new DockerRunner().run({ image: BUSYBOX, ...request, detached: true });
  const settled = ex.result.then((value) => ({ value }), (error) => ({ error }));
  await until(`${ex.id} running`, () => {
    try {
      return pd('container', 'inspect', '-f', '{{.State.Running}}', ex.id) === 'true';
    } catch {
      return false;
    }
  }, 30_000);
  return { ex, settled };
}

// A job that exits 0 on SIGTERM: the daemon's stop looks like a success.
const GRACEFUL = "trap 'exit 0' TERM; echo started; sleep 120 & wait";

describe('the Docker daemon stops or dies under running runs (private dockerd)', () => {
  before(async () => {
    makeBridge();
    process.env.DOCKER_HOST = SOCK;
    await startDaemon();
    execFileSync('sh', ['-c', `docker save ${BUSYBOX} | docker -H ${SOCK} load`], {
      env: { ...process.env, DOCKER_HOST: prevHost ?? '' },
      stdio: 'ignore',
    });
  });

  after(async () => {
    if (!daemon) await startDaemon().catch(() => {});
    // Its bridge would outlive the daemon's data root.
    pdOk('network', 'rm', 'light-runner-isolated');
    await stopDaemon();
    if (prevHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = prevHost;
    if (prevGrace === undefined) delete process.env.LIGHT_RUNNER_DAEMON_GRACE_MS;
    else process.env.LIGHT_RUNNER_DAEMON_GRACE_MS = prevGrace;
    // A daemon with live-restore leaves its mounts behind when it stops.
    const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n')
      .map((l) => l.split(' ')[1]).filter((m) => m && m.startsWith(ROOT));
    for (const m of mounts.sort().reverse()) {
      try {
        execFileSync('umount', [m], { stdio: 'ignore' });
      } catch {}
    }
    rmrf(ROOT);
    try {
      execFileSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
    } catch {}
  });

  test('stopped without live-restore: attached and detached runs reject CONTAINER_LOST daemon-stopped, even after exit 0 on SIGTERM', async () => {
    const a = await attachedStarted({ command: GRACEFUL });
    const d = await detachedRunning({ command: "trap 'exit 0' TERM; sleep 120 & wait" });
    try {
      await stopDaemon('SIGTERM');
      const sa = await a.settled;
      assertLost(sa, a.ex.id, 'daemon-stopped');
      assert.match(sa.error.message, /daemon stopped while the run was running/);
      await startDaemon();
      const dd = await d.settled;
      assertLost(dd, d.ex.id, 'daemon-stopped');
      // Another process attaching later reports the same outcome.
      await assert.rejects(DockerRunner.attach(d.ex.id).result, (e) => e.code === 'CONTAINER_LOST' && e.message === dd.error.message);
      await assertGoneHere(a.ex.id);
      await assertGoneHere(d.ex.id);
    } finally {
      deleteState(a.ex.id);
      deleteState(d.ex.id);
    }
  });

  test('SIGKILLed without live-restore and back: the runs reject CONTAINER_LOST daemon-stopped', async () => {
    if (!daemon) await startDaemon();
    const a = await attachedStarted({ command: 'echo started; sleep 120' });
    const d = await detachedRunning({ command: 'sleep 120' });
    try {
      await stopDaemon('SIGKILL');
      await sleep(1000);
      await startDaemon();
      assertLost(await a.settled, a.ex.id, 'daemon-stopped');
      assertLost(await d.settled, d.ex.id, 'daemon-stopped');
      await assertGoneHere(a.ex.id);
      await assertGoneHere(d.ex.id);
    } finally {
      deleteState(a.ex.id);
      deleteState(d.ex.id);
    }
  });

  test('away longer than LIGHT_RUNNER_DAEMON_GRACE_MS: daemon-unreachable; removed once the daemon is back', async () => {
    if (!daemon) await startDaemon();
    // Read when the run starts waiting.
    process.env.LIGHT_RUNNER_DAEMON_GRACE_MS = '1500';
    const a = await attachedStarted({ command: 'echo started; sleep 120' });
    try {
      await stopDaemon('SIGKILL');
      const sa = await a.settled;
      assertLost(sa, a.ex.id, 'daemon-unreachable');
      assert.match(sa.error.message, /could not be reached for 1 s/);
      await startDaemon();
      await assertGoneHere(a.ex.id);
    } finally {
      if (prevGrace === undefined) delete process.env.LIGHT_RUNNER_DAEMON_GRACE_MS;
      else process.env.LIGHT_RUNNER_DAEMON_GRACE_MS = prevGrace;
      deleteState(a.ex.id);
    }
  });

  test('restarted with live-restore: the runs go on and end normally, detached extract included', async () => {
    await stopDaemon();
    await startDaemon({ liveRestore: true });
    const out = tmpdir('lr-dd-out-');
    const a = await attachedStarted({ command: 'echo started; sleep 6; exit 4' });
    const d = await detachedRunning({
      command: 'sleep 6; echo kept > /app/r.txt',
      extract: [{ from: 'r.txt', to: out }],
    });
    try {
      await stopDaemon('SIGTERM');
      await startDaemon({ liveRestore: true });
      const ra = await a.settled;
      assert.equal(ra.error, undefined, String(ra.error));
      assert.equal(ra.value.exitCode, 4);
      assert.equal(readState(a.ex.id).status, 'exited');
      const rd = await d.settled;
      assert.equal(rd.error, undefined, String(rd.error));
      assert.equal(rd.value.success, true, JSON.stringify(rd.value));
      assert.equal(rd.value.extracted[0].status, 'ok');
      assert.equal(fs.readFileSync(path.join(out, 'r.txt'), 'utf8'), 'kept\n');
      assert.equal(readState(d.ex.id).lost, undefined);
      await assertGoneHere(a.ex.id);
      await assertGoneHere(d.ex.id);
    } finally {
      deleteState(a.ex.id);
      deleteState(d.ex.id);
      rmrf(out);
    }
  });
});
