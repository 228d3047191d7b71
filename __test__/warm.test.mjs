// Warm containers (SPEC section 16): `warm: n` keeps started containers
// ready per run shape; a run takes one, its job is sent to the container's
// idle shell, and the container is removed after that one run. Every test
// here asserts the warm path was taken (`readState(id).warm === true`) and
// that the contract holds on it: input, env, exit code, output (live, kept
// and replayed), seed, extract, timeout, cancel, stop with a signal the job
// itself receives, oomKilled, one container per run; what the warm path
// cannot serve exactly takes the cold path; a burst never waits; close()
// empties the pool. (Warm containers die with their host and are reclaimed:
// sweeps.test.mjs.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  DockerRunner, cleanupOrphanNetworks, createNetwork, deleteNetwork, networkExists, readState,
} from 'light-runner';
import {
  BUSYBOX, ROOT, docker, dockerTry, leftoversOf, runNode, runToEnd, scopeOf, sleep, startedRun, waitFor,
} from './helpers.mjs';

const WARM_LABEL = 'light-runner.warm';
const shape = { image: BUSYBOX, networks: ['none'] };

/** Warm containers of this process (ready or running a job). */
function ownWarm() {
  const out = docker('ps', '-a', '--filter', `label=${WARM_LABEL}=${os.hostname()}:${process.pid}`, '--format', '{{.Names}}');
  return out ? out.split('\n') : [];
}

/** A warm runner for test `t`, prewarmed with `count`; closed at the end. */
async function warmRunner(t, { warm = 2, count, options = {} } = {}) {
  const runner = new DockerRunner({ warm, ...options });
  scopeOf(t).defer(async () => {
    await runner.close();
  });
  await runner.prewarm(shape, count ?? warm);
  return runner;
}

/** The run's container and volume are removed (after its result, on the warm path). */
async function removed(id) {
  await waitFor(() => leftoversOf(id).length === 0, { timeout: 20_000, what: `${id} removed` });
}

test('a warm run: the job gets its env, input then EOF, and its exit code; output live and kept', async (t) => {
  const runner = await warmRunner(t);
  const ready = ownWarm();
  assert.equal(ready.length, 2, 'prewarm made two ready containers');
  const { id, result, lines } = await runToEnd(t, runner, {
    ...shape,
    command: 'echo "A=$A B=$B"; cat; echo; echo "to stderr" >&2; exit 3',
    env: { A: "it's multi\nline", B: '' },
    input: { hello: ['warm', 1] },
  });
  assert.ok(ready.includes(id), 'it took a ready container (its id is the container\'s)');
  const st = readState(id);
  assert.equal(st.warm, true, 'the state records the warm path');
  assert.equal(result.exitCode, 3);
  assert.equal(result.success, false);
  assert.deepEqual(lines.sort(), ['A=it\'s multi', 'line B=', '{"hello":["warm",1]}', 'to stderr'].sort());
  assert.equal(st.status, 'exited');
  assert.equal(st.logs.lines, 4, 'the output was kept beside the state');
  // Replay from the kept copy, as for a cold run.
  const replayed = [];
  const again = DockerRunner.attach(id, { onLog: (l) => replayed.push(l) });
  await again.result;
  assert.deepEqual(replayed.sort(), lines.sort());
  await removed(id);
  // The pool refills in the background.
  await waitFor(() => ownWarm().length === 2, { what: 'refilled to 2' });
});

test('no state passes between runs: each run has its own container, used once', async (t) => {
  const runner = await warmRunner(t);
  const a = await runToEnd(t, runner, { ...shape, command: 'echo secret > /tmp/left; echo x > /app/left; echo $$' });
  const b = await runToEnd(t, runner, { ...shape, command: 'ls /tmp/left /app/left 2>&1; true' });
  assert.equal(readState(a.id).warm, true);
  assert.equal(readState(b.id).warm, true);
  assert.notEqual(a.id, b.id);
  assert.ok(b.lines.every((l) => /No such file/.test(l)), b.lines.join('\n'));
  await removed(a.id);
  await removed(b.id);
});

test('seed into the running container and extract after the exit', async (t) => {
  const scope = scopeOf(t);
  const runner = await warmRunner(t);
  const dir = scope.tmp('lr-warm-seed-');
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'sub', 'in.txt'), 'seeded\n');
  const to = path.join(scope.tmp('lr-warm-out-'), 'out');
  const { id, result } = await runToEnd(t, runner, {
    ...shape, dir,
    command: 'mkdir -p out && cat sub/in.txt > out/r.txt && echo more >> out/r.txt',
    extract: [{ from: 'out', to }],
  });
  assert.equal(readState(id).warm, true);
  assert.equal(result.success, true, JSON.stringify(result));
  assert.equal(result.extracted[0].status, 'ok');
  assert.equal(fs.readFileSync(path.join(to, 'r.txt'), 'utf8'), 'seeded\nmore\n');
  await removed(id);
});

