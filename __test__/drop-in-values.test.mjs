// SPEC section 13: every value the original accepted keeps its meaning
// (public Execution constructor, LightRunnerError name and cause, cpus '.5',
// memory '0', gpus, env values through String(), negative timeouts, the
// original's state files, invalid option strings reported per run, corrupt
// state files); a known field of the wrong shape throws naming it, unknown
// fields are ignored; a 0.10-style TypeScript file type-checks.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';

import {
  DockerRunner, Execution, LightRunnerError, deleteState, listStates, readState,
} from 'light-runner';
import {
  BUSYBOX, FIXTURES, LABEL, ROOT, assertGone, containerExists, docker, dockerEvents, fakeId, privateStateDir, rmrf,
  runNode, scopeOf, sleep, tmpdir, volumeExists, forwardUpgrades,
} from './helpers.mjs';

function inspect(id) {
  try {
    return JSON.parse(docker('container', 'inspect', id))[0];
  } catch {
    return null;
  }
}

/**
 * A proxy in front of the daemon's socket, on a socket of its own, that
 * records each container create body and holds each start until `onStart`
 * (given the container id) is done. Resolves with { socket, creates, close }.
 */
async function recordingProxy(dir, onStart) {
  const daemon = process.env.DOCKER_HOST?.startsWith('unix://')
    ? process.env.DOCKER_HOST.slice('unix://'.length) : '/var/run/docker.sock';
  const socket = path.join(dir, 'proxy.sock');
  const creates = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && /^\/(v[\d.]+\/)?containers\/create/.test(req.url)) creates.push(JSON.parse(body));
      const start = /^\/(v[\d.]+\/)?containers\/([^/]+)\/start/.exec(req.url);
      if (req.method === 'POST' && start) await onStart(decodeURIComponent(start[2]));
      const up = http.request({ socketPath: daemon, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      // A client gone mid-answer (a long wait): its upstream goes too.
      res.on('close', () => up.destroy());
      up.end(body);
    });
  });
  forwardUpgrades(server, daemon);
  await new Promise((r) => server.listen(socket, r));
  return { socket, creates, close: () => new Promise((r) => server.close(r)) };
}

test('new Execution(id, result, onCancel) is public: onCancel runs once; the handle keeps what it was given', async (t) => {
  let calls = 0;
  const result = Promise.resolve({ success: true, exitCode: 0, duration: 1, cancelled: false });
  // As the original, a throwing onCancel does not escape cancel().
  const throwing = new Execution('x', result, () => { throw new Error('hook'); });
  assert.doesNotThrow(() => throwing.cancel());
  assert.equal(throwing.cancelled, true);
  const ex = new Execution('my-fake-run', result, () => { calls++; });
  assert.ok(ex instanceof Execution);
  assert.equal(ex.id, 'my-fake-run');
  assert.equal(ex.result, result, 'the same promise');
  assert.equal(ex.cancelled, false);
  ex.cancel();
  ex.cancel();
  await ex.stop();
  assert.equal(calls, 1, 'onCancel called once');
  assert.equal(ex.cancelled, true);
  await ex.pause();
  await ex.resume();
  assert.deepEqual(await ex.result, { success: true, exitCode: 0, duration: 1, cancelled: false });
  // A real run's handle is an Execution too.
  const real = new DockerRunner().run({ image: BUSYBOX, command: 'true' });
  scopeOf(t).track(real.id);
  assert.ok(real instanceof Execution);
  await real.result;
});

test('LightRunnerError: name is writable (subclasses rename themselves); cause carries the daemon\'s error with its statusCode', async (t) => {
  class JobError extends LightRunnerError {
    constructor(o) {
      super(o);
      this.name = 'JobError';
    }
  }
  const e = new JobError({ code: 'SEED_FAILED', message: 'm', cause: new Error('under') });
  assert.equal(e.name, 'JobError');
  assert.equal(e.toJSON().name, 'JobError');
  assert.equal(e.cause.message, 'under');
  assert.ok(e instanceof LightRunnerError);
  const plain = new LightRunnerError({ code: 'EXTRACT_FAILED', message: 'x' });
  plain.name = 'Renamed';
  assert.equal(plain.name, 'Renamed');
  assert.equal('cause' in plain, false, 'no cause unless given');

  // A run whose image the (local) registry does not have: a 404 from Docker.
  const ex = new DockerRunner().run({ image: '127.0.0.1:5000/light-runner-no-such-image:latest', command: 'true' });
  scopeOf(t).track(ex.id);
  const err = await ex.result.then(() => assert.fail('should reject'), (x) => x);
  assert.ok(err instanceof LightRunnerError, String(err));
  assert.equal(err.code, 'CONTAINER_START_FAILED');
  assert.equal(err.dockerOp, 'pull');
  assert.ok(err.cause instanceof Error, 'cause is an Error');
  assert.equal(err.cause.statusCode, 404);
  assert.match(err.cause.message, /manifest|not found/i);
  assert.equal(JSON.stringify(err).includes('cause'), false, 'toJSON leaves the cause out, as the original');
  assertGone(ex.id);
});

