// Issue 2, points 9, 12, 14 and 16: what the daemon sees (networks, security
// defaults, leftovers) and an attached run dying with its host.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner, LightRunnerError } from 'light-runner';
import {
  BUSYBOX, FIXTURES, LABEL, assertGone, containerExists, docker, dockerEvents, dockerOk, finish, inspectJson, runNode,
  runToEnd, scopeOf, sleep, startedRun, volumeExists, waitFor,
} from './helpers.mjs';

const NET = 'light-runner-isolated';
const runner = new DockerRunner();

function networksNamed(name) {
  return docker('network', 'ls', '--format', '{{.Name}}').split('\n').filter((n) => n === name);
}

/**
 * Removes the shared bridge once no container uses it (docker itself refuses
 * while one does); other suites may be using it, so wait for it to be idle.
 */
async function removeIsolatedWhenIdle() {
  await waitFor(() => {
    if (!dockerOk('network', 'inspect', NET)) return true;
    const containers = JSON.parse(docker('network', 'inspect', NET))[0].Containers ?? {};
    if (Object.keys(containers).length > 0) return false;
    return dockerOk('network', 'rm', NET);
  }, { timeout: 180_000, every: 500, what: `${NET} idle and removed` });
  assert.equal(dockerOk('network', 'inspect', NET), false, 'network removed before the test');
}

/** A network of this test's own, removed when the test ends (after its runs). */
function ownNetwork(t, prefix) {
  const name = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  docker('network', 'create', name);
  scopeOf(t).defer(() => dockerOk('network', 'rm', name));
  return name;
}

