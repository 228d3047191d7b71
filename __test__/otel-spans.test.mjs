// OpenTelemetry (0.17): with @opentelemetry/api and a registered provider,
// each run is one `docker.run` span in the caller's active context, with
// its attributes, its phases as events and its error; a detached run's span
// ends once the container started. Without the package everything works
// unchanged.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import * as api from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { DockerRunner, LightRunnerError, readState } from 'light-runner';
import {
  BUSYBOX, FIXTURES, ROOT, assertGone, containerExists, rmrf, runNode, scopeOf, tmpdir, waitFor,
} from './helpers.mjs';

const exporter = new InMemorySpanExporter();
api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
api.trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
const tracer = api.trace.getTracer('light-runner-tests');

/** The finished `docker.run` spans of run `id`. */
function spansOf(id) {
  return exporter.getFinishedSpans()
    .filter((s) => s.name === 'docker.run' && s.attributes['light-runner.run_id'] === id);
}

const ms = (hr) => hr[0] * 1000 + hr[1] / 1e6;

test('a run is one docker.run span, child of the caller\'s active span, with its attributes and phase events', async (t) => {
  const dir = tmpdir('lr-otel-dir-');
  const to = tmpdir('lr-otel-out-');
  let id;
  try {
    fs.writeFileSync(path.join(dir, 'in.txt'), 'seeded\n');
    let parent;
    const result = await tracer.startActiveSpan('caller', async (span) => {
      parent = span;
      const ex = new DockerRunner().run({
        image: BUSYBOX, command: 'cp in.txt out.txt', dir, extract: [{ from: 'out.txt', to }],
      });
      id = scopeOf(t).track(ex.id);
      try {
        return await ex.result;
      } finally {
        span.end();
      }
    });
    assert.equal(result.success, true, JSON.stringify(result));
    const spans = await waitFor(() => spansOf(id).length ? spansOf(id) : null, { timeout: 5000, every: 20 });
    assert.equal(spans.length, 1, 'one span per run');
    const [s] = spans;
    assert.equal(s.spanContext().traceId, parent.spanContext().traceId, 'same trace as the caller');
    assert.equal(s.parentSpanContext?.spanId, parent.spanContext().spanId, 'child of the caller\'s active span');
    assert.equal(s.kind, api.SpanKind.INTERNAL);
    assert.deepEqual(
      {
        id: s.attributes['light-runner.run_id'],
        image: s.attributes['light-runner.image'],
        exitCode: s.attributes['light-runner.exit_code'],
        timedOut: s.attributes['light-runner.timed_out'],
        cancelled: s.attributes['light-runner.cancelled'],
      },
      { id, image: BUSYBOX, exitCode: 0, timedOut: false, cancelled: false },
    );
    assert.deepEqual(s.events.map((e) => e.name), ['created', 'seeded', 'started', 'exited', 'extracted']);
    const times = s.events.map((e) => ms(e.time));
    for (let i = 1; i < times.length; i++) assert.ok(times[i] >= times[i - 1], `events in time order: ${times}`);
    assert.ok(times[0] >= ms(s.startTime) - 1 && times.at(-1) <= ms(s.endTime) + 1, 'events inside the span');
    assert.notEqual(s.status.code, api.SpanStatusCode.ERROR);
    assert.equal(fs.readFileSync(path.join(to, 'out.txt'), 'utf8'), 'seeded\n');
  } finally {
    rmrf(dir);
    rmrf(to);
  }
});

test('without an active span the run\'s span is a root span; exit code, timeout and cancel are attributes', async (t) => {
  const ids = [];
  const runner = new DockerRunner();
  const exit3 = runner.run({ image: BUSYBOX, command: 'exit 3' });
  const timedOut = runner.run({ image: BUSYBOX, command: 'sleep 30', timeout: 500 });
  const ac = new AbortController();
  let up;
  const running = new Promise((r) => { up = r; });
  const cancelled = runner.run({ image: BUSYBOX, command: 'echo up; sleep 30', signal: ac.signal, onLog: () => up() });
  ids.push(exit3.id, timedOut.id, cancelled.id);
  ids.forEach((i) => scopeOf(t).track(i));
  await running;
  ac.abort();
  await Promise.all([exit3.result, timedOut.result, cancelled.result]);
  const one = async (id) => (await waitFor(() => spansOf(id)[0], { timeout: 5000, every: 20 }));
  const [a, b, c] = [await one(exit3.id), await one(timedOut.id), await one(cancelled.id)];
  for (const s of [a, b, c]) assert.equal(s.parentSpanContext, undefined, 'a root span');
  assert.equal(a.attributes['light-runner.exit_code'], 3);
  assert.notEqual(a.status.code, api.SpanStatusCode.ERROR, 'a non-zero exit is a result, not an error');
  assert.equal(b.attributes['light-runner.timed_out'], true);
  assert.equal(c.attributes['light-runner.cancelled'], true);
  assert.deepEqual(c.events.map((e) => e.name), ['created', 'started', 'exited']);
});

