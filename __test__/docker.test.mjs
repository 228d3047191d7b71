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
  BUSYBOX, FIXTURES, assertGone, containerExists, docker, dockerOk, eventsFor, forceCleanup, inspectJson, rmrf,
  runNode, sleep, tmpdir, volumeExists, waitFor,
} from './helpers.mjs';

const NET = 'light-runner-isolated';
const LABEL = 'light-runner.run-id';
const runner = new DockerRunner();

/** Starts a run and resolves once it logged `started` (the container runs). */
function startedRun(request, r = runner) {
  let seen;
  const started = new Promise((res) => { seen = res; });
  const lines = [];
  const ex = r.run({ ...request, onLog: (l) => { lines.push(l); if (l === 'started') seen(); } });
  return { ex, started, lines };
}

async function runToEnd(request, r = runner) {
  const lines = [];
  const ex = r.run({ onLog: (l) => lines.push(l), ...request });
  try {
    return { ex, result: await ex.result, lines };
  } finally {
    forceCleanup(ex.id);
  }
}

async function finish(ex) {
  ex.cancel();
  await ex.result.catch(() => {});
  forceCleanup(ex.id);
}

/** Nothing of run `id` remains, by name or by label. */
function assertNothingLeft(id) {
  assertGone(id);
  assert.equal(docker('ps', '-aq', '--filter', `label=${LABEL}=${id}`), '', 'labelled container left');
  assert.equal(docker('volume', 'ls', '-q', '--filter', `label=${LABEL}=${id}`), '', 'labelled volume left');
}

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
  }, 180_000, 500);
  assert.equal(dockerOk('network', 'inspect', NET), false, 'network removed before the test');
}