describe('point 9: network', () => {
  // First in this file, and in a child process: this process must not have
  // cached the network before it is removed behind its back.
  test("the default bridge removed behind a runner's back is created again on the next run",
    { timeout: 240_000 }, async (t) => {
      const scope = scopeOf(t);
      const host = spawn(process.execPath, [path.join(FIXTURES, 'network-removed.mjs')], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      scope.defer(() => host.kill('SIGKILL'));
      let out = '';
      let err = '';
      host.stderr.on('data', (d) => { err += d; });
      const exited = new Promise((r) => host.on('exit', (code, signal) => r({ code, signal })));
      const line = (re) => new Promise((resolve, reject) => {
        const check = () => { const m = out.match(re); if (m) resolve(m); };
        host.stdout.on('data', (d) => { out += d; check(); });
        check();
        exited.then(() => reject(new Error(`child exited: ${out} ${err}`)));
      });
      const ready = JSON.parse((await line(/^ready (.*)\n/m))[1]);
      scope.track(ready.id);
      assert.equal(ready.result.success, true, 'first run');
      await removeIsolatedWhenIdle();
      host.stdin.write('go\n');
      const done = JSON.parse((await line(/^(\{.*\})\n/m))[1]);
      scope.track(done.id);
      assert.equal(done.error, undefined, `second run failed: ${JSON.stringify(done.error)}`);
      assert.equal(done.result.success, true);
      assert.equal(networksNamed(NET).length, 1);
      assert.equal(JSON.parse(docker('network', 'inspect', NET))[0].Options['com.docker.network.bridge.enable_icc'], 'false');
      await exited;
      assertGone(ready.id);
      assertGone(done.id);
    });

  test('the default bridge is created on demand, once, with ICC disabled, under concurrent first runs',
    { timeout: 240_000 }, async (t) => {
      const scope = scopeOf(t);
      await removeIsolatedWhenIdle();

      // Five first runs in this process and three in other processes, all at once.
      const exs = [];
      for (let i = 0; i < 5; i++) exs.push(runner.run({ image: BUSYBOX, command: 'ls /sys/class/net' }));
      for (const ex of exs) scope.track(ex.id);
      const children = [];
      for (let i = 0; i < 3; i++) {
        children.push(runNode([path.join(FIXTURES, 'run.mjs'), JSON.stringify({ image: BUSYBOX, command: 'true' })]));
      }
      const results = await Promise.all(exs.map((e) => e.result));
      for (const r of results) assert.equal(r.success, true);
      for (const c of await Promise.all(children)) {
        scope.track(c.stderr.match(/id (light-runner-[0-9a-f]{12})/)?.[1]);
        assert.equal(c.code, 0, c.stderr);
        const out = JSON.parse(c.stdout);
        assert.equal(out.error, undefined, JSON.stringify(out.error));
        assert.equal(out.result.success, true);
      }
      assert.equal(networksNamed(NET).length, 1, `exactly one network named ${NET}`);
      const net = JSON.parse(docker('network', 'inspect', NET))[0];
      assert.equal(net.Driver, 'bridge');
      assert.equal(net.Options['com.docker.network.bridge.enable_icc'], 'false', 'ICC disabled');
      t.diagnostic(`network options: ${JSON.stringify(net.Options)}`);
    });

  /** Whether a client run reaches a server run on `network` (undefined = default). */
  async function reaches(t, network) {
    const server = startedRun(t, runner, {
      image: BUSYBOX, network, command: 'echo started; nc -l -p 8080 -e echo hello-from-server; sleep 30',
    });
    try {
      await server.started;
      const nets = inspectJson(server.ex.id).NetworkSettings.Networks;
      const ip = nets[network ?? NET].IPAddress;
      assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
      const { result, lines } = await runToEnd(t, runner, {
        image: BUSYBOX, network, command: `echo ping | nc -w 3 ${ip} 8080; echo "rc=$?"`, timeout: 60_000,
      });
      assert.equal(result.success, true);
      return lines.includes('hello-from-server');
    } finally {
      await finish(server.ex);
    }
  }

  test('containers on the default bridge cannot reach each other (ICC off)', { timeout: 90_000 }, async (t) => {
    // Control: on an ordinary bridge the same client reaches the same server.
    const name = ownNetwork(t, 'lr-test-icc');
    assert.equal(await reaches(t, name), true, 'control: ICC on an ordinary bridge works');
    assert.equal(await reaches(t, undefined), false, 'a container reached another one on the default bridge');
  });
  test("network: 'none' leaves only lo", async (t) => {
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'ls /sys/class/net', network: 'none' });
    assert.equal(result.success, true);
    assert.deepEqual(lines, ['lo']);
  });

  test('a named network is used as given', async (t) => {
    const name = ownNetwork(t, 'lr-test-net');
    const { ex, started, lines } = startedRun(t, runner, {
      image: BUSYBOX, command: 'echo started; ls /sys/class/net; sleep 30', network: name,
    });
    try {
      await started;
      const info = inspectJson(ex.id);
      assert.equal(info.HostConfig.NetworkMode, name);
      assert.deepEqual(Object.keys(info.NetworkSettings.Networks), [name]);
      const net = JSON.parse(docker('network', 'inspect', name))[0];
      assert.ok(Object.values(net.Containers ?? {}).some((c) => c.Name === ex.id), 'container attached to the named network');
      await waitFor(() => lines.includes('eth0'), { timeout: 5000, what: 'eth0 listed' });
    } finally {
      await finish(ex);
    }
    assertGone(ex.id);
  });
});

const CAPS = ['NET_RAW', 'MKNOD', 'SYS_CHROOT', 'SETPCAP', 'SETFCAP', 'AUDIT_WRITE'];
const norm = (caps) => (caps ?? []).map((c) => c.toUpperCase().replace(/^CAP_/, '')).sort();

/** `docker inspect` of a live run of runner `r` and of its volume; the run is cancelled after. */
async function inspectLive(t, r, request = {}) {
  const { ex, started } = startedRun(t, r, { image: BUSYBOX, command: 'echo started; sleep 60', ...request });
  try {
    await started;
    return { ex, info: inspectJson(ex.id), volume: JSON.parse(docker('volume', 'inspect', ex.id))[0] };
  } finally {
    await finish(ex);
  }
}

