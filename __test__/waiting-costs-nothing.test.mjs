// Waiting on runs costs the daemon nothing per run: a host that waits on
// many running runs (detached ones, and attached runs of another process)
// keeps one events stream open instead of polling each run; an exit that
// happens while that stream reconnects is still collected; a cancel that
// another process records in the state file is seen at once, through a
// filesystem notification rather than a poll.
//
// Requests are counted by a small proxy on a unix socket in front of the
// daemon (DOCKER_HOST=unix://<proxy>; the package reads it at call time).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DockerRunner, readState, deleteState } from 'light-runner';
import {
  docker, dockerOk, containerExists, volumeExists, tmpdir, rmrf, sleep, waitFor, BUSYBOX, STATE_DIR, FIXTURES,
} from './helpers.mjs';

const DAEMON = (process.env.DOCKER_HOST ?? '').startsWith('unix://')
  ? process.env.DOCKER_HOST.slice('unix://'.length)
  : '/var/run/docker.sock';

/** Starts fixtures/docker-proxy.mjs (a counting proxy in its own process). */
async function startProxy() {
  const dir = tmpdir('lr-proxy-');
  const sock = path.join(dir, 'docker.sock');
  const child = spawn(process.execPath, [path.join(FIXTURES, 'docker-proxy.mjs'), JSON.stringify({ listen: sock, upstream: DAEMON })], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const requests = [];
  const done = [];
  let ready = false;
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (msg.event === 'ready') ready = true;
      if (msg.event === 'request') requests.push(msg);
      if (msg.event === 'done') done.push(msg.command);
    }
  });
  await waitFor(() => ready, { timeout: 10_000 });
  const command = async (c) => {
    const n = done.length;
    child.stdin.write(`${c}\n`);
    await waitFor(() => done.length > n, { timeout: 10_000, every: 10 });
  };
  return {
    sock,
    requests,
    count: (since, until = Date.now()) => requests.filter((r) => r.t >= since && r.t <= until),
    block: () => command('block'),
    unblock: () => command('unblock'),
    /** Cuts the open events streams (as a daemon restart or a network blip would). */
    cutEvents: () => command('cut'),
    async close() {
      child.stdin.end();
      child.kill('SIGKILL');
      rmrf(dir);
    },
  };
}

/**
 * Points this process at the proxy (the package reads DOCKER_HOST when a
 * run's driver connects, just after the call); returns the restore.
 */