describe('point 9: network', () => {
  // First in this file, and in a child process: this process must not have
  // cached the network before it is removed behind its back.
  test("the default bridge removed behind a runner's back is created again on the next run",
    { timeout: 240_000 }, async () => {
      const child = spawn(process.execPath, [path.join(FIXTURES, 'network-removed.mjs')], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
      const line = (re) => new Promise((resolve, reject) => {
        const check = () => { const m = out.match(re); if (m) resolve(m); };
        child.stdout.on('data', (d) => { out += d; check(); });
        check();
        exited.then(() => reject(new Error(`child exited: ${out} ${err}`)));
      });
      let id;
      try {
        const ready = await line(/^ready (.*)\n/m);
        assert.equal(JSON.parse(ready[1]).success, true, 'first run');
        await removeIsolatedWhenIdle();
        child.stdin.write('go\n');
        const done = JSON.parse((await line(/^(\{.*\})\n/m))[1]);
        id = done.id;
        assert.equal(done.error, undefined, `second run failed: ${JSON.stringify(done.error)}`);
        assert.equal(done.result.success, true);
        assert.equal(networksNamed(NET).length, 1);
        assert.equal(JSON.parse(docker('network', 'inspect', NET))[0].Options['com.docker.network.bridge.enable_icc'], 'false');
        await exited;
        assertNothingLeft(id);
      } finally {
        child.kill('SIGKILL');
        if (id) forceCleanup(id);
      }
    });

  test('the default bridge is created on demand, once, with ICC disabled, under concurrent first runs',
    { timeout: 240_000 }, async (t) => {
      await removeIsolatedWhenIdle();

      const exs = [];
      const children = [];
      try {
        // Five first runs in this process and three in other processes, all at once.
        for (let i = 0; i < 5; i++) exs.push(runner.run({ image: BUSYBOX, command: 'ls /sys/class/net' }));
        for (let i = 0; i < 3; i++) {
          children.push(runNode([path.join(FIXTURES, 'run.mjs'), JSON.stringify({ image: BUSYBOX, command: 'true' })]));
        }
        const results = await Promise.all(exs.map((e) => e.result));
        for (const r of results) assert.equal(r.success, true);
        for (const c of await Promise.all(children)) {
          assert.equal(c.code, 0, c.stderr);
          const out = JSON.parse(c.stdout);
          assert.equal(out.error, undefined, JSON.stringify(out.error));
          assert.equal(out.result.success, true);
          forceCleanup(out.id);
        }
      } finally {
        for (const e of exs) await finish(e);
      }
      assert.equal(networksNamed(NET).length, 1, `exactly one network named ${NET}`);
      const net = JSON.parse(docker('network', 'inspect', NET))[0];
      assert.equal(net.Driver, 'bridge');
      assert.equal(net.Options['com.docker.network.bridge.enable_icc'], 'false', 'ICC disabled');
      t.diagnostic(`network options: ${JSON.stringify(net.Options)}`);
    });

  /** Whether a client run reaches a server run on `network` (undefined = default). */
  async function reaches(network) {
    const server = startedRun({ image: BUSYBOX, network, command: 'echo started; nc -l -p 8080 -e echo hello-from-server; sleep 30' });
    try {
      await server.started;
      const nets = inspectJson(server.ex.id).NetworkSettings.Networks;
      const ip = nets[network ?? NET].IPAddress;
      assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
      const { result, lines } = await runToEnd({
        image: BUSYBOX, network, command: `echo ping | nc -w 3 ${ip} 8080; echo "rc=$?"`, timeout: 60_000,
      });
      assert.equal(result.success, true);
      return lines.includes('hello-from-server');
    } finally {
      await finish(server.ex);
    }
  }

  test('containers on the default bridge cannot reach each other (ICC off)', { timeout: 90_000 }, async () => {
    // Control: on an ordinary bridge the same client reaches the same server.
    const name = `lr-test-icc-${process.pid}-${randomBytes(3).toString('hex')}`;
    docker('network', 'create', name);
    try {
      assert.equal(await reaches(name), true, 'control: ICC on an ordinary bridge works');
    } finally {
      dockerOk('network', 'rm', name);
    }
    assert.equal(await reaches(undefined), false, 'a container reached another one on the default bridge');
  });

  test("network: 'none' leaves only lo", async () => {
    const { result, lines } = await runToEnd({ image: BUSYBOX, command: 'ls /sys/class/net', network: 'none' });
    assert.equal(result.success, true);
    assert.deepEqual(lines, ['lo']);
  });

  test('a named network is used as given', async () => {
    const name = `lr-test-net-${process.pid}-${randomBytes(3).toString('hex')}`;
    docker('network', 'create', name);
    const { ex, started, lines } = startedRun({ image: BUSYBOX, command: 'echo started; ls /sys/class/net; sleep 30', network: name });
    try {
      await started;
      const info = inspectJson(ex.id);
      assert.equal(info.HostConfig.NetworkMode, name);
      assert.deepEqual(Object.keys(info.NetworkSettings.Networks), [name]);
      const net = JSON.parse(docker('network', 'inspect', name))[0];
      assert.ok(Object.values(net.Containers ?? {}).some((c) => c.Name === ex.id), 'container attached to the named network');
      await waitFor(() => lines.includes('eth0'), 5000);
    } finally {
      await finish(ex);
      dockerOk('network', 'rm', name);
    }
    assertNothingLeft(ex.id);
  });
});

describe('point 12: security defaults in docker inspect of a live run', () => {
  const CAPS = ['NET_RAW', 'MKNOD', 'SYS_CHROOT', 'SETPCAP', 'SETFCAP', 'AUDIT_WRITE'];
  const norm = (caps) => (caps ?? []).map((c) => c.toUpperCase().replace(/^CAP_/, '')).sort();

  async function inspectLive(r, request = {}) {
    const { ex, started } = startedRun({ image: BUSYBOX, command: 'echo started; sleep 60', ...request }, r);
    try {
      await started;
      return { ex, info: inspectJson(ex.id), volume: JSON.parse(docker('volume', 'inspect', ex.id))[0] };
    } finally {
      await finish(ex);
    }
  }

  test('defaults: CapDrop, no-new-privileges, PidsLimit 100, 512m, 1 cpu, label, isolated network, volume at /app', async () => {
    const { ex, info, volume } = await inspectLive(new DockerRunner());
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
    assertNothingLeft(ex.id);
  });

  test('memory and cpus options become Memory and NanoCpus; custom workdir', async () => {
    const { ex, info } = await inspectLive(new DockerRunner({ memory: '256m', cpus: '0.5' }), { workdir: '/work/job' });
    assert.equal(info.HostConfig.Memory, 256 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 5e8);
    assert.ok(info.Mounts.some((m) => m.Destination === '/work/job' && m.Name === ex.id));
    assert.equal(info.HostConfig.PidsLimit, 100);
    assert.deepEqual(norm(info.HostConfig.CapDrop), [...CAPS].sort());
  });

  test('memory suffixes g and k, case-insensitive; fractional cpus', async () => {
    const { info } = await inspectLive(new DockerRunner({ memory: '1G', cpus: '1.5' }));
    assert.equal(info.HostConfig.Memory, 1024 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 1.5e9);
    const { info: info2 } = await inspectLive(new DockerRunner({ memory: '131072k', cpus: '2' }));
    assert.equal(info2.HostConfig.Memory, 128 * 1024 * 1024);
    assert.equal(info2.HostConfig.NanoCpus, 2e9);
  });

  test('noNewPrivileges: false drops only that option', async () => {
    const { info } = await inspectLive(new DockerRunner({ noNewPrivileges: false }));
    assert.ok(!(info.HostConfig.SecurityOpt ?? []).some((o) => o.startsWith('no-new-privileges')));
    assert.equal(info.HostConfig.PidsLimit, 100);
    assert.deepEqual(norm(info.HostConfig.CapDrop), [...CAPS].sort());
  });

  test('the dropped capabilities are really gone inside the container', async () => {
    const { result, lines } = await runToEnd({ image: BUSYBOX, command: 'grep CapBnd /proc/self/status; mknod /tmp/x c 1 3 && echo mknod-ok || echo mknod-denied' });
    assert.equal(result.success, true);
    const bnd = BigInt(`0x${lines.find((l) => l.startsWith('CapBnd')).split(/\s+/)[1]}`);
    const bits = { MKNOD: 27n, NET_RAW: 13n, SYS_CHROOT: 18n, SETPCAP: 8n, SETFCAP: 31n, AUDIT_WRITE: 29n };
    for (const [cap, bit] of Object.entries(bits)) assert.equal((bnd >> bit) & 1n, 0n, `${cap} still in the bounding set`);
    assert.ok(lines.includes('mknod-denied'));
  });
});

describe('point 14: nothing left behind', () => {
  test('after a successful run', async () => {
    const { ex, result } = await runToEnd({ image: BUSYBOX, command: 'echo x > /app/f; cat /app/f' });
    assert.equal(result.success, true);
    assertNothingLeft(ex.id);
  });

  test('after a non-zero exit', async () => {
    const { ex, result } = await runToEnd({ image: BUSYBOX, command: 'exit 9' });
    assert.equal(result.exitCode, 9);
    assertNothingLeft(ex.id);
  });

  test('after a bad image', async () => {
    const ex = runner.run({ image: 'localhost:1/light-runner-nope:latest', command: 'true' });
    try {
      const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
      assert.ok(err instanceof LightRunnerError);
      assert.equal(err.code, 'CONTAINER_START_FAILED');
      assertNothingLeft(ex.id);
    } finally {
      forceCleanup(ex.id);
    }
  });

  test('after a seed failure (dir not found): no Docker resource created at all', async () => {
    const since = Date.now() - 1000;
    const dir = path.join(tmpdir(), 'does-not-exist');
    const ex = runner.run({ image: BUSYBOX, command: 'true', dir });
    try {
      const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
      assert.ok(err instanceof Error);
      assert.match(err.message, new RegExp(`dir path not found: ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      assertNothingLeft(ex.id);
      assert.deepEqual(eventsFor(ex.id, since), [], 'no Docker event for the run at all');
    } finally {
      forceCleanup(ex.id);
      rmrf(path.dirname(dir));
    }
  });

  test('after a seed failure (dir is a file): no Docker resource created at all', async () => {
    const since = Date.now() - 1000;
    const base = tmpdir();
    const file = path.join(base, 'a-file.txt');
    fs.writeFileSync(file, 'not a dir');
    const ex = runner.run({ image: BUSYBOX, command: 'true', dir: file });
    try {
      const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
      assert.match(err.message, /dir path is not a directory: /);
      assert.ok(err.message.includes(file));
      assertNothingLeft(ex.id);
      assert.deepEqual(eventsFor(ex.id, since), [], 'no Docker event for the run at all');
    } finally {
      forceCleanup(ex.id);
      rmrf(base);
    }
  });

  test('after cancel mid-run', async () => {
    const { ex, started } = startedRun({ image: BUSYBOX, command: 'echo started; sleep 60' });
    try {
      await started;
      ex.cancel();
      assert.equal((await ex.result).cancelled, true);
      assertNothingLeft(ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('after cancel before start', async () => {
    const ex = runner.run({ image: BUSYBOX, command: 'sleep 60' });
    ex.cancel();
    try {
      assert.equal((await ex.result).cancelled, true);
      assertNothingLeft(ex.id);
      await sleep(1000);
      assertNothingLeft(ex.id);
    } finally {
      forceCleanup(ex.id);
    }
  });

  test('after a timeout', async () => {
    const { ex, result } = await runToEnd({ image: BUSYBOX, command: 'sleep 60', timeout: 1500 });
    assert.equal(result.timedOut, true);
    assertNothingLeft(ex.id);
  });

  test('after a daemon-side error: a named network that does not exist', async () => {
    const ex = runner.run({ image: BUSYBOX, command: 'true', network: `lr-test-no-such-net-${process.pid}` });
    try {
      const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
      assert.ok(err instanceof LightRunnerError, `got ${err}`);
      assert.equal(err.name, 'LightRunnerError');
      assert.match(err.message, /lr-test-no-such-net/);
      assertNothingLeft(ex.id);
    } finally {
      forceCleanup(ex.id);
    }
  });

  test('after a daemon-side error: an unknown runtime', async () => {
    const ex = new DockerRunner({ runtime: 'kata' }).run({ image: BUSYBOX, command: 'true' });
    try {
      const info = JSON.parse(docker('info', '--format', '{{json .Runtimes}}'));
      if ('kata' in info) return; // cannot provoke the error on this daemon
      const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
      assert.ok(err instanceof LightRunnerError, `got ${err}`);
      assertNothingLeft(ex.id);
    } finally {
      await ex.result.catch(() => {});
      forceCleanup(ex.id);
    }
  });

  test('ten concurrent runs with mixed endings leave nothing behind', { timeout: 120_000 }, async () => {
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
        const run = startedRun(req);
        if (kind === 'cancel') run.started.then(() => run.ex.cancel());
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
      for (const { ex } of exs) assertNothingLeft(ex.id);
    } finally {
      for (const { ex } of exs) await finish(ex);
    }
  });

  test('cleanupOrphanVolumes() removes unused light-runner-* volumes and returns the count', async () => {
    const orphan = `light-runner-${randomBytes(6).toString('hex')}`;
    const inUse = `light-runner-${randomBytes(6).toString('hex')}`;
    const other = `lr-test-keep-${randomBytes(6).toString('hex')}`;
    const holder = `lr-test-holder-${randomBytes(6).toString('hex')}`;
    docker('volume', 'create', orphan);
    docker('volume', 'create', other);
    docker('run', '-d', '--name', holder, '-v', `${inUse}:/data`, BUSYBOX, 'sleep', '120');
    try {
      const n = await DockerRunner.cleanupOrphanVolumes();
      assert.equal(typeof n, 'number');
      assert.ok(n >= 1, `returned ${n}`);
      assert.equal(volumeExists(orphan), false, 'the unused light-runner-* volume is removed');
      assert.equal(volumeExists(inUse), true, 'a volume in use is kept');
      assert.equal(volumeExists(other), true, 'a volume of another name is kept');
    } finally {
      dockerOk('rm', '-f', holder);
      for (const v of [orphan, inUse, other]) dockerOk('volume', 'rm', '-f', v);
    }
  });
});

describe('point 16: an attached run dies with its host', () => {
  /** Spawns the fixture and resolves with the run ids once their containers run. */
  function startHost(mode = 'wait', count = 1) {
    const child = spawn(process.execPath, [path.join(FIXTURES, 'host-killed.mjs'), mode, String(count)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
    const ids = new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        const found = out.match(/light-runner-[0-9a-f]{12}\n/g) ?? [];
        if (found.length >= count) resolve(found.map((l) => l.trim()));
      });
      exited.then(() => reject(new Error(`host exited early: ${out} ${err}`)));
    });
    return { child, ids, exited };
  }

  for (const [name, kill, count] of [
    ['SIGKILL', (c) => c.kill('SIGKILL'), 1],
    ['SIGKILL, three runs', (c) => c.kill('SIGKILL'), 3],
    ['SIGTERM', (c) => c.kill('SIGTERM'), 1],
    ['process.exit()', null, 1],
  ]) {
    test(`host ended by ${name}: containers and volumes gone within about 10 s`, { timeout: 60_000 }, async () => {
      const host = startHost(kill ? 'wait' : 'exit', count);
      let ids = [];
      try {
        ids = await host.ids;
        assert.equal(ids.length, count);
        for (const id of ids) assert.equal(inspectJson(id).State.Running, true, 'the container runs');
        const t0 = Date.now();
        if (kill) kill(host.child);
        await host.exited;
        await waitFor(() => ids.every((id) => !containerExists(id) && !volumeExists(id)), 10_000, 200);
        for (const id of ids) assertNothingLeft(id);
        const elapsed = Date.now() - t0;
        assert.ok(elapsed <= 10_000, `cleanup took ${elapsed} ms`);
      } finally {
        host.child.kill('SIGKILL');
        for (const id of ids) forceCleanup(id);
      }
    });
  }
});
