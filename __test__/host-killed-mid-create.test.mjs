// A host SIGKILLed while its container create is still on its way to the
// daemon: the daemon creates the container (and re-creates its named
// volume) after the host died, after the first cleanup. The watchdog of an
// attached run, and the host that finalizes a detached run whose launcher
// died in setup, keep looking for such late arrivals and remove them.
// A proxy in front of the daemon holds every container create for a while.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, deleteState } from 'light-runner';
import { BUSYBOX, FIXTURES, containerExists, sleep, volumeExists } from './helpers.mjs';

/** A TCP proxy to the daemon's socket that holds container creates `holdMs`. */
async function slowCreates(holdMs) {
  const seen = [];
  const server = net.createServer((client) => {
    const upstream = net.connect('/var/run/docker.sock');
    let forwarded = false;
    let clientGone = false;
    client.once('data', (first) => {
      const isCreate = /^POST \/(v[\d.]+\/)?containers\/create/.test(first.toString('latin1', 0, 64));
      const forward = () => {
        forwarded = true;
        // Even when the client died meanwhile, its request reaches the
        // daemon, as bytes a killed process already sent do.
        upstream.write(first);
        if (clientGone) return upstream.end();
        client.pipe(upstream);
        upstream.pipe(client);
      };
      if (isCreate) {
        seen.push(Date.now());
        setTimeout(forward, holdMs);
      } else {
        forward();
      }
    });
    client.on('error', () => {});
    upstream.on('error', () => client.destroy());
    client.on('close', () => {
      clientGone = true;
      if (forwarded) upstream.end();
    });
    upstream.on('close', () => client.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { host: `tcp://127.0.0.1:${server.address().port}`, seen, close: () => server.close() };
}

/** Starts fixtures/run.mjs through the proxy; resolves with the child and the run id. */
async function launch(request, dockerHost) {
  const child = spawn(process.execPath, [path.join(FIXTURES, 'run.mjs'), JSON.stringify(request)], {
    env: { ...process.env, DOCKER_HOST: dockerHost },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  const id = await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      err += d;
      const m = /id (light-runner-[0-9a-f]{12})/.exec(err);
      if (m) resolve(m[1]);
    });
    child.on('exit', () => reject(new Error(`child exited first: ${err}`)));
  });
  return { child, id };
}

async function killWhenCreateSeen(proxy, child) {
  const end = Date.now() + 30_000;
  while (proxy.seen.length === 0) {
    if (Date.now() > end) throw new Error('no container create reached the proxy');
    await sleep(10);
  }
  child.kill('SIGKILL');
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
}

async function untilGone(id, ms) {
  const end = Date.now() + ms;
  while (containerExists(id) || volumeExists(id)) {
    if (Date.now() > end) return false;
    await sleep(250);
  }
  return true;
}

test('attached: a create that lands after the host died is removed by the watchdog', async () => {
  const proxy = await slowCreates(2500);
  let id;
  try {
    const run = await launch({ image: BUSYBOX, command: 'sleep 30' }, proxy.host);
    id = run.id;
    await killWhenCreateSeen(proxy, run.child);
    // The create lands 2.5 s after it was sent: check it did, then that it went.
    const landed = await (async () => {
      const end = Date.now() + 8000;
      while (Date.now() < end) {
        if (containerExists(id)) return true;
        await sleep(100);
      }
      return false;
    })();
    assert.ok(await untilGone(id, 20_000), `container or volume ${id} left (create landed: ${landed})`);
  } finally {
    proxy.close();
    if (id) {
      deleteState(id);
    }
  }
});

test('detached: a launcher killed mid-create; the collector\'s cleanup also removes what lands late', async () => {
  const proxy = await slowCreates(4500);
  let id;
  try {
    const run = await launch({ image: BUSYBOX, command: 'sleep 30', detached: true }, proxy.host);
    id = run.id;
    await killWhenCreateSeen(proxy, run.child);
    const r = await DockerRunner.attach(id).result;
    assert.equal(r.success, false);
    // Look once the held create has surely landed.
    await sleep(Math.max(0, proxy.seen[0] + 4500 + 1500 - Date.now()));
    assert.ok(await untilGone(id, 2000), `container or volume ${id} left after the collector finalized the run`);
  } finally {
    proxy.close();
    if (id) {
      deleteState(id);
    }
  }
});
