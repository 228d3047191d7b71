// A run's networks (SPEC section 12, issue 7): `networks[]` puts the
// container on its primary network and connects the others before start,
// `['none']` leaves only loopback, a missing network rejects naming it and
// creates nothing, `network` is an alias of `networks: [network]`, and a
// known field of the wrong shape throws naming the field.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, test } from 'node:test';

import { DockerRunner, LightRunnerError, deleteState, readState } from 'light-runner';
import { BUSYBOX, assertGone, containerExists, docker, dockerOk, volumeExists, waitFor } from './helpers.mjs';

const token = () => crypto.randomBytes(4).toString('hex');

/** A network of this test, removed by the returned function. */
function makeNetwork(args = []) {
  const name = `light-runner-t${token()}`;
  docker('network', 'create', ...args, name);
  return { name, remove: () => dockerOk('network', 'rm', name) };
}

/** A free /24 in 10.232.0.0/16, outside Docker's default pools and apart from
 * network-functions.test.mjs (10.231.0.0/16), which may run at the same time. */
function subnet() {
  return 1 + crypto.randomInt(250);
}

/**
 * Starts `request`; resolves once the container printed `ready` (it must
 * then keep running), with the lines it printed before.
 */
async function startUntilReady(request) {
  const lines = [];
  let onReady;
  const ready = new Promise((r) => { onReady = r; });
  const ex = new DockerRunner().run({
    image: BUSYBOX,
    timeout: 60_000,
    ...request,
    onLog: (l) => {
      lines.push(l);
      if (l === 'ready') onReady();
    },
  });
  await Promise.race([ready, ex.result.then((r) => { throw new Error(`ended early: ${JSON.stringify(r)} ${lines.join('\n')}`); })]);
  return { ex, lines };
}

/** Interface names listed by /proc/net/dev lines. */
function interfaces(lines) {
  return lines.map((l) => /^\s*([a-z0-9@]+):\s+\d/.exec(l)?.[1]).filter(Boolean).sort();
}

/** Daemon events of `type` about `name` between two host times (ms). */
function eventsAbout(name, sinceMs, untilMs) {
  return docker('events', '--since', (sinceMs / 1000).toFixed(3), '--until', (untilMs / 1000).toFixed(3),
    '--format', '{{json .}}')
    .split('\n').filter(Boolean).map((l) => JSON.parse(l))
    .filter((e) => e.Actor?.ID === name || e.Actor?.Attributes?.name === name);
}

async function finish(ex) {
  ex.cancel();
  const r = await ex.result;
  deleteState(ex.id);
  await waitFor(() => !containerExists(ex.id) && !volumeExists(ex.id), { timeout: 15_000 });
  return r;
}