test('cpus \'.5\' → NanoCpus 500000000 (cpus read with parseFloat, as the original); memory \'0\' → no limit (Memory 0)', async (t) => {
  for (const [options, nano, memory] of [
    [{ cpus: '.5', memory: '0' }, 500_000_000, 0],
    [{}, 1_000_000_000, 512 * 1024 * 1024],
    // parseFloat, as the original reads cpus: the rest of the text is ignored.
    [{ cpus: '1.5 cores', memory: '64M' }, 1_500_000_000, 64 * 1024 * 1024],
    [{ cpus: 2 }, 2_000_000_000, 512 * 1024 * 1024],
  ]) {
    let up;
    const running = new Promise((r) => { up = r; });
    const ex = new DockerRunner(options).run({ image: BUSYBOX, command: 'echo up; sleep 30', onLog: () => up() });
    scopeOf(t).track(ex.id);
    await running;
    const hc = inspect(ex.id).HostConfig;
    ex.cancel();
    assert.equal(hc.NanoCpus, nano, JSON.stringify(options));
    assert.equal(hc.Memory, memory, JSON.stringify(options));
    assert.equal((await ex.result).cancelled, true);
  }
});

test('gpus as the original: \'\' none; 0 and \'0\' device 0; \'1\' device 1 (not a count); the daemon gets nvidia DeviceRequests', async (t) => {
  // This machine has no GPU: the runs go through a proxy that records what
  // the daemon is asked for and, before letting each start through, reads
  // the created container back with docker inspect. The daemon then refuses
  // the start (no nvidia runtime here): a LightRunnerError, nothing left.
  const dir = tmpdir('lr-dropin-gpus-');
  const inspected = new Map();
  const proxy = await recordingProxy(dir, async (id) => {
    inspected.set(id, inspect(id)?.HostConfig.DeviceRequests ?? null);
  });
  const ids = [];
  try {
    const device = (ids) => [{ Driver: 'nvidia', Count: 0, DeviceIDs: ids, Capabilities: [['gpu']], Options: null }];
    const norm = (reqs) => reqs?.map((r) => ({
      Driver: r.Driver, Count: r.Count ?? 0, DeviceIDs: r.DeviceIDs ?? null, Capabilities: r.Capabilities, Options: r.Options ?? null,
    })) ?? null;
    for (const [gpus, expected] of [
      ['', null],
      [undefined, null],
      [0, device(['0'])],
      ['0', device(['0'])],
      ['1', device(['1'])],
      ['device=0,1', device(['0', '1'])],
      ['"device=0"', device(['0'])],
      ['all', [{ Driver: 'nvidia', Count: -1, DeviceIDs: null, Capabilities: [['gpu']], Options: null }]],
    ]) {
      const before = proxy.creates.length;
      const r = await runNode([path.join(FIXTURES, 'run-with-options.mjs'), JSON.stringify(gpus === undefined ? {} : { gpus }),
        JSON.stringify({ image: BUSYBOX, command: 'true' })], { env: { ...process.env, DOCKER_HOST: `unix://${proxy.socket}` } });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      ids.push(scopeOf(t).track(out.id));
      const what = `gpus ${JSON.stringify(gpus)}`;
      assert.equal(proxy.creates.length, before + 1, `${what}: one create`);
      assert.deepEqual(norm(proxy.creates.at(-1).HostConfig.DeviceRequests), expected, `${what}: create body`);
      assert.deepEqual(norm(inspected.get(out.id)), expected, `${what}: docker inspect of the created container`);
      if (expected === null) {
        assert.equal(out.result?.success, true, `${what}: ${r.stdout}`);
      } else {
        assert.equal(out.error?.code, 'CONTAINER_START_FAILED', `${what}: ${r.stdout}`);
        assert.match(out.error.message, /nvidia/);
      }
      assertGone(out.id);
    }
  } finally {
    await proxy.close();
    rmrf(dir);
  }
});

test('env values go through String(); an undefined value drops the name', async (t) => {
  const lines = [];
  const ex = new DockerRunner().run({
    image: BUSYBOX,
    command: 'env | grep -E "^(PORT|FLAG|NOTHING|RATE|GONE)=" | sort',
    env: { PORT: 8080, FLAG: true, NOTHING: null, RATE: 0.5, GONE: undefined },
    onLog: (l) => lines.push(l),
  });
  scopeOf(t).track(ex.id);
  const r = await ex.result;
  assert.equal(r.success, true);
  assert.deepEqual(lines, ['FLAG=true', 'NOTHING=null', 'PORT=8080', 'RATE=0.5']);
});

