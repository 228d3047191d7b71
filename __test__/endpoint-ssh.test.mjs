// DOCKER_HOST=ssh://user@host:port works as with the docker CLI: the system
// ssh runs `docker system dial-stdio` on the remote host (SPEC sections 1
// and 14). The remote host is a private sshd on 127.0.0.1
// (scripts/start-sshd.sh: a throwaway host key, client key and known_hosts,
// key auth, sshd's default MaxStartups 10 and MaxSessions 10) whose user
// reaches the local daemon; the client's options come from
// LIGHT_RUNNER_SSH_ARGS='-F <the script's ssh_config>' (ssh finds ~ from the
// passwd entry, so HOME cannot redirect ~/.ssh). Each host is a child
// process (fixtures/endpoint-host.mjs) with that environment.
//
// Without sshd (and no way to start it) these tests skip, except under
// CI=true, where they fail.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  BUSYBOX, ROOT, child, containerExists, containerState, scopeOf, sleep, waitFor,
} from './helpers.mjs';

const SSHD_DIR = process.env.LIGHT_RUNNER_SSHD_DIR ?? '/tmp/light-runner-sshd';
const PORT = process.env.LIGHT_RUNNER_SSHD_PORT ?? '22022';
const URL = `ssh://root@127.0.0.1:${PORT}`;
const SSH_ARGS = `-F ${path.join(SSHD_DIR, 'ssh_config')}`;
const SCRIPT = path.join(ROOT, 'scripts', 'start-sshd.sh');

let skip = false;
// Whether this file started sshd (then it stops it when done); CI starts
// it beforehand (.ci/run) and it is left as it was.
let startedHere = false;

function sshdRunning() {
  try {
    process.kill(Number(fs.readFileSync(path.join(SSHD_DIR, 'sshd.pid'), 'utf8')), 0);
    return true;
  } catch {
    return false;
  }
}

function sshd(...args) {
  return spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8', env: process.env });
}

before(() => {
  startedHere = !sshdRunning();
  const r = sshd();
  if (r.status === 0) return;
  const why = `no sshd for the ssh:// tests (scripts/start-sshd.sh: ${(r.stderr || r.stdout).trim()})`;
  if (process.env.CI === 'true') throw new Error(why);
  skip = why;
});

after(() => {
  if (startedHere && !skip) sshd('stop');
});

/** Lines sshd logged for accepted connections so far. */
function accepted() {
  try {
    return fs.readFileSync(path.join(SSHD_DIR, 'sshd.log'), 'utf8').split('\n').filter((l) => l.startsWith('Accepted publickey')).length;
  } catch {
    return 0;
  }
}

/** A host child reaching the daemon over ssh. */
function sshHost(t, env = {}) {
  return child('endpoint-host', {}, {
    env: { DOCKER_HOST: URL, LIGHT_RUNNER_SSH_ARGS: SSH_ARGS, ...env },
    unsetEnv: ['DOCKER_CONTEXT', 'DOCKER_CONFIG', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'],
  });
}

function line(h, event, key, timeout = 60_000) {
  return waitFor(() => h.lines.find((l) => l.event === event && l.key === key), { timeout, what: `${event} of ${key}; stderr: ${h.stderr}` });
}

/** Starts `request` in host `h` as `key`; resolves with its id (tracked by the scope). */
async function start(t, h, key, request) {
  h.send(JSON.stringify({ op: 'run', key, request }));
  const { id } = await line(h, 'id', key);
  scopeOf(t).track(id);
  return id;
}

/** ssh processes of host `pid`: its sessions (children) and its masters (by their control path). */
function sshProcessesOf(pid) {
  const out = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' });
  const pids = [];
  for (const l of out.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l);
    if (!m || !/^ssh /.test(m[3])) continue;
    if (Number(m[2]) === pid || m[3].includes(`light-runner-ssh-${pid}-`)) pids.push(Number(m[1]));
  }
  return pids;
}