test('restricted: the warm container is the hardened one; seeded through its twin, the job writes as 65534', async (t) => {
  const scope = scopeOf(t);
  const runner = await warmRunner(t, { warm: 1, options: { securityProfile: 'restricted' } });
  const [ready] = ownWarm();
  const hc = JSON.parse(docker('inspect', ready, '--format', '{{json .HostConfig}}'));
  assert.equal(hc.ReadonlyRootfs, true);
  assert.deepEqual(hc.CapDrop, ['ALL']);
  assert.equal(docker('inspect', ready, '--format', '{{.Config.User}}'), '65534:65534');
  const dir = scope.tmp('lr-warm-rseed-');
  fs.writeFileSync(path.join(dir, 'in.txt'), 'seeded\n');
  const { id, result, lines } = await runToEnd(t, runner, {
    ...shape, dir,
    command: 'id -u; cat in.txt; echo x > /app/w && echo app-writable; touch /probe 2>&1 || echo root-denied',
  });
  assert.equal(id, ready, 'the run took the hardened warm container');
  assert.equal(readState(id).warm, true);
  assert.equal(result.exitCode, 0, lines.join('\n'));
  const out = lines.join('\n');
  assert.match(out, /^65534$/m);
  assert.match(out, /^seeded$/m);
  assert.match(out, /app-writable/);
  assert.match(out, /root-denied/);
  await removed(id);
});

test('the timeout starts with the job: killed, timedOut', async (t) => {
  const runner = await warmRunner(t, { warm: 1 });
  const { id, result } = await runToEnd(t, runner, { ...shape, command: 'echo started; sleep 30', timeout: 1500 });
  assert.equal(readState(id).warm, true);
  assert.equal(result.timedOut, true);
  assert.equal(result.success, false);
  assert.ok(result.duration < 15_000);
  await removed(id);
});

test('cancel() kills it; stop() delivers its signal to the job itself, then SIGKILL after the grace', async (t) => {
  const runner = await warmRunner(t);
  const c = startedRun(t, runner, { ...shape, command: 'echo started; sleep 30' });
  await c.started;
  c.ex.cancel();
  const rc = await c.ex.result;
  assert.equal(readState(c.ex.id).warm, true);
  assert.equal(rc.cancelled, true);
  // The job traps SIGUSR1: it, not only PID 1, gets the signal.
  const s = startedRun(t, runner, { ...shape, command: "trap 'exit 43' USR1; echo started; while true; do sleep 0.1; done" });
  await s.started;
  await s.ex.stop({ signal: 'SIGUSR1', grace: 5000 });
  const rs = await s.ex.result;
  assert.equal(readState(s.ex.id).warm, true);
  assert.equal(rs.exitCode, 43, JSON.stringify(rs));
  assert.equal(rs.cancelled, true);
  // A job that ignores SIGTERM is killed once the grace is over.
  const k = startedRun(t, runner, { ...shape, command: "trap '' TERM; echo started; while true; do sleep 0.1; done" });
  await k.started;
  const t0 = Date.now();
  await k.ex.stop({ grace: 1000 });
  const rk = await k.ex.result;
  assert.ok(Date.now() - t0 >= 900, 'the grace was given');
  assert.equal(rk.exitCode, 137);
  for (const id of [c.ex.id, s.ex.id, k.ex.id]) await removed(id);
});

test('oomKilled when the memory cap kills the job', async (t) => {
  const runner = await warmRunner(t, { warm: 1, options: { memory: '32m' } });
  const { id, result } = await runToEnd(t, runner, {
    ...shape, command: 'x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done',
  });
  assert.equal(readState(id).warm, true);
  assert.equal(result.oomKilled, true, JSON.stringify(result));
  assert.equal(result.exitCode, 137);
  await removed(id);
});

test('logs() follows a warm run live from its container log', async (t) => {
  const runner = await warmRunner(t, { warm: 1 });
  const r = startedRun(t, runner, { ...shape, command: 'echo started; for i in 1 2 3; do echo "line $i"; sleep 0.3; done' });
  await r.started;
  const followed = [];
  for await (const { line } of r.ex.logs()) followed.push(line);
  assert.deepEqual(followed, ['started', 'line 1', 'line 2', 'line 3']);
  await r.ex.result;
  assert.equal(readState(r.ex.id).warm, true);
  await removed(r.ex.id);
});

