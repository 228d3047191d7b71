// The network a run joins: by default the shared bridge `light-runner-isolated`
// (created on demand, exactly once, with inter-container traffic off, and
// created again when removed behind the runner's back); `'none'`; or a named
// network, used as given.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner } from 'light-runner';
import {
  BUSYBOX, FIXTURES, assertGone, docker, dockerOk, finish, inspectJson, runNode, runToEnd, scopeOf, startedRun,
  waitFor,
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

describe('the default network: the shared isolated bridge', () => {
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
});

describe('other networks', () => {
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
