// Free-form runtimes on a private dockerd of this file (the shared daemon is
// never touched), with two registered runtimes:
//  - runsc (gVisor, Debian's build, ptrace platform): the core features of
//    SPEC §5-9 and §11 run under it, under both profiles, and a job sees
//    gVisor's kernel;
//  - hang: a runtime that never returns from create. With
//    LIGHT_RUNNER_START_TIMEOUT_MS lowered, `result` rejects
//    CONTAINER_START_FAILED within the bound, the host stays responsive, the
//    container stays guarded (reapOrphans of this process leaves it), and
//    once the hung runtime is killed the background retry removes the
//    container and the volume.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DockerRunner, LightRunnerError } from 'light-runner';
import { BUSYBOX, scopeOf, sleep, tmpdir, rmrf } from './helpers.mjs';
import { PrivateDockerd, RUNSC, hangingRuntime, runscInstalled, until } from './private-dockerd.mjs';

const work = tmpdir('lr-rt-');
const hang = hangingRuntime(work);
const pd = new PrivateDockerd({ prefix: 'lr-rt-d-', runtimes: { runsc: RUNSC, hang: { path: hang.path } } });
const saved = {};

function setEnv(name, value) {
  if (!(name in saved)) saved[name] = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

before(async () => {
  assert.ok(runscInstalled(), 'runsc is installed (apt-get install runsc; .ci/run does it)');
  await pd.start();
  setEnv('DOCKER_HOST', pd.sock);
  // The runs of this file keep their state files here (removed at the end),
  // not in the suite's state dir.
  setEnv('LIGHT_RUNNER_STATE_DIR', path.join(work, 'state'));
});

after(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  hang.release();
  await pd.destroy();
  rmrf(work);
});

/** Asserts the private daemon holds nothing of the package (waits for removals). */
async function nothingLeft(what) {
  let left = [];
  await until(`${what}: nothing left in the private daemon`, () => {
    left = pd.leftovers();
    return left.length === 0;
  }, 20_000).catch(() => assert.deepEqual(left, [], `${what}: left behind`));
}

async function run(runner, request) {
  const lines = [];
  const ex = runner.run({ image: BUSYBOX, timeout: 60_000, ...request, onLog: (l) => lines.push(l) });
  const result = await ex.result;
  return { ex, result, out: lines.join('\n') };
}

for (const profile of ['baseline', 'restricted']) {
  describe(`runsc (gVisor), ${profile}`, () => {
    const runner = () => new DockerRunner({ runtime: 'runsc', securityProfile: profile });

    test('the job runs under gVisor: its kernel says so', async () => {
      const { result, out } = await run(runner(), { command: 'dmesg | head -3; cat /proc/version; id -u' });
      assert.equal(result.exitCode, 0, out);
      assert.match(out, /gVisor/i, out);
      assert.match(out, profile === 'restricted' ? /^65534$/m : /^0$/m);
      const info = JSON.parse(pd.cli('info', '--format', '{{json .Runtimes}}'));
      assert.ok(info.runsc, 'runsc registered');
      await nothingLeft('gvisor');
    });

    test('run, input, seed, extract', async (t) => {
      const scope = scopeOf(t);
      const dir = scope.tmp('lr-rt-dir-');
      fs.writeFileSync(path.join(dir, 'in.txt'), 'seeded\n');
      const to = scope.tmp('lr-rt-out-');
      const { result, out } = await run(runner(), {
        command: 'cat > input.json; echo more >> in.txt; mkdir -p out; cp in.txt input.json out/; echo done',
        input: { a: 1 }, dir, extract: [{ from: 'out', to }],
      });
      assert.equal(result.success, true, out);
      assert.equal(fs.readFileSync(path.join(to, 'in.txt'), 'utf8'), 'seeded\nmore\n');
      assert.equal(fs.readFileSync(path.join(to, 'input.json'), 'utf8'), '{"a":1}');
      await nothingLeft('run');
    });

    test('timeout and cancel', async () => {
      const t0 = Date.now();
      const { result } = await run(runner(), { command: 'sleep 60', timeout: 1500 });
      assert.equal(result.timedOut, true);
      assert.ok(Date.now() - t0 < 30_000);
      const lines = [];
      const ex = runner().run({ image: BUSYBOX, command: 'echo started; sleep 60', onLog: (l) => lines.push(l) });
      await until('started', () => lines.includes('started'), 30_000);
      ex.cancel();
      const r = await ex.result;
      assert.equal(r.cancelled, true);
      await nothingLeft('timeout/cancel');
    });

    test('stop (TERM trap) and pause/resume', async () => {
      const lines = [];
      const ex = runner().run({
        image: BUSYBOX,
        command: 'trap "echo got-term; exit 42" TERM; echo started; while true; do sleep 0.2; done',
        onLog: (l) => lines.push(l),
      });
      await until('started', () => lines.includes('started'), 30_000);
      await ex.pause();
      await ex.resume();
      await ex.stop({ signal: 'SIGTERM', grace: 10_000 });
      const r = await ex.result;
      assert.equal(r.exitCode, 42, lines.join('\n'));
      assert.equal(r.cancelled, true);
      await nothingLeft('stop');
    });

    test('detached + attach', async (t) => {
      const scope = scopeOf(t);
      scope.saveEnv('LIGHT_RUNNER_STATE_DIR');
      process.env.LIGHT_RUNNER_STATE_DIR = path.join(scope.tmp('lr-rt-state-'), 'state');
      const to = scope.tmp('lr-rt-out-');
      const ex = runner().run({
        image: BUSYBOX, command: 'sleep 1; mkdir -p out; echo det > out/x', detached: true, extract: [{ from: 'out', to }],
      });
      const attached = DockerRunner.attach(ex.id);
      assert.ok(attached);
      const [a, b] = await Promise.all([ex.result, attached.result]);
      assert.equal(a.success, true, JSON.stringify(a));
      assert.deepEqual(a, b);
      assert.equal(fs.readFileSync(path.join(to, 'x'), 'utf8'), 'det\n');
      await nothingLeft('detached');
    });
  });
}