test('timeout: -1 is no timeout; so are NaN (Number(undefined)) and Infinity', async (t) => {
  const runner = new DockerRunner();
  const exs = [-1, NaN, Infinity].map((timeout) => runner.run({ image: BUSYBOX, command: 'sleep 1.5; echo done', timeout }));
  for (const ex of exs) scopeOf(t).track(ex.id);
  for (const ex of exs) {
    const state = readState(ex.id);
    assert.equal(state.deadline, undefined, 'no deadline recorded');
  }
  for (const ex of exs) {
    const r = await ex.result;
    assert.deepEqual([r.success, r.timedOut, r.exitCode], [true, false, 0]);
    assert.ok(r.duration >= 1500, `ran its course: ${r.duration}`);
  }
  // A timeout still works (and one past the 32-bit timer limit is kept, not 1 ms).
  const short = runner.run({ image: BUSYBOX, command: 'sleep 30', timeout: 300 });
  const long = runner.run({ image: BUSYBOX, command: 'sleep 1', timeout: 2 ** 31 + 5 });
  exs.push(short, long);
  for (const ex of [short, long]) scopeOf(t).track(ex.id);
  assert.equal((await short.result).timedOut, true);
  const rl = await long.result;
  assert.deepEqual([rl.success, rl.timedOut], [true, false]);
  assert.equal(Date.parse(readState(long.id).deadline) - Date.parse(readState(long.id).startedAt), 2 ** 31 + 5);
});

test('a state file the original wrote with timeout -1 (or 1500.5) is read, listed and attached', async (t) => {
  privateStateDir(t, 'lr-dropin-state-');
  const ids = [fakeId(), fakeId()];
  fs.mkdirSync(process.env.LIGHT_RUNNER_STATE_DIR, { recursive: true });
  const written = {};
  for (const [i, timeout] of [[0, -1], [1, 1500.5]]) {
    const id = ids[i];
    docker('volume', 'create', '--label', `${LABEL}=${id}`, id);
    docker('run', '-d', '--network', 'none', '--name', id, '--label', `${LABEL}=${id}`, '--label', 'light-runner.detached=true',
      '-v', `${id}:/app`, BUSYBOX, 'sh', '-c', `sleep 2; exit ${5 + i}`);
    // Exactly the original's format: its fields only, its key order.
    written[id] = {
      id, container: id, volume: id, image: BUSYBOX, workdir: '/app', command: `sleep 2; exit ${5 + i}`,
      timeout, startedAt: new Date().toISOString(), status: 'running',
    };
    fs.writeFileSync(path.join(process.env.LIGHT_RUNNER_STATE_DIR, `${id}.json`), JSON.stringify(written[id], null, 2));
  }
  assert.deepEqual(readState(ids[0]), written[ids[0]]);
  assert.equal(readState(ids[1]).timeout, 1500.5);
  assert.deepEqual(listStates().map((s) => s.id).sort(), [...ids].sort());
  const exs = ids.map((id) => DockerRunner.attach(id));
  assert.ok(exs.every(Boolean));
  await sleep(1000);
  assert.equal(inspect(ids[0])?.State.Running, true, 'no deadline killed it');
  const results = await Promise.all(exs.map((e) => e.result));
  assert.deepEqual(results.map((r) => [r.exitCode, r.timedOut, r.success]), [[5, false, false], [6, false, false]]);
  for (const id of ids) {
    const s = readState(id);
    assert.equal(s.status, 'exited');
    assertGone(id);
  }
  assert.equal(readState(ids[0]).timeout, -1, 'the original\'s value is kept as it was');
});

