// The exported network functions (SPEC section 12, issue 7): createNetwork
// with every option, idempotent create and delete, `exclusive`,
// NETWORK_IN_USE, networkExists, and cleanupOrphanNetworks, which never
// touches light-runner-isolated, a network in use (running or only
// created), or a network without the prefix.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { describe, test } from 'node:test';

import {
  DockerRunner, LightRunnerError, cleanupOrphanNetworks, createNetwork, deleteNetwork, deleteState, networkExists,
} from 'light-runner';
import { BUSYBOX, assertGone, containerExists, docker, dockerOk, sleep, waitFor } from './helpers.mjs';

const token = () => crypto.randomBytes(4).toString('hex');
const inspect = (name) => JSON.parse(docker('network', 'inspect', name))[0];
const ISOLATED = 'light-runner-isolated';

/** Names this file created, removed at the end whatever happened. */
const made = new Set();
function name(prefix = 'light-runner-t') {
  const n = `${prefix}${token()}`;
  made.add(n);
  return n;
}
function removeAll() {
  for (const n of made) {
    // By id: two networks may share the name.
    for (const line of docker('network', 'ls', '--filter', `name=${n}`, '--format', '{{.ID}} {{.Name}}').split('\n')) {
      const [id, nm] = line.split(' ');
      if (nm === n) dockerOk('network', 'rm', id);
    }
  }
}

/**
 * One call to the Engine API, bypassing the CLI (which refuses duplicate
 * network names that the API of dockerd 20.10 accepts).
 */
