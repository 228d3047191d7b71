// A run's output read back: attach(id, { onLog }) and execution.logs() replay
// it from the start (or `since`) and follow it to the end, from any process,
// with the same lines as an attached run's onLog, without duplicates or gaps;
// onLog's second argument says the stream and the time.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, deleteState, readState } from 'light-runner';
import { BUSYBOX, FIXTURES, ROOT, assertGone, sleep, waitFor } from './helpers.mjs';

const CHILD = path.join(FIXTURES, 'output-child.mjs');

/** A child process printing JSON lines: `events` fills as they arrive. */
function child(...args) {
  const p = spawn(process.execPath, [CHILD, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const events = [];
  let buf = '';
  let stderr = '';
  p.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  p.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => p.on('close', (code) => resolve(code)));
  return { p, events, exited, stderr: () => stderr };
}

const byStream = (lines, stream) => lines.filter((l) => l.stream === stream).map((l) => l.line);

/** Collects attach(id, { onLog }) in this process. */
async function attachCollect(id, options = {}) {
  const lines = [];
  const ex = DockerRunner.attach(id, { ...options, onLog: (line, meta) => lines.push({ line, ...meta }) });
  assert.ok(ex, `attach(${id})`);
  const result = await ex.result;
  return { lines, result };
}

async function iterate(ex, options) {
  const lines = [];
  for await (const l of ex.logs(options)) lines.push(l);
  return lines;
}

// Every splitting rule at once: CRLF, empty lines, both streams, a line of
// 40 KiB (the daemon logs it in 16 KiB pieces), one of 1.5 MiB (cut at
// 1 MiB), a last line without newline; some output before and after a pause
// so that a second process attaches while it runs.
const TRICKY = [
  'sleep 1',
  "printf 'one\\r\\n\\n\\ntwo\\n'",
  "printf 'err one\\n' >&2",
  "head -c 40000 /dev/zero | tr '\\0' L; echo",
  'sleep 1',
  "head -c 1500000 /dev/zero | tr '\\0' M; echo",
  "printf 'err two\\r\\n' >&2",
  "printf 'last without newline'",
].join('; ');

test('replay: the same lines as onLog, from another process while it runs and from the kept copy after', { timeout: 120_000 }, async () => {
  const live = [];
  const ex = new DockerRunner().run({
    image: BUSYBOX, command: TRICKY, onLog: (line, meta) => live.push({ line, ...meta }),
  });
  let watcher;
  try {
    await waitFor(() => live.length > 0, { timeout: 30_000 });
    watcher = child('attach', ex.id);
    const result = await ex.result;
    assert.equal(result.success, true);
    const code = await watcher.exited;
    assert.equal(code, 0, watcher.stderr());

    const expectedOut = ['one', 'two', 'L'.repeat(40000), 'M'.repeat(1 << 20), 'M'.repeat(1500000 - (1 << 20)), 'last without newline'];
    assert.deepEqual(byStream(live, 'stdout'), expectedOut, 'onLog of the attached run');
    assert.deepEqual(byStream(live, 'stderr'), ['err one', 'err two']);

    const seen = watcher.events.filter((e) => e.event === 'line');
    assert.deepEqual(byStream(seen, 'stdout'), expectedOut, 'the other process, attached while it ran');
    assert.deepEqual(byStream(seen, 'stderr'), ['err one', 'err two']);
    assert.deepEqual(watcher.events.at(-1).result, result, 'the other process resolved the same result');

    // After the end: the container is gone, the output is not.
    assertGone(ex.id);
    const after = await attachCollect(ex.id);
    assert.deepEqual(after.lines.map((l) => [l.line, l.stream]), live.map((l) => [l.line, l.stream]),
      'the kept copy replays every line, in the order onLog saw them');
    assert.deepEqual(after.lines.map((l) => l.time), live.map((l) => l.time));
    assert.deepEqual(after.result, result);
    const iterated = await iterate(ex);
    assert.deepEqual(iterated, after.lines.map(({ line, stream, time }) => ({ stream, line, time })));
    const kept = readState(ex.id).logs;
    assert.equal(kept.lines, live.length);
    assert.equal(kept.droppedLines, 0);
    assert.equal(kept.error, undefined);
  } finally {
    if (watcher) watcher.p.kill('SIGKILL');
    await ex.result.catch(() => {});
    deleteState(ex.id);
  }
});

test('replay: a detached run, attached mid-run from another process, gets every line once and in order', { timeout: 120_000 }, async () => {
  const N = 150;
  const ex = new DockerRunner().run({
    image: BUSYBOX,
    command: `for i in $(seq 1 ${N}); do echo "out $i"; echo "err $i" >&2; usleep 10000; done`,
    detached: true,
  });
  let watcher;
  try {
    await waitFor(() => readState(ex.id)?.phase === 'started', { timeout: 30_000 });
    await sleep(500);
    watcher = child('attach', ex.id);
    const code = await watcher.exited;
    assert.equal(code, 0, watcher.stderr());
    const seen = watcher.events.filter((e) => e.event === 'line');
    const want = (s) => Array.from({ length: N }, (_, i) => `${s} ${i + 1}`);
    assert.deepEqual(byStream(seen, 'stdout'), want('out'), 'no gap, no duplicate (stdout)');
    assert.deepEqual(byStream(seen, 'stderr'), want('err'), 'no gap, no duplicate (stderr)');
    const times = seen.map((l) => l.time);
    assert.ok(times.every((t) => Number.isFinite(t) && t > Date.now() - 120_000 && t <= Date.now()), 'times are epoch ms');
    const result = watcher.events.at(-1).result;
    assert.equal(result.success, true);

    assertGone(ex.id);
    const after = await attachCollect(ex.id);
    assert.deepEqual(after.lines.map((l) => [l.stream, l.line]), seen.map((l) => [l.stream, l.line]),
      'after the end, the kept copy holds the daemon\'s lines');
    assert.deepEqual(after.lines.map((l) => l.time), times, 'with the daemon\'s times');
    assert.equal(readState(ex.id).logs.lines, 2 * N);
  } finally {
    if (watcher) watcher.p.kill('SIGKILL');
    await ex.result.catch(() => {});
    deleteState(ex.id);
  }
});

test('replay: an attached run of another live process, followed to its end', { timeout: 120_000 }, async () => {
  const host = child('run', JSON.stringify({
    image: BUSYBOX, command: 'for i in $(seq 1 40); do echo "n $i"; usleep 50000; done; exit 4',
  }));
  let id;
  try {
    id = (await waitFor(() => host.events.find((e) => e.event === 'id'), { timeout: 30_000 })).id;
    await waitFor(() => host.events.some((e) => e.event === 'line'), { timeout: 30_000 });
    const attached = await attachCollect(id);
    assert.equal(await host.exited, 0, host.stderr());
    const hostLines = host.events.filter((e) => e.event === 'line').map((e) => e.line);
    assert.deepEqual(hostLines, Array.from({ length: 40 }, (_, i) => `n ${i + 1}`));
    assert.deepEqual(attached.lines.map((l) => l.line), hostLines);
    assert.equal(attached.result.exitCode, 4);
    assert.deepEqual(attached.result, host.events.at(-1).result);
  } finally {
    host.p.kill('SIGKILL');
    if (id) deleteState(id);
  }
});

test('replay: since (a Date, an ISO string or epoch ms) and follow: false', { timeout: 120_000 }, async () => {
  const ex = new DockerRunner().run({
    image: BUSYBOX, command: 'echo early; echo early-err >&2; sleep 2; echo late; sleep 3; echo last', detached: true,
  });
  try {
    // While it runs, follow: false gives what is there and ends.
    await waitFor(async () => (await iterate(ex, { follow: false })).some((l) => l.line === 'late'), { timeout: 30_000, every: 200 });
    const now = await iterate(ex, { follow: false });
    assert.deepEqual(now.map((l) => l.line).filter((l) => l !== 'early-err'), ['early', 'late']);
    assert.equal(readState(ex.id).status, 'running', 'the iteration ended before the run');

    const late = now.find((l) => l.line === 'late');
    for (const since of [late.time, new Date(late.time), new Date(late.time).toISOString()]) {
      const got = await iterate(ex, { since, follow: false });
      assert.deepEqual(got.map((l) => l.line), ['late'], `since ${String(since)}`);
    }
    // Replay from `since`, then follow to the end.
    const followed = await attachCollect(ex.id, { since: late.time });
    assert.deepEqual(followed.lines.map((l) => l.line), ['late', 'last']);
    const fromFile = await iterate(ex, { since: new Date(late.time) });
    assert.deepEqual(fromFile.map((l) => l.line), ['late', 'last']);
    assert.deepEqual((await iterate(ex, { since: Date.now() + 60_000 })), []);
  } finally {
    await ex.result.catch(() => {});
    deleteState(ex.id);
  }
});

test('replay: bad options throw synchronously; an unknown id is null for attach and an error for logs()', async () => {
  assert.throws(() => DockerRunner.attach('light-runner-000000000000', { onLog: 'no' }), /onLog/);
  assert.throws(() => DockerRunner.attach('light-runner-000000000000', { since: 'yesterday' }), /since/);
  assert.throws(() => DockerRunner.attach('light-runner-000000000000', { follow: 'yes' }), /follow/);
  assert.throws(() => DockerRunner.attach('light-runner-000000000000', { since: new Date(NaN) }), /since/);
  assert.equal(DockerRunner.attach('light-runner-000000000000', { onLog() {} }), null);
  const { Execution } = await import('light-runner');
  const fake = new Execution('light-runner-000000000000', Promise.resolve());
  await assert.rejects(iterate(fake), /no run light-runner-000000000000/);
});

test('onLog: a second argument { stream, time }; one-argument callbacks keep working', { timeout: 60_000 }, async () => {
  const two = [];
  const one = [];
  const t0 = Date.now();
  const runner = new DockerRunner();
  const a = runner.run({ image: BUSYBOX, command: 'echo o; echo e >&2', onLog: (line, meta) => two.push({ line, ...meta }) });
  const b = runner.run({ image: BUSYBOX, command: 'echo o; echo e >&2', onLog: (line) => one.push(line) });
  try {
    await Promise.all([a.result, b.result]);
    const t1 = Date.now();
    assert.deepEqual(two.map((l) => [l.line, l.stream]).sort(), [['e', 'stderr'], ['o', 'stdout']]);
    for (const l of two) assert.ok(l.time >= t0 && l.time <= t1, `time ${l.time} within the run`);
    assert.deepEqual(one.sort(), ['e', 'o']);
  } finally {
    deleteState(a.id);
    deleteState(b.id);
  }
});