function through(proxy) {
  const prev = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = `unix://${proxy.sock}`;
  return () => {
    if (prev === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = prev;
  };
}

/** Starts fixtures/launch-many.mjs; resolves with { ids, child, results }. */
async function launch(cfg) {
  const child = spawn(process.execPath, [path.join(FIXTURES, 'launch-many.mjs'), JSON.stringify(cfg)], {
    env: { ...process.env, LIGHT_RUNNER_STATE_DIR: STATE_DIR, DOCKER_HOST: `unix://${DAEMON}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const results = new Map();
  let ids = null;
  let buf = '';
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (msg.event === 'ids') ids = msg;
      if (msg.event === 'result') results.set(msg.id, msg.result);
      if (msg.event === 'error') throw new Error(msg.message);
    }
  });
  await waitFor(() => ids, { timeout: 20_000 }).catch((e) => { throw new Error(`${e.message}; stderr: ${stderr}`); });
  return { ...ids, child, results };
}

function running(id) {
  try {
    return docker('container', 'inspect', '-f', '{{.State.Running}}', id) === 'true';
  } catch {
    return false;
  }
}

/** Writes a state file the way another process does: temp file, then rename. */
function editState(id, change) {
  const file = path.join(STATE_DIR, `${id}.json`);
  const st = JSON.parse(fs.readFileSync(file, 'utf8'));
  change(st);
  const tmp = path.join(STATE_DIR, `.${id}.json.test.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(st, null, 2), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

function cleanup(ids) {
  for (const id of ids) {
    dockerOk('rm', '-f', '-v', id);
    dockerOk('volume', 'rm', '-f', id);
    deleteState(id);
  }
}

test('a host waiting on many running runs makes no daemon request per run', async (t) => {
  const proxy = await startProxy();
  const launcher = await launch({ detached: 8, attached: 2, command: 'sleep 600' });
  const theirs = [...launcher.detached, ...launcher.attached];
  const mine = [];
  const restore = through(proxy);
  try {
    await waitFor(() => theirs.every(running), { timeout: 90_000, every: 250 });
    // This host: one attached run of its own, and every run of the launcher.
    const runner = new DockerRunner();
    const own = runner.run({ image: BUSYBOX, command: 'sleep 600', network: 'none' });
    mine.push(own.id);
    const handles = theirs.map((id) => DockerRunner.attach(id));
    assert.ok(handles.every(Boolean), 'every run attached');
    await waitFor(() => running(own.id), { timeout: 60_000, every: 250 });
    // Setting up the watches: a ping and an inspect per run, one events
    // stream and one container list. Then nothing happens.
    await sleep(3000);
    const t0 = Date.now();
    await sleep(6000);
    const during = proxy.count(t0);
    // Polling every run every few seconds would be dozens of requests here.
    t.diagnostic(`daemon requests while 11 runs waited 6 s: ${during.length}`);
    assert.ok(during.length <= 2, `${during.length} requests while 11 runs waited 6 s: ${JSON.stringify(during.slice(0, 5))}...`);
    const streams = proxy.requests.filter((r) => /\/events(\?|$)/.test(r.path));
    assert.equal(streams.length, 1, 'one events stream for every run of this host');

    // The runs end (killed from outside): every waiter resolves, each run
    // was finalized once (by this host or by the launcher's host).
    docker('kill', ...theirs, own.id);
    const results = await Promise.all([...handles.map((h) => h.result), own.result]);
    for (const r of results) {
      assert.equal(r.exitCode, 137);
      assert.equal(r.success, false);
    }
    for (const id of launcher.detached) {
      assert.equal(readState(id).status, 'exited');
      // The finalizer (this host or the launcher) removes it right after
      // recording the result.
      await waitFor(() => !containerExists(id) && !volumeExists(id), { timeout: 30_000 }).catch((e) => {
        throw new Error(`${id}: container left ${containerExists(id)}, volume left ${volumeExists(id)}, state ${JSON.stringify(readState(id))}`, { cause: e });
      });
    }
    await waitFor(() => launcher.attached.every((id) => launcher.results.has(id)), { timeout: 30_000 });
    for (const [i, id] of launcher.attached.entries()) {
      assert.deepEqual(results[launcher.detached.length + i], launcher.results.get(id), 'same result as its host');
    }
  } finally {
    restore();
    launcher.child.kill('SIGKILL');
    cleanup([...theirs, ...mine]);
    await proxy.close();
  }
});

test('an exit while the events stream reconnects is still collected', async () => {
  const proxy = await startProxy();
  const launcher = await launch({ detached: 1, command: 'sleep 600' });
  const [id] = launcher.detached;
  const restore = through(proxy);
  try {
    await waitFor(() => running(id), { timeout: 60_000, every: 250 });
    const ex = DockerRunner.attach(id);
    let settled = false;
    ex.result.finally(() => { settled = true; }).catch(() => {});
    await waitFor(() => proxy.requests.some((r) => /\/events(\?|$)/.test(r.path)), { timeout: 20_000 });
    await sleep(500);
    // The stream breaks and cannot come back for a while; the run exits then.
    await proxy.block();
    await proxy.cutEvents();
    const cutAt = Date.now();
    docker('kill', id);
    await sleep(3000);
    await proxy.unblock();
    const r = await Promise.race([
      ex.result,
      sleep(20_000).then(() => { throw new Error('the exit was not collected within 20 s of the stream coming back'); }),
    ]);
    assert.equal(r.exitCode, 137);
    assert.equal(readState(id).status, 'exited');
    await waitFor(() => !containerExists(id) && !volumeExists(id), { timeout: 20_000 });
    const reconnects = proxy.count(cutAt).filter((q) => /\/events(\?|$)/.test(q.path));
    assert.ok(reconnects.length >= 1, 'the stream was opened again');
    assert.ok(settled);
  } finally {
    restore();
    launcher.child.kill('SIGKILL');
    cleanup([id]);
    await proxy.close();
  }
});

test('a cancel another process records in the state file is seen without polling', async () => {
  const launcher = await launch({ detached: 1, command: 'sleep 600' });
  const [id] = launcher.detached;
  try {
    await waitFor(() => running(id), { timeout: 60_000, every: 250 });
    await waitFor(() => readState(id)?.phase === 'started', { timeout: 20_000 });
    const ex = DockerRunner.attach(id);
    await sleep(1000);
    assert.ok(running(id), 'still running before the cancel');
    // Another host cancels: only the state file changes (no Docker event),
    // and this host's slow safety poll is 30 s away.
    const at = Date.now();
    editState(id, (st) => {
      st.cancelled = true;
      st.cancelledAt = new Date(at).toISOString();
      st.killAfter = new Date(at).toISOString();
    });
    const r = await Promise.race([
      ex.result,
      sleep(15_000).then(() => { throw new Error('the recorded cancel was not seen within 15 s'); }),
    ]);
    assert.equal(r.cancelled, true);
    assert.equal(r.success, false);
    assert.equal(readState(id).status, 'cancelled');
    assert.equal(containerExists(id), false);
  } finally {
    launcher.child.kill('SIGKILL');
    cleanup([id]);
  }
});

test('a run another host finalized but did not remove (it exited in between) is removed by a host that watched it', async () => {
  const launcher = await launch({ detached: 1, command: 'sleep 2' });
  const [id] = launcher.detached;
  // A live process of this machine that "holds" the finalization claim.
  const holder = spawn('sleep', ['120'], { stdio: 'ignore' });
  try {
    await waitFor(() => readState(id)?.phase === 'started', { timeout: 60_000, every: 100 });
    editState(id, (st) => {
      st.finalizing = { hostname: os.hostname(), pid: holder.pid, heartbeat: Date.now() };
    });
    const ex = DockerRunner.attach(id);
    await waitFor(() => {
      try {
        return docker('container', 'inspect', '-f', '{{.State.Status}}', id) === 'exited';
      } catch {
        return false;
      }
    }, { timeout: 30_000, every: 200 });
    await sleep(1500);
    assert.ok(containerExists(id), 'the claim holder keeps this host from finalizing');
    // The holder records the result, then dies before removing anything.
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
    assert.equal(r.exitCode, 0);
    await waitFor(() => !containerExists(id) && !volumeExists(id), { timeout: 30_000, every: 250 });
    assert.equal(readState(id).status, 'exited', 'the recorded result is kept');
  } finally {
    holder.kill('SIGKILL');
    launcher.child.kill('SIGKILL');
    cleanup([id]);
  }
});