function engine(method, urlPath, body) {
  const host = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  const target = host.startsWith('unix://')
    ? { socketPath: host.slice('unix://'.length) }
    : { host: new URL(host.replace(/^tcp:/, 'http:')).hostname, port: new URL(host.replace(/^tcp:/, 'http:')).port };
  return new Promise((resolve, reject) => {
    const req = http.request({ ...target, method, path: urlPath, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: data ? JSON.parse(data) : null }));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

/** A run sitting on `network` until cancelled; resolves once it runs. */
async function occupy(network) {
  let onReady;
  const ready = new Promise((r) => { onReady = r; });
  const ex = new DockerRunner().run({
    image: BUSYBOX, network, command: 'echo ready; sleep 60', timeout: 90_000,
    onLog: (l) => { if (l === 'ready') onReady(); },
  });
  await Promise.race([ready, ex.result.then((r) => { throw new Error(`ended early: ${JSON.stringify(r)}`); })]);
  return {
    ex,
    async release() {
      ex.cancel();
      await ex.result;
      deleteState(ex.id);
      await waitFor(() => !containerExists(ex.id), { timeout: 15_000 });
      assertGone(ex.id);
    },
  };
}

describe('createNetwork / deleteNetwork / networkExists', () => {
  test('every option reaches the daemon; the network carries light-runner.managed=true', async (t) => {
    t.after(removeAll);
    const n = name();
    const net = 1 + crypto.randomInt(250);
    assert.equal(await networkExists(n), false);
    const created = await createNetwork(n, {
      driver: 'bridge',
      iccEnabled: true,
      labels: { team: 'a', 'light-runner.t': n },
      ipam: { subnet: `10.231.${net}.0/24`, gateway: `10.231.${net}.254`, ipRange: `10.231.${net}.64/26` },
    });
    assert.equal(created, true);
    // Resolved means it exists now.
    assert.equal(await networkExists(n), true);
    const info = inspect(n);
    assert.equal(info.Driver, 'bridge');
    assert.equal(info.Labels['light-runner.managed'], 'true');
    assert.equal(info.Labels.team, 'a');
    assert.equal(info.Labels['light-runner.t'], n);
    assert.equal(info.Options['com.docker.network.bridge.enable_icc'], 'true');
    assert.deepEqual(info.IPAM.Config, [{
      Subnet: `10.231.${net}.0/24`, Gateway: `10.231.${net}.254`, IPRange: `10.231.${net}.64/26`,
    }]);
    await deleteNetwork(n);
    assert.equal(dockerOk('network', 'inspect', n), false);
    assert.equal(await networkExists(n), false);
  });

  test('defaults: bridge, inter-container communication off, no ipam of its own', async (t) => {
    t.after(removeAll);
    const n = name();
    assert.equal(await createNetwork(n), true);
    const info = inspect(n);
    assert.equal(info.Driver, 'bridge');
    assert.equal(info.Options['com.docker.network.bridge.enable_icc'], 'false');
    assert.equal(info.Labels['light-runner.managed'], 'true');
    await deleteNetwork(n);
  });

  test('create is idempotent, delete is idempotent, exclusive refuses an existing name', async (t) => {
    t.after(removeAll);
    const n = name();
    assert.equal(await createNetwork(n), true);
    const id = inspect(n).Id;
    assert.equal(await createNetwork(n), true, 'again: still true');
    assert.equal(await createNetwork(n, { iccEnabled: true }), true, 'again with other options: still true');
    const same = docker('network', 'ls', '--filter', `name=${n}`, '--format', '{{.ID}} {{.Name}}')
      .split('\n').filter((l) => l.endsWith(` ${n}`));
    assert.equal(same.length, 1, `one network named ${n}: ${same}`);
    assert.equal(inspect(n).Id, id, 'the first one, untouched');
    const err = await createNetwork(n, { exclusive: true }).then(() => null, (e) => e);
    assert.ok(err instanceof LightRunnerError, String(err));
    assert.ok(err.message.includes(n), err.message);
    assert.match(err.message, /exists/);
    assert.equal(inspect(n).Id, id);
    await deleteNetwork(n);
    assert.equal(dockerOk('network', 'inspect', n), false);
    await deleteNetwork(n);
    await deleteNetwork(`light-runner-t${token()}-never`);
    // exclusive on a free name creates it.
    assert.equal(await createNetwork(n, { exclusive: true }), true);
    assert.equal(await networkExists(n), true);
    await deleteNetwork(n);
  });

  test('concurrent creates of one name make one network', async (t) => {
    t.after(removeAll);
    const n = name();
    const results = await Promise.all(Array.from({ length: 5 }, () => createNetwork(n)));
    assert.deepEqual(results, [true, true, true, true, true]);
    const same = docker('network', 'ls', '--filter', `name=${n}`, '--format', '{{.Name}}')
      .split('\n').filter((l) => l === n);
    assert.equal(same.length, 1);
    await deleteNetwork(n);
  });

  test('a network with a container attached rejects NETWORK_IN_USE and stays', async (t) => {
    t.after(removeAll);
    const n = name();
    await createNetwork(n);
    const run = await occupy(n);
    try {
      const err = await deleteNetwork(n).then(() => null, (e) => e);
      assert.ok(err instanceof LightRunnerError, String(err));
      assert.equal(err.code, 'NETWORK_IN_USE');
      assert.ok(err.message.includes(n), err.message);
      assert.equal(await networkExists(n), true);
    } finally {
      await run.release();
    }
    await deleteNetwork(n);
    assert.equal(await networkExists(n), false);
  });

  test('two networks sharing a name (dockerd 20.10 allows it): it exists, and delete removes both', async (t) => {
    t.after(removeAll);
    const n = name();
    for (let i = 0; i < 2; i += 1) {
      const r = await engine('POST', '/networks/create', { Name: n, CheckDuplicate: false });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const same = () => docker('network', 'ls', '--filter', `name=${n}`, '--format', '{{.Name}}')
      .split('\n').filter((l) => l === n).length;
    assert.equal(same(), 2);
    assert.equal(await networkExists(n), true);
    assert.equal(await createNetwork(n), true);
    await deleteNetwork(n);
    assert.equal(same(), 0);
    assert.equal(await networkExists(n), false);
  });

  test('a subnet that overlaps an existing one rejects, and no network is left', async (t) => {
    t.after(removeAll);
    const a = name();
    const b = name();
    const net = 1 + crypto.randomInt(250);
    await createNetwork(a, { ipam: { subnet: `10.231.${net}.0/24` } });
    const err = await createNetwork(b, { ipam: { subnet: `10.231.${net}.0/25` } }).then(() => null, (e) => e);
    assert.ok(err instanceof LightRunnerError, String(err));
    assert.equal(err.dockerOp, 'createNetwork');
    assert.match(err.message, /overlap/i);
    assert.equal(await networkExists(b), false);
    await deleteNetwork(a);
  });

  test('names and options of the wrong shape throw synchronously, naming the field', () => {
    assert.throws(() => createNetwork(42), /name/);
    assert.throws(() => createNetwork('bad name!'), /name/);
    assert.throws(() => deleteNetwork(undefined), /name/);
    assert.throws(() => networkExists({}), /name/);
    assert.throws(() => createNetwork('x', { driver: 'overlay' }), /driver/);
    assert.throws(() => createNetwork('x', { iccEnabled: 'yes' }), /iccEnabled/);
    assert.throws(() => createNetwork('x', { exclusive: 1 }), /exclusive/);
    assert.throws(() => createNetwork('x', { labels: { a: 1 } }), /labels/);
    assert.throws(() => createNetwork('x', { ipam: '10.0.0.0/8' }), /ipam/);
    assert.throws(() => createNetwork('x', { ipam: { subnet: 10 } }), /ipam\.subnet/);
    assert.throws(() => cleanupOrphanNetworks({ prefix: '' }), /prefix/);
    assert.throws(() => cleanupOrphanNetworks({ maxAgeMs: -1 }), /maxAgeMs/);
  });
});

describe('cleanupOrphanNetworks', () => {
  test('removes unused networks of the prefix; never one in use, one without the prefix, or light-runner-isolated', async (t) => {
    t.after(removeAll);
    // A prefix that light-runner-isolated matches too, so only the rule
    // about it can keep it.
    const prefix = `light-runner-isolated`;
    // A default run makes sure light-runner-isolated exists.
    const first = new DockerRunner().run({ image: BUSYBOX, command: 'true' });
    await first.result.finally(() => deleteState(first.id));
    const iso = inspect(ISOLATED).Id;
    const tok = token();
    const orphan1 = `${prefix}-t${tok}-a`;
    const orphan2 = `${prefix}-t${tok}-b`;
    const busy = `${prefix}-t${tok}-busy`;
    const created = `${prefix}-t${tok}-created`;
    const other = `lr-decoy-t${tok}`;
    for (const n of [orphan1, orphan2, busy, created, other]) made.add(n);
    await createNetwork(orphan1);
    docker('network', 'create', orphan2);
    await createNetwork(busy);
    await createNetwork(created);
    await createNetwork(other);
    // `created` has a container that was created and not started (a run
    // being set up looks like this): Docker would let the network go.
    const holder = `lr-holder-t${tok}`;
    docker('create', '--name', holder, '--network', created, BUSYBOX, 'true');
    const run = await occupy(busy);
    try {
      // Too young for a large maxAgeMs: nothing goes.
      assert.equal(await cleanupOrphanNetworks({ prefix, maxAgeMs: 3_600_000 }), 0);
      for (const n of [orphan1, orphan2]) assert.equal(await networkExists(n), true, `${n} kept (young)`);
      const removed = await cleanupOrphanNetworks({ prefix, maxAgeMs: 0 });
      assert.ok(removed >= 2, `removed ${removed}`);
      assert.equal(await networkExists(orphan1), false, 'orphan created by createNetwork removed');
      assert.equal(await networkExists(orphan2), false, 'orphan created elsewhere removed');
      assert.equal(await networkExists(busy), true, 'a network with a running container stays');
      assert.equal(await networkExists(created), true, 'a network with a created container stays');
      assert.equal(await networkExists(other), true, 'a network without the prefix stays');
      assert.equal(inspect(ISOLATED).Id, iso, 'light-runner-isolated stays');
      // The holder can still start on its network.
      docker('start', holder);
    } finally {
      dockerOk('rm', '-f', holder);
      await run.release();
    }
    // With the container gone, the busy network is an orphan too; the
    // decoy without the prefix still stays.
    assert.ok(await cleanupOrphanNetworks({ prefix: `${prefix}-t${tok}-` }) >= 2);
    assert.equal(await networkExists(busy), false);
    assert.equal(await networkExists(created), false);
    assert.equal(await networkExists(other), true);
    await deleteNetwork(other);
  });

  test('maxAgeMs counts from the network creation', async (t) => {
    t.after(removeAll);
    const prefix = `light-runner-t${token()}-`;
    const n = name(prefix);
    await createNetwork(n);
    await sleep(1500);
    assert.equal(await cleanupOrphanNetworks({ prefix, maxAgeMs: 60_000 }), 0);
    assert.equal(await networkExists(n), true);
    assert.equal(await cleanupOrphanNetworks({ prefix, maxAgeMs: 1000 }), 1);
    assert.equal(await networkExists(n), false);
  });
});