describe('point 12: security defaults in docker inspect of a live run', () => {
  test('defaults: CapDrop, no-new-privileges, PidsLimit 100, 512m, 1 cpu, label, isolated network, volume at /app', async (t) => {
    const { ex, info, volume } = await inspectLive(t, new DockerRunner());
    const hc = info.HostConfig;
    assert.deepEqual(norm(hc.CapDrop), [...CAPS].sort());
    assert.ok((hc.SecurityOpt ?? []).some((o) => /^no-new-privileges(?:[:=]true)?$/.test(o)), `SecurityOpt ${hc.SecurityOpt}`);
    assert.equal(hc.PidsLimit, 100);
    assert.equal(hc.Memory, 512 * 1024 * 1024);
    assert.equal(hc.NanoCpus, 1e9);
    assert.equal(hc.Privileged, false);
    assert.equal(info.Name, `/${ex.id}`);
    assert.equal(info.Config.Labels[LABEL], ex.id);
    const netId = JSON.parse(docker('network', 'inspect', NET))[0].Id;
    assert.ok([NET, netId].includes(hc.NetworkMode), `NetworkMode ${hc.NetworkMode} is ${NET}`);
    assert.deepEqual(Object.keys(info.NetworkSettings.Networks), [NET]);
    const mount = info.Mounts.find((m) => m.Destination === '/app');
    assert.ok(mount, 'the volume is mounted at /app');
    assert.equal(mount.Type, 'volume');
    assert.equal(mount.Name, ex.id);
    assert.equal(volume.Name, ex.id);
    assert.equal(volume.Labels?.[LABEL], ex.id, 'the volume carries the label');
    assert.equal(hc.Runtime, 'runc', 'runc: no runtime passed, the daemon default');
    assertGone(ex.id);
  });

  test('memory and cpus options become Memory and NanoCpus; custom workdir', async (t) => {
    const { ex, info } = await inspectLive(t, new DockerRunner({ memory: '256m', cpus: '0.5' }), { workdir: '/work/job' });
    assert.equal(info.HostConfig.Memory, 256 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 5e8);
    assert.ok(info.Mounts.some((m) => m.Destination === '/work/job' && m.Name === ex.id));
    assert.equal(info.HostConfig.PidsLimit, 100);
    assert.deepEqual(norm(info.HostConfig.CapDrop), [...CAPS].sort());
  });

  test('memory suffixes g and k, case-insensitive; fractional cpus', async (t) => {
    const { info } = await inspectLive(t, new DockerRunner({ memory: '1G', cpus: '1.5' }));
    assert.equal(info.HostConfig.Memory, 1024 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 1.5e9);
    const { info: info2 } = await inspectLive(t, new DockerRunner({ memory: '131072k', cpus: '2' }));
    assert.equal(info2.HostConfig.Memory, 128 * 1024 * 1024);
    assert.equal(info2.HostConfig.NanoCpus, 2e9);
  });

  test('noNewPrivileges: false drops only that option', async (t) => {
    const { info } = await inspectLive(t, new DockerRunner({ noNewPrivileges: false }));
    assert.ok(!(info.HostConfig.SecurityOpt ?? []).some((o) => o.startsWith('no-new-privileges')));
    assert.equal(info.HostConfig.PidsLimit, 100);
    assert.deepEqual(norm(info.HostConfig.CapDrop), [...CAPS].sort());
  });

  test('the dropped capabilities are really gone inside the container', async (t) => {
    const { result, lines } = await runToEnd(t, new DockerRunner(), {
      image: BUSYBOX, command: 'grep CapBnd /proc/self/status; mknod /tmp/x c 1 3 && echo mknod-ok || echo mknod-denied',
    });
    assert.equal(result.success, true);
    const bnd = BigInt(`0x${lines.find((l) => l.startsWith('CapBnd')).split(/\s+/)[1]}`);
    const bits = { MKNOD: 27n, NET_RAW: 13n, SYS_CHROOT: 18n, SETPCAP: 8n, SETFCAP: 31n, AUDIT_WRITE: 29n };
    for (const [cap, bit] of Object.entries(bits)) assert.equal((bnd >> bit) & 1n, 0n, `${cap} still in the bounding set`);
    assert.ok(lines.includes('mknod-denied'));
  });
});