describe('ssh:// endpoints', () => {
  test('a job seeds, logs and extracts over ssh; another is cancelled', { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const scope = scopeOf(t);
    const dir = scope.tmp('lr-ssh-seed-');
    fs.writeFileSync(path.join(dir, 'in.txt'), 'seeded over ssh\n');
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'a.txt'), 'nested\n');
    const out = scope.tmp('lr-ssh-out-');
    const before = accepted();
    const h = sshHost(t);
    await h.event('ready');
    await start(t, h, 'job', {
      image: BUSYBOX,
      dir,
      command: 'cat in.txt sub/a.txt; cat; echo; echo to-stderr >&2; mkdir -p result; cp in.txt result/copy.txt',
      input: { hello: 'over ssh' },
      extract: [{ from: 'result', to: out }],
    });
    await start(t, h, 'victim', { image: BUSYBOX, command: 'echo started; sleep 300', onLogMarker: 'started' });
    await line(h, 'log', 'victim');
    h.send(JSON.stringify({ op: 'cancel', key: 'victim' }));

    const job = await line(h, 'result', 'job');
    assert.equal(job.error, undefined, JSON.stringify(job.error));
    assert.equal(job.result.success, true);
    // stdout in order; the stderr line anywhere (the daemon copies the two
    // streams in parallel).
    assert.deepEqual(job.lines.filter((l) => l !== 'to-stderr'), ['seeded over ssh', 'nested', '{"hello":"over ssh"}']);
    assert.ok(job.lines.includes('to-stderr'), JSON.stringify(job.lines));
    assert.equal(job.result.extracted[0].status, 'ok');
    assert.equal(fs.readFileSync(path.join(out, 'copy.txt'), 'utf8'), 'seeded over ssh\n');

    const victim = await line(h, 'result', 'victim');
    assert.equal(victim.error, undefined, JSON.stringify(victim.error));
    assert.equal(victim.result.cancelled, true);
    assert.equal(victim.result.success, false);
    assert.ok(accepted() > before, 'the host went through sshd');
    h.send(JSON.stringify({ op: 'exit' }));
    await h.exited;
  });

  test('20 concurrent runs over ssh all succeed (sshd keeps MaxStartups 10, MaxSessions 10)', { timeout: 300_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const scope = scopeOf(t);
    const dir = scope.tmp('lr-ssh-seed-');
    fs.writeFileSync(path.join(dir, 'in.txt'), 'x\n');
    const before = accepted();
    const h = sshHost(t);
    await h.event('ready');
    const t0 = Date.now();
    const outs = [];
    for (let i = 0; i < 20; i++) {
      outs.push(scope.tmp('lr-ssh-out-'));
      h.send(JSON.stringify({
        op: 'run',
        key: `r${i}`,
        request: {
          image: BUSYBOX,
          dir,
          command: `echo "run ${i} $(cat in.txt)"; sleep 2; echo ${i} > n.txt`,
          extract: [{ from: 'n.txt', to: outs[i] }],
          onLogMarker: `run ${i} x`,
        },
      }));
    }
    const results = [];
    for (let i = 0; i < 20; i++) {
      const r = await line(h, 'result', `r${i}`, 240_000);
      scope.track(r.id);
      results.push(r);
    }
    const ms = Date.now() - t0;
    const failed = results.filter((r) => r.error || !r.result.success);
    assert.deepEqual(failed.map((r) => `${r.key}: ${r.error?.message ?? JSON.stringify(r.result)}`), []);
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(results[i].lines, [`run ${i} x`]);
      assert.equal(fs.readFileSync(path.join(outs[i], 'n.txt'), 'utf8'), `${i}\n`);
    }
    const connections = accepted() - before;
    t.diagnostic(`20 runs over ssh in ${ms} ms through ${connections} ssh connections`);
    assert.ok(connections >= 1 && connections <= 12, `ssh connections opened: ${connections}`);
    h.send(JSON.stringify({ op: 'exit' }));
    await h.exited;
  });

  test('sshd gone mid-run past the grace: CONTAINER_LOST (daemon-unreachable); removed once it is back', { timeout: 180_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const h = sshHost(t, { LIGHT_RUNNER_DAEMON_GRACE_MS: '3000' });
    await h.event('ready');
    const id = await start(t, h, 'lost', { image: BUSYBOX, command: 'echo started; sleep 300', onLogMarker: 'started' });
    await line(h, 'log', 'lost');
    assert.equal(containerState(id)?.Running, true);
    let restarted = false;
    scopeOf(t).defer(() => { if (!restarted) sshd(); });
    const t0 = Date.now();
    const down = sshd('stop');
    assert.equal(down.status, 0, down.stderr);
    const r = await line(h, 'result', 'lost', 120_000);
    const ms = Date.now() - t0;
    assert.equal(r.error?.code, 'CONTAINER_LOST', JSON.stringify(r));
    assert.match(r.error.message, /could not be reached for 3 s/);
    assert.equal(r.error.dockerOp, 'wait');
    assert.ok(ms >= 3000 && ms < 60_000, `lost after ${ms} ms`);
    assert.equal(containerState(id)?.Running, true, 'the daemon itself never stopped the container');

    const up = sshd();
    restarted = true;
    assert.equal(up.status, 0, up.stderr);
    // The host retries the removal in the background; once it exits its
    // watchdog removes the run too (over ssh as well).
    h.send(JSON.stringify({ op: 'exit' }));
    await h.exited;
    await waitFor(() => !containerExists(id), { timeout: 60_000, what: `${id} removed once sshd is back` });
  });

  test('the ssh connections of the host killed mid-run, sshd still up: the run reconnects and ends by itself', { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const h = sshHost(t, { LIGHT_RUNNER_DAEMON_GRACE_MS: '30000' });
    await h.event('ready');
    await start(t, h, 'blip', {
      image: BUSYBOX,
      command: 'echo started; sleep 4; echo done; exit 3',
      onLogMarker: 'started',
    });
    await line(h, 'log', 'blip');
    const pids = sshProcessesOf(h.pid);
    assert.ok(pids.length >= 2, `ssh processes of the host: ${pids}`);
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch { /* gone */ }
    }
    const r = await line(h, 'result', 'blip', 60_000);
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.result.exitCode, 3, JSON.stringify(r.result));
    h.send(JSON.stringify({ op: 'exit' }));
    await h.exited;
  });

  test('unreachable ssh endpoints: DOCKER_UNREACHABLE naming the endpoint and what ssh said', { timeout: 60_000 }, async (t) => {
    if (skip) return t.skip(skip);
    for (const [url, reason] of [
      ['ssh://root@127.0.0.1:1', /Connection refused/],
      [`ssh://nobody-here@127.0.0.1:${PORT}`, /Permission denied/],
    ]) {
      const h = child('endpoint-host', {}, { env: { DOCKER_HOST: url, LIGHT_RUNNER_SSH_ARGS: SSH_ARGS } });
      await h.event('ready');
      h.send(JSON.stringify({ op: 'available' }));
      assert.equal((await h.event('available')).available, false);
      const id = await start(t, h, 'x', { image: BUSYBOX, command: 'true' });
      const r = await line(h, 'result', 'x');
      assert.equal(r.error?.code, 'DOCKER_UNREACHABLE', JSON.stringify(r));
      assert.ok(r.error.message.includes(`${url} (from DOCKER_HOST)`), r.error.message);
      assert.match(r.error.message, reason);
      assert.equal(containerExists(id), false);
      h.send(JSON.stringify({ op: 'exit' }));
      await h.exited;
    }
    await sleep(0);
  });
});