test('a failed run records its error on the span', async (t) => {
  let id;
  const runner = new DockerRunner({ memory: '12x' });
  await tracer.startActiveSpan('caller', async (span) => {
    const ex = runner.run({ image: BUSYBOX, command: 'true' });
    id = scopeOf(t).track(ex.id);
    await assert.rejects(ex.result, LightRunnerError);
    span.end();
  });
  const s = await waitFor(() => spansOf(id)[0], { timeout: 5000, every: 20 });
  assert.equal(s.status.code, api.SpanStatusCode.ERROR);
  assert.match(s.status.message, /memory/);
  const exc = s.events.find((e) => e.name === 'exception');
  assert.ok(exc, `an exception event: ${JSON.stringify(s.events)}`);
  assert.match(String(exc.attributes['exception.message']), /12x/);
  assert.equal(exc.attributes['exception.type'], 'CONTAINER_START_FAILED');
});

test('a detached run\'s span ends when its container started; a detached setup failure is recorded', async (t) => {
  let id;
  let badId;
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'sleep 5', detached: true });
  id = scopeOf(t).track(ex.id);
  const s = await waitFor(() => spansOf(id)[0], { timeout: 15_000, every: 20 });
  assert.equal(containerExists(id), true, 'the span ended while the container runs');
  assert.deepEqual(s.events.map((e) => e.name), ['created', 'started']);
  assert.equal(s.attributes['light-runner.detached'], true);
  assert.equal(s.attributes['light-runner.exit_code'], undefined, 'no exit code yet');
  assert.equal((await ex.result).exitCode, 0);
  assertGone(id);
  assert.equal(spansOf(id).length, 1, 'still one span');

  const bad = new DockerRunner().run({ image: BUSYBOX, command: 'true', dir: '/no/such/dir/lr-otel', detached: true });
  badId = scopeOf(t).track(bad.id);
  await assert.rejects(bad.result, /dir path not found/);
  const f = await waitFor(() => spansOf(badId)[0], { timeout: 5000, every: 20 });
  assert.equal(f.status.code, api.SpanStatusCode.ERROR);
  assert.match(f.status.message, /dir path not found/);
});

test('without @opentelemetry/api (not resolvable from the package) runs work unchanged', async () => {
  // A copy of the package's JS beside the built addon, in a folder with no
  // node_modules above it.
  const root = tmpdir('lr-otel-absent-');
  try {
    const pkg = path.join(root, 'light-runner');
    fs.mkdirSync(pkg);
    for (const f of ['index.js', 'index.mjs', 'native.js', 'watchdog.js', 'package.json']) {
      fs.copyFileSync(path.join(ROOT, f), path.join(pkg, f));
    }
    for (const f of fs.readdirSync(ROOT).filter((n) => n.endsWith('.node') || n === 'light-runner-watchdog')) {
      fs.symlinkSync(path.join(ROOT, f), path.join(pkg, f));
    }
    const request = { image: BUSYBOX, command: 'echo hello; exit 4' };
    const r = await runNode([path.join(FIXTURES, 'otel-absent.mjs'), pkg, JSON.stringify(request)], { cwd: root });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.resolvable, false, '@opentelemetry/api must not be resolvable from the copy');
    assert.deepEqual(
      [out.result.success, out.result.exitCode, out.result.cancelled, out.result.timedOut],
      [false, 4, false, false],
    );
    assert.deepEqual(out.lines, ['hello']);
    assert.equal(out.state.status, 'exited');
    assertGone(out.id);
  } finally {
    rmrf(root);
  }
});

test('a run served by a warm container says so on its span (light-runner.warm), a cold one too', async (t) => {
  const shape = { image: BUSYBOX, networks: ['none'] };
  const runner = new DockerRunner({ warm: 1 });
  scopeOf(t).defer(() => runner.close());
  await runner.prewarm(shape);
  const warm = runner.run({ ...shape, command: 'true' });
  scopeOf(t).track(warm.id);
  assert.equal((await warm.result).success, true);
  assert.equal(readState(warm.id).warm, true, 'the warm path was taken');
  const cold = new DockerRunner().run({ ...shape, command: 'true' });
  scopeOf(t).track(cold.id);
  assert.equal((await cold.result).success, true);
  const span = async (id) => (await waitFor(() => spansOf(id).length ? spansOf(id) : null, { timeout: 5000, every: 20 }))[0];
  assert.equal((await span(warm.id)).attributes['light-runner.warm'], true);
  assert.equal((await span(cold.id)).attributes['light-runner.warm'], false);
});