test('invalid memory, cpus or gpus strings: the constructor does not throw; each run rejects naming field and value, before any Docker resource', async (t) => {
  for (const [options, field, value] of [
    [{ memory: '12x' }, 'memory', '12x'],
    [{ cpus: 'lots' }, 'cpus', 'lots'],
    [{ cpus: '0' }, 'cpus', '0'],
    [{ gpus: '--privileged' }, 'gpus', '--privileged'],
  ]) {
    const runner = new DockerRunner(options); // must not throw
    const since = Date.now();
    const ids = [];
    for (let i = 0; i < 2; i++) {
      const ex = runner.run({ image: BUSYBOX, command: 'true' });
      ids.push(scopeOf(t).track(ex.id));
      const err = await ex.result.then(() => assert.fail(`${field} ${value} should reject`), (x) => x);
      assert.ok(err instanceof LightRunnerError, String(err));
      assert.ok(err.message.includes(field) && err.message.includes(value), err.message);
      assert.equal(readState(ex.id).status, 'failed');
    }
    await sleep(300);
    for (const id of ids) {
      assert.equal(containerExists(id), false);
      assert.equal(volumeExists(id), false);
      assert.deepEqual(dockerEvents(id, since - 1000, Date.now() + 500), [], `no Docker event for ${id}`);
    }
  }
  // A runner built at module load never crashes its process.
  const r = await runNode(['-e', `
    const { DockerRunner } = require('./index.js');
    new DockerRunner({ memory: 'bogus', cpus: 'x', gpus: '$(id)' });
    console.log('alive');`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'alive');
});

test('readState() of a corrupt file throws; listStates() skips it', (t) => {
  const { dir } = privateStateDir(t, 'lr-dropin-corrupt-');
  fs.mkdirSync(dir, { recursive: true });
  const torn = fakeId();
  const notObject = fakeId();
  const good = fakeId();
  fs.writeFileSync(path.join(dir, `${torn}.json`), '{ "id": "x", "stat');
  fs.writeFileSync(path.join(dir, `${notObject}.json`), '[1, 2]');
  fs.writeFileSync(path.join(dir, `${good}.json`), JSON.stringify({
    id: good, container: good, volume: good, image: BUSYBOX, workdir: '/app', startedAt: new Date().toISOString(),
    status: 'exited', exitCode: 0,
  }));
  assert.throws(() => readState(torn), (e) => e instanceof Error && e.message.includes(torn));
  assert.throws(() => readState(notObject));
  assert.equal(readState(fakeId()), null, 'absent is null');
  assert.deepEqual(listStates().map((s) => s.id), [good]);
  assert.deepEqual(DockerRunner.list().map((s) => s.id), [good]);
});

test('wrong types still throw synchronously, naming the field: a function, a cycle', () => {
  const cycle = {};
  cycle.self = cycle;
  for (const [options, field] of [
    [{ memory: () => '1g' }, 'memory'],
    [{ cpus: cycle }, 'cpus'],
    [{ gpus: Symbol('x') }, 'gpus'],
    [{ memory: 512 * 1024 * 1024 }, null],
  ]) {
    if (field === null) {
      assert.doesNotThrow(() => new DockerRunner(options), 'a number of bytes is a value the original passes on');
      continue;
    }
    assert.throws(() => new DockerRunner(options), (e) => e.message.includes(field), field);
  }
  const runner = new DockerRunner();
  for (const [request, field] of [
    [{ image: BUSYBOX, timeout: () => 5 }, 'timeout'],
    [{ image: BUSYBOX, extract: cycle }, 'extract'],
    [{ image: BUSYBOX, extract: [cycle] }, 'extract'],
  ]) {
    const before = listStates().length;
    assert.throws(() => runner.run(request), (e) => e.message.includes(field), field);
    assert.equal(listStates().length, before, 'no run was started');
  }
});

test('a known field of the wrong shape throws naming the field; unknown fields are ignored and the request runs', async (t) => {
  const runner = new DockerRunner();
  for (const [extra, field] of [
    [{ timeout: '5000' }, 'timeout'],
    [{ extract: 'out' }, 'extract'],
    [{ extract: [{ from: 'out' }] }, 'extract'],
    [{ env: ['A=1'] }, 'env'],
    [{ ignore: 'node_modules' }, 'ignore'],
    [{ workdir: 5 }, 'workdir'],
    [{ detached: 'yes' }, 'detached'],
    [{ networks: 'none' }, 'networks'],
    [{ run: 'apk add x' }, 'run'],
    [{ command: ['echo', 'hi'] }, 'command'],
    [{ dir: {} }, 'dir'],
    [{ onLog: 'console' }, 'onLog'],
    [{ signal: {} }, 'signal'],
  ]) {
    assert.throws(() => runner.run({ image: BUSYBOX, ...extra }),
      (e) => e instanceof Error && e.message.includes(field), `${JSON.stringify(extra)} names ${field}`);
  }
  let touched = 0;
  const lines = [];
  const request = {
    image: BUSYBOX,
    command: 'echo ran',
    onLog: (l) => lines.push(l),
    futureOption: { nested: () => {} },
    priority: 'high',
    get trap() {
      touched++;
      throw new Error('an unknown field must not be read');
    },
  };
  const ex = runner.run(request);
  scopeOf(t).track(ex.id);
  const r = await ex.result;
  assert.equal(r.success, true);
  assert.deepEqual(lines, ['ran']);
  assert.equal(touched, 0, 'run() never reads an unknown field');
});

test('a TypeScript file written the way 0.10 users write test doubles and wrappers type-checks', () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(ROOT, '__test__', 'types', 'tsconfig.drop-in.json')], {
      cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});
