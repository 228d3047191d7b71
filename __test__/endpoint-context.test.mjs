// The daemon is found the way the docker CLI finds it (SPEC section 14): with
// DOCKER_HOST unset, the currentContext of $DOCKER_CONFIG/config.json (or
// DOCKER_CONTEXT) names a context whose metadata
// (contexts/meta/<sha256 of the name>/meta.json) points at a SECOND daemon's
// socket, and the run lands there, not on the main daemon. The addon, the
// watchdog and the CLI resolve the same endpoint: a SIGKILLed host's watchdog
// removes its run on the second daemon, and `light-runner doctor` reports it.
//
// The second daemon is private (scripts/start-dockerd2.sh: its own data and
// exec roots, containerd, socket and bridge; the main daemon is never
// touched); it is purged when this file is done. Runs use network 'none'.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  BUSYBOX, LABEL, ROOT, child, labelledResources, runNode, scopeOf, waitFor,
} from './helpers.mjs';

const D2_DIR = process.env.LIGHT_RUNNER_DOCKERD2_DIR ?? '/tmp/light-runner-dockerd2';
const D2_SOCK = path.join(D2_DIR, 'docker2.sock');
const D2_HOST = `unix://${D2_SOCK}`;
const SCRIPT = path.join(ROOT, 'scripts', 'start-dockerd2.sh');
const BIN = path.join(ROOT, 'bin', 'light-runner.mjs');
const DOCKER_VARS = ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'];