describe('point 14: nothing left behind', () => {
  test('after a successful run', async (t) => {
    const { id, result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'echo x > /app/f; cat /app/f' });
    assert.equal(result.success, true);
    assertGone(id);
  });

  test('after a non-zero exit', async (t) => {
    const { id, result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'exit 9' });
    assert.equal(result.exitCode, 9);
    assertGone(id);
  });

  test('after a bad image', async (t) => {
    const ex = runner.run({ image: 'localhost:1/light-runner-nope:latest', command: 'true' });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof LightRunnerError);
    assert.equal(err.code, 'CONTAINER_START_FAILED');
    assertGone(ex.id);
  });

  test('after a seed failure (dir not found): no Docker resource created at all', async (t) => {
    const since = Date.now() - 1000;
    const dir = path.join(scopeOf(t).tmp('lr-test-'), 'does-not-exist');
    const ex = runner.run({ image: BUSYBOX, command: 'true', dir });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof Error);
    assert.match(err.message, new RegExp(`dir path not found: ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assertGone(ex.id);
    assert.deepEqual(dockerEvents(ex.id, since), [], 'no Docker event for the run at all');
  });

  test('after a seed failure (dir is a file): no Docker resource created at all', async (t) => {
    const since = Date.now() - 1000;
    const file = path.join(scopeOf(t).tmp('lr-test-'), 'a-file.txt');
    fs.writeFileSync(file, 'not a dir');
    const ex = runner.run({ image: BUSYBOX, command: 'true', dir: file });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.match(err.message, /dir path is not a directory: /);
    assert.ok(err.message.includes(file));
    assertGone(ex.id);
    assert.deepEqual(dockerEvents(ex.id, since), [], 'no Docker event for the run at all');
  });

  test('after cancel mid-run', async (t) => {
    const { ex, started } = startedRun(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60' });
    try {
      await started;
      ex.cancel();
      assert.equal((await ex.result).cancelled, true);
      assertGone(ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('after cancel before start', async (t) => {
    const ex = runner.run({ image: BUSYBOX, command: 'sleep 60' });
    scopeOf(t).track(ex.id);
    ex.cancel();
    assert.equal((await ex.result).cancelled, true);
    assertGone(ex.id);
    await sleep(1000);
    assertGone(ex.id);
  });

  test('after a timeout', async (t) => {
    const { id, result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'sleep 60', timeout: 1500 });
    assert.equal(result.timedOut, true);
    assertGone(id);
  });

  test('after a daemon-side error: a named network that does not exist', async (t) => {
    const ex = runner.run({ image: BUSYBOX, command: 'true', network: `lr-test-no-such-net-${process.pid}` });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof LightRunnerError, `got ${err}`);
    assert.equal(err.name, 'LightRunnerError');
    assert.match(err.message, /lr-test-no-such-net/);
    assertGone(ex.id);
  });

  test('after a daemon-side error: an unknown runtime', async (t) => {
    const ex = new DockerRunner({ runtime: 'kata' }).run({ image: BUSYBOX, command: 'true' });
    scopeOf(t).track(ex.id);
    const info = JSON.parse(docker('info', '--format', '{{json .Runtimes}}'));
    if ('kata' in info) {
      // Cannot provoke the error on this daemon.
      await ex.result.catch(() => {});
      return;
    }
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof LightRunnerError, `got ${err}`);
    assertGone(ex.id);
  });

  test('ten concurrent runs with mixed endings leave nothing behind', { timeout: 120_000 }, async (t) => {
    const kinds = ['ok', 'exit', 'timeout', 'cancel', 'badimage'];
    const exs = [];
    try {
      for (let i = 0; i < 10; i++) {
        const kind = kinds[i % kinds.length];
        const req = {
          ok: { image: BUSYBOX, command: 'echo started; seq 1 100 > /app/x; wc -l /app/x' },
          exit: { image: BUSYBOX, command: 'echo started; exit 5' },
          timeout: { image: BUSYBOX, command: 'echo started; sleep 60', timeout: 2000 },
          cancel: { image: BUSYBOX, command: 'echo started; sleep 60' },
          badimage: { image: 'localhost:1/light-runner-nope:latest', command: 'true' },
        }[kind];
        const run = startedRun(t, runner, req);
        if (kind === 'cancel') run.started.then(() => run.ex.cancel(), () => {});
        exs.push({ kind, ...run });
      }
      const settled = await Promise.allSettled(exs.map((e) => e.ex.result));
      settled.forEach((s, i) => {
        const { kind } = exs[i];
        if (kind === 'badimage') {
          assert.equal(s.status, 'rejected');
          assert.equal(s.reason.code, 'CONTAINER_START_FAILED');
          return;
        }
        assert.equal(s.status, 'fulfilled', `${kind}: ${s.reason}`);
        const r = s.value;
        if (kind === 'ok') assert.equal(r.success, true);
        if (kind === 'exit') assert.equal(r.exitCode, 5);
        if (kind === 'timeout') assert.equal(r.timedOut, true);
        if (kind === 'cancel') assert.equal(r.cancelled, true);
      });
      for (const { ex } of exs) assertGone(ex.id);
    } finally {
      for (const { ex } of exs) await finish(ex);
    }
  });

  test('cleanupOrphanVolumes() removes unused light-runner-* volumes and returns the count', async (t) => {
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
    docker('run', '-d', '--name', holder, '-v', `${inUse}:/data`, BUSYBOX, 'sleep', '120');
    const n = await DockerRunner.cleanupOrphanVolumes();
    assert.equal(typeof n, 'number');
    assert.ok(n >= 1, `returned ${n}`);
    assert.equal(volumeExists(orphan), false, 'the unused light-runner-* volume is removed');
    assert.equal(volumeExists(inUse), true, 'a volume in use is kept');
    assert.equal(volumeExists(other), true, 'a volume of another name is kept');
  });
});

/** Spawns the fixture and resolves with the run ids once their containers run. */
function startHost(t, mode = 'wait', count = 1) {
  const host = spawn(process.execPath, [path.join(FIXTURES, 'host-killed.mjs'), mode, String(count)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  scopeOf(t).defer(() => host.kill('SIGKILL'));
  let out = '';
  let err = '';
  host.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => host.on('exit', (code, signal) => r({ code, signal })));
  const ids = new Promise((resolve, reject) => {
    host.stdout.on('data', (d) => {
      out += d;
      const found = out.match(/light-runner-[0-9a-f]{12}\n/g) ?? [];
      if (found.length >= count) resolve(found.map((l) => l.trim()));
    });
    exited.then(() => reject(new Error(`host exited early: ${out} ${err}`)));
  });
  return { host, ids, exited };
}

describe('point 16: an attached run dies with its host', () => {
  for (const [name, kill, count] of [
    ['SIGKILL', (c) => c.kill('SIGKILL'), 1],
    ['SIGKILL, three runs', (c) => c.kill('SIGKILL'), 3],
    ['SIGTERM', (c) => c.kill('SIGTERM'), 1],
    ['process.exit()', null, 1],
  ]) {
    test(`host ended by ${name}: containers and volumes gone within about 10 s`, { timeout: 60_000 }, async (t) => {
      const { host, ids: idsFound, exited } = startHost(t, kill ? 'wait' : 'exit', count);
      const ids = await idsFound;
      for (const id of ids) scopeOf(t).track(id);
      assert.equal(ids.length, count);
      for (const id of ids) assert.equal(inspectJson(id).State.Running, true, 'the container runs');
      const t0 = Date.now();
      if (kill) kill(host);
      await exited;
      await waitFor(() => ids.every((id) => !containerExists(id) && !volumeExists(id)),
        { timeout: 10_000, every: 200, what: 'the runs of the dead host removed' });
      for (const id of ids) assertGone(id);
      const elapsed = Date.now() - t0;
      assert.ok(elapsed <= 10_000, `cleanup took ${elapsed} ms`);
    });
  }
});