test('light-runner logs -f follows a warm run from another process; logs replays it after the end', async (t) => {
  const BIN = path.join(ROOT, 'bin', 'light-runner.mjs');
  const runner = await warmRunner(t, { warm: 1 });
  const r = startedRun(t, runner, {
    ...shape, command: 'echo started; for i in 1 2 3; do echo "line $i"; sleep 0.5; done; echo oops >&2',
  });
  await r.started;
  const follow = await runNode([BIN, 'logs', '-f', r.ex.id]);
  assert.equal(follow.code, 0, follow.stderr);
  assert.equal(follow.stdout, 'started\nline 1\nline 2\nline 3\n');
  assert.equal(follow.stderr, 'oops\n');
  assert.equal((await r.ex.result).success, true);
  assert.equal(readState(r.ex.id).warm, true);
  const replay = await runNode([BIN, 'logs', '--json', r.ex.id]);
  assert.deepEqual(replay.stdout.trim().split('\n').map((l) => JSON.parse(l)).map((l) => [l.stream, l.line]),
    [['stdout', 'started'], ['stdout', 'line 1'], ['stdout', 'line 2'], ['stdout', 'line 3'], ['stderr', 'oops']]);
  await removed(r.ex.id);
});

test('past 8 shapes, the least recently used is let go and its container removed', async (t) => {
  const runner = new DockerRunner({ warm: 1 });
  scopeOf(t).defer(() => runner.close());
  const shapes = Array.from({ length: 9 }, (_, i) => ({ ...shape, workdir: `/w${i}` }));
  await runner.prewarm(shapes[0]);
  const [oldest] = ownWarm();
  assert.ok(oldest);
  for (const s of shapes.slice(1, 8)) await runner.prewarm(s);
  assert.equal(ownWarm().length, 8, 'eight shapes are kept');
  await runner.prewarm(shapes[8]);
  await waitFor(() => ownWarm().length === 8 && !ownWarm().includes(oldest),
    { timeout: 20_000, what: 'the first shape let go' });
  assert.deepEqual(leftoversOf(oldest), [], 'its container and volume removed');
});

test('what the warm path cannot serve takes the cold path; a burst never waits', async (t) => {
  const runner = await warmRunner(t, { warm: 1 });
  // No command (the image's own entrypoint) and detached runs: cold.
  const plain = await runToEnd(t, runner, { ...shape });
  assert.equal(readState(plain.id).warm, undefined);
  const det = runner.run({ ...shape, command: 'true', detached: true });
  scopeOf(t).track(det.id);
  await det.result;
  assert.equal(readState(det.id).warm, undefined);
  // Three at once on a pool of one: one warm, two cold, none waits.
  const runs = await Promise.all([0, 1, 2].map(() => runToEnd(t, runner, { ...shape, command: 'echo ok' })));
  const warmth = runs.map((r) => readState(r.id).warm === true);
  assert.equal(warmth.filter(Boolean).length, 1, JSON.stringify(warmth));
  assert.ok(runs.every((r) => r.result.success));
  for (const r of runs) await removed(r.id);
});

test('close() empties the pool and waits for the removals', async (t) => {
  const runner = new DockerRunner({ warm: 3 });
  await runner.prewarm(shape);
  assert.equal(ownWarm().length, 3);
  await runner.close();
  assert.deepEqual(ownWarm(), [], 'nothing of the pool is left when close() resolves');
  // A closed runner still runs, cold.
  const { id } = await runToEnd(t, runner, { ...shape, command: 'true' });
  assert.equal(readState(id).warm, undefined);
});

test('cleanupOrphanNetworks() also drains a network only warm containers use, and the pool lets go of its shape', async (t) => {
  const prefix = `light-runner-warmorphan-${process.pid}-`;
  const net = `${prefix}a`;
  await createNetwork(net);
  scopeOf(t).defer(() => dockerTry('network', 'rm', net));
  const runner = new DockerRunner({ warm: 2 });
  scopeOf(t).defer(() => runner.close());
  const onNet = { image: BUSYBOX, networks: [net] };
  await runner.prewarm(onNet);
  const ready = ownWarm();
  assert.equal(ready.length, 2);
  assert.equal(await cleanupOrphanNetworks({ prefix, maxAgeMs: 0 }), 1);
  assert.equal(await networkExists(net), false);
  for (const id of ready) assert.deepEqual(leftoversOf(id), [], `${id} removed with its network`);
  // The network again: a run of that shape is served (cold, as the pool let
  // go of the shape and its removed containers), not sent to a gone one.
  await createNetwork(net);
  const { id, result } = await runToEnd(t, runner, { ...onNet, command: 'echo ok' });
  assert.equal(result.success, true, JSON.stringify(result));
  assert.equal(readState(id).warm, undefined);
});

test('a network only warm containers use is not in use: deleteNetwork drains them first', async (t) => {
  const net = `light-runner-warmnet-${process.pid}`;
  await createNetwork(net);
  scopeOf(t).defer(() => dockerTry('network', 'rm', net));
  const runner = new DockerRunner({ warm: 2 });
  scopeOf(t).defer(() => runner.close());
  await runner.prewarm({ image: BUSYBOX, networks: [net] });
  assert.equal(ownWarm().length, 2);
  await deleteNetwork(net);
  assert.equal(await networkExists(net), false);
  assert.deepEqual(ownWarm(), []);
  await sleep(100);
});