function dockerd2(...args) {
  const r = spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `start-dockerd2.sh ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

before(() => dockerd2());
after(() => dockerd2('purge'));

/** docker CLI against the second daemon. */
function d2(...args) {
  return execFileSync('docker', ['-H', D2_HOST, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Containers and volumes of run `id` on the second daemon. */
function onD2(id) {
  const filter = `label=${LABEL}=${id}`;
  return {
    containers: d2('ps', '-a', '--filter', filter, '--format', '{{.Names}}').split('\n').filter(Boolean),
    volumes: d2('volume', 'ls', '-q', '--filter', filter).split('\n').filter(Boolean),
  };
}

/**
 * A DOCKER_CONFIG dir with the given contexts ({ name: host }) as
 * `docker context create` writes them, and `current` as currentContext.
 */
function dockerConfig(t, contexts, current) {
  const dir = scopeOf(t).tmp('lr-docker-config-');
  for (const [name, host] of Object.entries(contexts)) {
    const hash = crypto.createHash('sha256').update(name).digest('hex');
    const meta = path.join(dir, 'contexts', 'meta', hash);
    fs.mkdirSync(meta, { recursive: true });
    fs.writeFileSync(path.join(meta, 'meta.json'), JSON.stringify({
      Name: name, Metadata: {}, Endpoints: { docker: { Host: host, SkipTLSVerify: false } },
    }));
  }
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(current ? { auths: {}, currentContext: current } : { auths: {} }));
  return dir;
}

/** A host child whose only Docker variables are `env` (DOCKER_HOST unset). */
function hostWith(env) {
  return child('endpoint-host', {}, { env, unsetEnv: DOCKER_VARS.filter((k) => !(k in env)) });
}

function line(h, event, key, timeout = 60_000) {
  return waitFor(() => h.lines.find((l) => l.event === event && l.key === key), { timeout, what: `${event} of ${key}; stderr: ${h.stderr}` });
}

/** Starts `request` in host `h`; its id is tracked (the main daemon must have nothing of it). */
async function start(t, h, key, request) {
  h.send(JSON.stringify({ op: 'run', key, request }));
  const { id } = await line(h, 'id', key);
  scopeOf(t).track(id);
  scopeOf(t).defer(() => {
    for (const c of onD2(id).containers) d2('rm', '-f', '-v', c);
    for (const v of onD2(id).volumes) d2('volume', 'rm', '-f', v);
  });
  return id;
}

describe('a Docker context names the daemon', () => {
  test('currentContext of DOCKER_CONFIG, DOCKER_HOST unset: the run lands on the second daemon, not the main one', { timeout: 120_000 }, async (t) => {
    const config = dockerConfig(t, { second: D2_HOST }, 'second');
    // The docker CLI reads these files the same way.
    assert.equal(execFileSync('docker', ['info', '--format', '{{.DockerRootDir}}'], {
      encoding: 'utf8', env: { ...process.env, DOCKER_CONFIG: config, DOCKER_HOST: '' },
    }).trim(), path.join(D2_DIR, 'data'));

    const scope = scopeOf(t);
    const dir = scope.tmp('lr-ctx-seed-');
    fs.writeFileSync(path.join(dir, 'in.txt'), 'seeded\n');
    const out = scope.tmp('lr-ctx-out-');
    const h = hostWith({ DOCKER_CONFIG: config });
    await h.event('ready');
    const id = await start(t, h, 'job', {
      image: BUSYBOX,
      network: 'none',
      dir,
      command: 'cat in.txt; echo started; sleep 2; cp in.txt copy.txt',
      extract: [{ from: 'copy.txt', to: out }],
      onLogMarker: 'started',
    });
    await line(h, 'log', 'job');
    assert.deepEqual(onD2(id), { containers: [id], volumes: [id] }, 'on the second daemon');
    assert.deepEqual(labelledResources(id), { containers: [], volumes: [] }, 'nothing on the main daemon');
    const r = await line(h, 'result', 'job');
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.result.success, true);
    assert.deepEqual(r.lines, ['seeded', 'started']);
    assert.equal(fs.readFileSync(path.join(out, 'copy.txt'), 'utf8'), 'seeded\n');
    await waitFor(() => onD2(id).containers.length === 0 && onD2(id).volumes.length === 0,
      { timeout: 20_000, what: `${id} removed from the second daemon` });
    h.send(JSON.stringify({ op: 'exit' }));
    await h.exited;
  });

  test('the watchdog of a SIGKILLed host removes its run on the second daemon', { timeout: 120_000 }, async (t) => {
    const config = dockerConfig(t, { second: D2_HOST }, 'second');
    const h = hostWith({ DOCKER_CONFIG: config });
    await h.event('ready');
    const id = await start(t, h, 'orphan', {
      image: BUSYBOX, network: 'none', command: 'echo started; sleep 300', onLogMarker: 'started',
    });
    await line(h, 'log', 'orphan');
    assert.equal(d2('inspect', '-f', '{{.State.Running}}', id), 'true');
    assert.deepEqual(labelledResources(id), { containers: [], volumes: [] });
    const t0 = Date.now();
    h.kill('SIGKILL');
    await h.exited;
    await waitFor(() => onD2(id).containers.length === 0 && onD2(id).volumes.length === 0,
      { timeout: 20_000, every: 200, what: `${id} removed from the second daemon by the watchdog` });
    t.diagnostic(`removed ${Date.now() - t0} ms after the SIGKILL`);
  });

  test('the watchdog removes each run on the daemon the run was on, not the one of its own environment', { timeout: 120_000 }, async (t) => {
    // The watchdog starts with the host's first attached run and keeps the
    // environment of that moment (the main daemon); the host then changes
    // its environment, so its next run lands on the second daemon.
    const config = dockerConfig(t, { second: D2_HOST }, 'second');
    const h = hostWith({});
    await h.event('ready');
    const first = await start(t, h, 'main', { image: BUSYBOX, network: 'none', command: 'echo started; sleep 300', onLogMarker: 'started' });
    await line(h, 'log', 'main');
    assert.equal(labelledResources(first).containers.length, 1, 'the first run is on the main daemon');
    h.send(JSON.stringify({ op: 'setenv', key: 'ctx', env: { DOCKER_CONFIG: config } }));
    await line(h, 'setenv', 'ctx');
    const second = await start(t, h, 'second', { image: BUSYBOX, network: 'none', command: 'echo started; sleep 300', onLogMarker: 'started' });
    await line(h, 'log', 'second');
    assert.equal(onD2(second).containers.length, 1, 'the second run is on the second daemon');
    h.kill('SIGKILL');
    await h.exited;
    await waitFor(() => onD2(second).containers.length === 0 && onD2(second).volumes.length === 0,
      { timeout: 20_000, every: 200, what: `${second} removed from the second daemon` });
    await waitFor(() => labelledResources(first).containers.length === 0 && labelledResources(first).volumes.length === 0,
      { timeout: 20_000, every: 200, what: `${first} removed from the main daemon` });
  });

  test('DOCKER_CONTEXT wins over currentContext; an unknown or dead context is DOCKER_UNREACHABLE naming it', { timeout: 120_000 }, async (t) => {
    const missing = path.join(scopeOf(t).tmp('lr-ctx-dead-'), 'missing.sock');
    const config = dockerConfig(t, {
      second: D2_HOST, main: 'unix:///var/run/docker.sock', dead: `unix://${missing}`,
    }, 'main');
    const h = hostWith({ DOCKER_CONFIG: config, DOCKER_CONTEXT: 'second' });
    await h.event('ready');
    const id = await start(t, h, 'pick', { image: BUSYBOX, network: 'none', command: 'echo started; sleep 1', onLogMarker: 'started' });
    await line(h, 'log', 'pick');
    assert.equal(onD2(id).containers.length, 1, 'DOCKER_CONTEXT=second, not currentContext=main');
    assert.equal((await line(h, 'result', 'pick')).result?.success, true);
    h.send(JSON.stringify({ op: 'exit' }));
    await h.exited;

    for (const [name, expected] of [
      ['nope', /Docker context "nope" \(from DOCKER_CONTEXT=nope\) not found: no .*contexts\/meta\/[0-9a-f]{64}\/meta\.json/],
      ['dead', new RegExp(`unreachable at unix://${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(from DOCKER_CONTEXT=dead\\)`)],
    ]) {
      const bad = hostWith({ DOCKER_CONFIG: config, DOCKER_CONTEXT: name });
      await bad.event('ready');
      bad.send(JSON.stringify({ op: 'available' }));
      assert.equal((await bad.event('available')).available, false);
      await start(t, bad, name, { image: BUSYBOX, network: 'none', command: 'true' });
      const r = await line(bad, 'result', name);
      assert.equal(r.error?.code, 'DOCKER_UNREACHABLE', JSON.stringify(r));
      assert.match(r.error.message, expected);
      bad.send(JSON.stringify({ op: 'exit' }));
      await bad.exited;
    }
  });

  test('light-runner doctor reports the context\'s endpoint and the second daemon', { timeout: 60_000 }, async (t) => {
    const config = dockerConfig(t, { second: D2_HOST }, 'second');
    const env = { ...process.env, DOCKER_CONFIG: config };
    for (const k of DOCKER_VARS) if (k !== 'DOCKER_CONFIG') delete env[k];
    const r = await runNode([BIN, 'doctor', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.endpoint.host, D2_HOST);
    assert.deepEqual(doc.endpoint.source, { kind: 'current-context', context: 'second' });
    assert.equal(doc.endpoint.described, `${D2_HOST} (from currentContext=second)`);
    assert.equal(doc.daemon.rootDir, path.join(D2_DIR, 'data'));
    assert.equal(doc.daemon.version, d2('version', '--format', '{{.Server.Version}}'));
    assert.ok(doc.daemon.runtimes.includes('runc'), JSON.stringify(doc.daemon.runtimes));
    const text = await runNode([BIN, 'doctor'], { env });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^endpoint: +${D2_HOST.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(from currentContext=second\\)$`, 'm'));
  });
});