describe('networks[] on a run', () => {
  test('primary plus connected networks: an interface on each, seen inside and by docker inspect', async () => {
    const net = subnet();
    const a = makeNetwork(['--subnet', `10.232.${net}.0/24`, '--ip-range', `10.232.${net}.128/25`]);
    const b = makeNetwork();
    try {
      const { ex, lines } = await startUntilReady({
        networks: [a.name, b.name],
        command: 'cat /proc/net/dev; ip -o -4 addr show; echo ready; sleep 60',
      });
      try {
        // Inside: loopback plus one interface per network.
        assert.deepEqual(interfaces(lines), ['eth0', 'eth1', 'lo'], lines.join('\n'));
        const inside = lines.map((l) => /inet (\d+\.\d+\.\d+\.\d+)\//.exec(l)?.[1]).filter(Boolean);
        // The daemon's view of the same container.
        const info = JSON.parse(docker('container', 'inspect', ex.id))[0];
        assert.equal(info.HostConfig.NetworkMode, a.name, 'the first entry is the primary network');
        const nets = info.NetworkSettings.Networks;
        assert.deepEqual(Object.keys(nets).sort(), [a.name, b.name].sort());
        for (const n of [a.name, b.name]) {
          assert.ok(inside.includes(nets[n].IPAddress), `address ${nets[n].IPAddress} on ${n} is seen inside: ${inside}`);
        }
        // The primary's address comes from its ip range.
        const last = Number(nets[a.name].IPAddress.split('.')[3]);
        assert.ok(nets[a.name].IPAddress.startsWith(`10.232.${net}.`) && last >= 128, nets[a.name].IPAddress);
        for (const n of [a.name, b.name]) {
          const attached = JSON.parse(docker('network', 'inspect', n))[0].Containers ?? {};
          assert.ok(Object.values(attached).some((c) => c.Name === ex.id), `${n} lists the container`);
        }
      } finally {
        const r = await finish(ex);
        assert.equal(r.cancelled, true);
      }
      assertGone(ex.id);
    } finally {
      a.remove();
      b.remove();
    }
  });

  test('a detached run joins its networks too', async () => {
    const a = makeNetwork();
    const b = makeNetwork();
    const ex = new DockerRunner().run({
      image: BUSYBOX, detached: true, networks: [a.name, b.name], command: 'sleep 60',
    });
    try {
      await waitFor(() => {
        const s = dockerOk('container', 'inspect', ex.id) && JSON.parse(docker('container', 'inspect', ex.id))[0];
        return s && s.State.Running;
      }, { timeout: 30_000 });
      const nets = JSON.parse(docker('container', 'inspect', ex.id))[0].NetworkSettings.Networks;
      assert.deepEqual(Object.keys(nets).sort(), [a.name, b.name].sort());
    } finally {
      await finish(ex);
      a.remove();
      b.remove();
    }
    assertGone(ex.id);
  });

  test("['none']: only loopback", async () => {
    const lines = [];
    const ex = new DockerRunner().run({
      image: BUSYBOX, networks: ['none'], command: 'cat /proc/net/dev', onLog: (l) => lines.push(l),
    });
    const r = await ex.result.finally(() => deleteState(ex.id));
    assert.equal(r.success, true);
    assert.deepEqual(interfaces(lines), ['lo'], lines.join('\n'));
    assertGone(ex.id);
  });

  test('the same network named twice is joined once', async () => {
    const a = makeNetwork();
    const lines = [];
    try {
      const ex = new DockerRunner().run({
        image: BUSYBOX, networks: [a.name, a.name], command: 'cat /proc/net/dev', onLog: (l) => lines.push(l),
      });
      const r = await ex.result.finally(() => deleteState(ex.id));
      assert.equal(r.success, true);
      assert.deepEqual(interfaces(lines), ['eth0', 'lo']);
      assertGone(ex.id);
    } finally {
      a.remove();
    }
  });

  for (const where of ['primary', 'connected']) {
    test(`a missing ${where} network rejects naming it, and nothing was ever created`, async () => {
      const a = makeNetwork();
      const missing = `light-runner-t${token()}-missing`;
      let ex;
      try {
        const since = Date.now() - 1000;
        ex = new DockerRunner().run({
          image: BUSYBOX, command: 'true', networks: where === 'primary' ? [missing, a.name] : [a.name, missing],
        });
        const err = await ex.result.then(() => null, (e) => e);
        const until = Date.now() + 1000;
        assert.ok(err instanceof LightRunnerError, String(err));
        assert.ok(err.message.includes(missing), err.message);
        assert.match(err.message, /not found/);
        // Never created: no create event for the run's container or volume
        // (what the run removes on its way out would show as events too).
        const events = eventsAbout(ex.id, since, until);
        assert.deepEqual(events.map((e) => `${e.Type} ${e.Action}`), []);
        assert.equal(containerExists(ex.id), false);
        assert.equal(volumeExists(ex.id), false);
        assert.equal(readState(ex.id).status, 'failed');
      } finally {
        if (ex) deleteState(ex.id);
        a.remove();
      }
    });
  }

  test('`network` is an alias of `networks: [network]`; both given and equal is fine', async () => {
    const a = makeNetwork();
    try {
      for (const req of [{ network: a.name }, { network: a.name, networks: [a.name] }]) {
        const { ex } = await startUntilReady({ ...req, command: 'echo ready; sleep 60' });
        try {
          const info = JSON.parse(docker('container', 'inspect', ex.id))[0];
          assert.equal(info.HostConfig.NetworkMode, a.name);
          assert.deepEqual(Object.keys(info.NetworkSettings.Networks), [a.name]);
        } finally {
          await finish(ex);
        }
        assertGone(ex.id);
      }
    } finally {
      a.remove();
    }
  });
});

describe('request checks (synchronous, nothing started)', () => {
  const runner = new DockerRunner();
  const throwsNaming = (req, field, pattern) => {
    let id;
    assert.throws(() => { id = runner.run({ image: BUSYBOX, command: 'true', ...req }).id; }, (e) => {
      assert.ok(e instanceof Error);
      assert.ok(e.message.includes(field), `${e.message} names ${field}`);
      if (pattern) assert.match(e.message, pattern);
      return true;
    });
    assert.equal(id, undefined);
  };

  test('`network` and `networks` both given and different', () => {
    throwsNaming({ network: 'a', networks: ['b'] }, 'networks');
    throwsNaming({ network: 'none', networks: [] }, 'networks');
  });

  test("'none' with another network", () => {
    throwsNaming({ networks: ['none', 'bridge'] }, 'networks', /none/);
    throwsNaming({ networks: ['bridge', 'none'] }, 'networks', /none/);
  });

  test('a known field of the wrong shape throws naming it, never runs less isolated', () => {
    throwsNaming({ networks: 'none' }, 'networks');
    throwsNaming({ networks: { 0: 'none' } }, 'networks');
    throwsNaming({ networks: [42] }, 'networks');
    throwsNaming({ networks: [''] }, 'networks');
    throwsNaming({ network: ['none'] }, 'network');
    throwsNaming({ network: 0 }, 'network');
    throwsNaming({ run: 'apk add x' }, 'run');
    throwsNaming({ run: [['echo']] }, 'run');
    throwsNaming({ run: [''] }, 'run');
  });

  test('unknown fields are ignored', async () => {
    const lines = [];
    const ex = runner.run({
      image: BUSYBOX, networks: ['none'], command: 'cat /proc/net/dev', netwrks: ['host'], bogus: { x: 1 },
      onLog: (l) => lines.push(l),
    });
    const r = await ex.result.finally(() => deleteState(ex.id));
    assert.equal(r.success, true);
    assert.deepEqual(interfaces(lines), ['lo']);
    assertGone(ex.id);
  });
});