describe('a runtime that never returns', () => {
  test('result rejects within LIGHT_RUNNER_START_TIMEOUT_MS; the host answers; removal once it lets go', async (t) => {
    const scope = scopeOf(t);
    scope.saveEnv('LIGHT_RUNNER_START_TIMEOUT_MS');
    scope.saveEnv('LIGHT_RUNNER_REAP_AGE_MS');
    process.env.LIGHT_RUNNER_START_TIMEOUT_MS = '4000';
    assert.ok(pd.runtimeNames().includes('hang'));
    const t0 = Date.now();
    const ex = new DockerRunner({ runtime: 'hang' }).run({ image: BUSYBOX, command: 'echo never' });
    const settled = ex.result.then((value) => ({ value, at: Date.now() }), (error) => ({ error, at: Date.now() }));
    await until('the runtime hangs in create', () => hang.pids().length > 0, 30_000);

    // The host stays responsive meanwhile: other calls answer.
    const t1 = Date.now();
    assert.equal(await DockerRunner.isAvailable(), true);
    const other = await run(new DockerRunner(), { command: 'echo other' });
    assert.equal(other.result.success, true);
    assert.ok(Date.now() - t1 < 15_000, 'another run went through while the first hung');

    const s = await settled;
    assert.ok(s.error instanceof LightRunnerError, JSON.stringify(s));
    assert.equal(s.error.code, 'CONTAINER_START_FAILED');
    assert.match(s.error.message, /LIGHT_RUNNER_START_TIMEOUT_MS/);
    assert.match(s.error.message, /4000 ms/);
    assert.equal(s.error.containerId, ex.id);
    assert.ok(s.at - t0 < 4000 + 3000, `rejected ${s.at - t0} ms after run(), bound 4000 ms`);

    // Still held by the runtime: guarded by this host, so its own reaper
    // leaves it; the daemon still has it.
    process.env.LIGHT_RUNNER_REAP_AGE_MS = '0';
    const listed = () => pd.cli('ps', '-a', '--filter', `name=^/${ex.id}$`, '--format', '{{.Names}}');
    assert.equal(listed(), ex.id);
    const reaped = await DockerRunner.reapOrphans();
    assert.equal(listed(), ex.id, `reapOrphans left the guarded container (${JSON.stringify(reaped)})`);

    // The runtime lets go (killed): the background retry removes both.
    const released = Date.now();
    hang.release();
    await until('container and volume removed after the runtime let go', () => pd.leftovers().length === 0, 30_000);
    t.diagnostic(`removed ${Date.now() - released} ms after the runtime was killed`);
  });
});

describe('reapOrphans() knows the seed twin', () => {
  test('a seed twin a dead host left (a labelled, never-started container) is reaped with its volume', async (t) => {
    const scope = scopeOf(t);
    scope.saveEnv('LIGHT_RUNNER_REAP_AGE_MS');
    const id = `light-runner-${Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '0')}`;
    pd.cli('volume', 'create', '--label', `light-runner.run-id=${id}`, id);
    pd.cli('create', '--name', `${id}-seed`, '--label', `light-runner.run-id=${id}`, '--label', 'light-runner.role=seed',
      '-v', `${id}:/app`, '--network', 'none', BUSYBOX, 'true');
    process.env.LIGHT_RUNNER_REAP_AGE_MS = '0';
    const reaped = await DockerRunner.reapOrphans();
    assert.deepEqual(reaped, { containers: 1, volumes: 1 });
    assert.deepEqual(pd.leftovers(), []);
  });
});
