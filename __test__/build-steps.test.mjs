// Build steps (`run`, SPEC section 12, issue 7): a Dockerfile `FROM image`
// plus one RUN per step is built through the Engine API from a tar context
// made in Rust, tagged light-runner-cache:<sha256 of JSON [image, steps]>,
// and the run uses it. Identical requests reuse it; concurrent identical
// first runs build once, in one process and across processes; a failing
// step rejects IMAGE_BUILD_FAILED with its last output lines.
//
// Every test uses steps with a random token, so no other test's cache (or
// the builder's layer cache) can answer for it, and removes its images.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner, LightRunnerError, deleteState, readState } from 'light-runner';
import {
  BUSYBOX, FIXTURES, STATE_DIR, assertGone, containerExists, docker, dockerOk, rmrf, runNode, volumeExists, waitFor,
} from './helpers.mjs';

const token = () => crypto.randomBytes(6).toString('hex');

/** The documented tag formula. */
function cacheTag(image, steps) {
  return `light-runner-cache:${crypto.createHash('sha256').update(JSON.stringify([image, steps])).digest('hex')}`;
}

function removeCache(tag) {
  dockerOk('rmi', tag);
  rmrf(path.join(STATE_DIR, '.cache-use', tag.replace(':', '-')));
}

const imageExists = (ref) => dockerOk('image', 'inspect', ref);

/** Daemon events between two host times (ms), with an optional filter. */
function events(sinceMs, untilMs, ...filters) {
  return docker('events', '--since', (sinceMs / 1000).toFixed(3), '--until', (untilMs / 1000).toFixed(3),
    ...filters.flatMap((f) => ['--filter', f]), '--format', '{{json .}}')
    .split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** How many times `tag` was tagged (one per build) in the window. */
function tagEvents(tag, sinceMs, untilMs) {
  return events(sinceMs, untilMs, 'type=image', 'event=tag').filter((e) => e.Actor?.Attributes?.name === tag).length;
}

async function run(request) {
  const lines = [];
  const ex = new DockerRunner().run({
    image: BUSYBOX,
    network: 'none',
    ...request,
    onLog: (l) => {
      lines.push(l);
      request.onLog?.(l);
    },
  });
  try {
    const result = await ex.result;
    return { ex, result, lines };
  } catch (error) {
    return { ex, error, lines };
  }
}

describe('build steps', () => {
  test('built through the Engine API as light-runner-cache:<sha256>, output to onLog, the run uses it; a second run reuses it', async () => {
    const tok = token();
    const steps = [`echo ${tok} > /built`, 'echo "quoted \\"x\\" and $((6*7))"', 'printf no-newline-at-end'];
    const tag = cacheTag(BUSYBOX, steps);
    assert.equal(imageExists(tag), false, 'precondition: no such cache image');
    const ids = [];
    try {
      const since = Date.now() - 1000;
      const first = await run({ run: steps, command: 'cat /built' });
      ids.push(first.ex.id);
      const until = Date.now() + 1000;
      assert.equal(first.error, undefined, first.error?.message);
      assert.equal(first.result.success, true);
      // Build output, then the job's own output.
      assert.ok(first.lines.some((l) => /^Step 1\/\d+ : FROM /.test(l)), first.lines.join('\n'));
      assert.ok(first.lines.includes('quoted "x" and 42'), first.lines.join('\n'));
      assert.ok(first.lines.includes('no-newline-at-end'), first.lines.join('\n'));
      assert.ok(first.lines.includes(`Successfully tagged ${tag}`), first.lines.join('\n'));
      assert.equal(first.lines.at(-1), tok, 'the container ran the built image');
      assert.ok(imageExists(tag));
      const img = JSON.parse(docker('image', 'inspect', tag))[0];
      assert.equal(img.Config.Labels['light-runner.cache-base'], BUSYBOX);
      assert.equal(tagEvents(tag, since, until), 1);
      assert.equal(fs.existsSync(path.join(os.tmpdir(), `${tag.replace(':', '-')}.build.lock`)), false,
        'no lock file left for the tag');
      // The base image is local: it was not pulled. (Other files running
      // at the same time may pull images of their own: only the base counts.)
      assert.deepEqual(events(since, until, 'type=image', 'event=pull')
        .filter((e) => [e.id, e.Actor?.ID].some((n) => String(n).split(':')[0] === BUSYBOX.split(':')[0])), []);
      const st = readState(first.ex.id);
      assert.deepEqual(st.run, steps);
      assert.equal(st.builtImage, tag);
      assert.equal(st.image, BUSYBOX);
      deleteState(first.ex.id);
      assertGone(first.ex.id);

      const since2 = Date.now() - 1000;
      const second = await run({ run: steps, command: 'cat /built' });
      ids.push(second.ex.id);
      const until2 = Date.now() + 1000;
      assert.equal(second.result.success, true);
      assert.deepEqual(second.lines, [tok], 'no build output: nothing was built');
      assert.equal(tagEvents(tag, since2, until2), 0);
      assert.equal(readState(second.ex.id).builtImage, tag);
      deleteState(second.ex.id);
      assertGone(second.ex.id);
    } finally {
      for (const id of ids) deleteState(id);
      removeCache(tag);
    }
  });

  test('five concurrent identical first runs in one process build once', async () => {
    const tok = token();
    const steps = [`sleep 2; echo ${tok} > /built`];
    const tag = cacheTag(BUSYBOX, steps);
    let runs = [];
    try {
      const since = Date.now() - 1000;
      runs = await Promise.all(Array.from({ length: 5 }, () => run({ run: steps, command: 'cat /built' })));
      const until = Date.now() + 1000;
      for (const r of runs) {
        assert.equal(r.error, undefined, r.error?.message);
        assert.equal(r.result.success, true);
        assert.equal(r.lines.at(-1), tok);
      }
      assert.equal(tagEvents(tag, since, until), 1, 'one build');
      const builders = runs.filter((r) => r.lines.some((l) => l.startsWith('Step 1/')));
      assert.equal(builders.length, 1, 'one run saw build output');
      for (const r of runs) assertGone(r.ex.id);
    } finally {
      for (const r of runs) deleteState(r.ex.id);
      removeCache(tag);
    }
  });

  test('five processes starting the same first run build once (per-tag file lock), without any docker CLI', async () => {
    const tok = token();
    const steps = [`sleep 2; echo ${tok} > /built`];
    const tag = cacheTag(BUSYBOX, steps);
    // No docker binary reachable: everything goes through the Engine API.
    const env = { ...process.env, PATH: '/nonexistent' };
    const request = JSON.stringify({ image: BUSYBOX, network: 'none', run: steps, command: 'cat /built' });
    try {
      const since = Date.now() - 1000;
      const at = String(Date.now() + 3000);
      const outs = await Promise.all(Array.from({ length: 5 }, () => runNode(
        [path.join(FIXTURES, 'build-steps-run.mjs'), request, at], { env, timeout: 120_000 },
      )));
      const until = Date.now() + 1000;
      const results = outs.map((o) => {
        assert.equal(o.code, 0, o.stderr);
        return JSON.parse(o.stdout.trim().split('\n').at(-1));
      });
      for (const r of results) {
        assert.equal(r.error, undefined, r.error?.message);
        assert.equal(r.result.success, true);
        assert.equal(r.lines.at(-1), tok);
        assertGone(r.id);
      }
      assert.equal(tagEvents(tag, since, until), 1, 'one build across five processes');
      assert.equal(fs.existsSync(path.join(os.tmpdir(), `${tag.replace(':', '-')}.build.lock`)), false);
      assert.equal(results.filter((r) => r.lines.some((l) => l.startsWith('Step 1/'))).length, 1);
    } finally {
      removeCache(tag);
    }
  });

  test('a failing step rejects IMAGE_BUILD_FAILED naming the step with its last output lines; nothing else is created', async () => {
    const tok = token();
    const failing = `echo out-${tok}; echo err-${tok} >&2; exit 3`;
    const steps = [`echo ok-${tok} > /ok`, failing, `echo never-${tok}`];
    const tag = cacheTag(BUSYBOX, steps);
    const since = Date.now() - 1000;
    const r = await run({ run: steps, command: 'true' });
    const until = Date.now() + 1000;
    try {
      assert.ok(r.error instanceof LightRunnerError, String(r.error));
      assert.equal(r.error.code, 'IMAGE_BUILD_FAILED');
      const m = r.error.message;
      assert.ok(m.includes(JSON.stringify(failing)), m);
      // stdout and stderr of the step, in whichever order they arrived.
      assert.ok(m.includes(`out-${tok}\n`) && m.includes(`err-${tok}\n`), m);
      assert.match(m, /returned a non-zero code: 3$/);
      assert.ok(!m.includes(`ok-${tok}`) && !m.includes('never-'), `only the failing step's lines: ${m}`);
      assert.ok(!m.includes('\u001b') && !r.lines.some((l) => l.includes('\u001b')), 'no terminal colour codes');
      // Build output reached onLog, stderr included.
      assert.ok(r.lines.includes(`err-${tok}`), r.lines.join('\n'));
      assert.ok(!r.lines.includes(`never-${tok}`));
      assert.equal(imageExists(tag), false);
      // The run's own container and volume were never created.
      const mine = events(since, until).filter((e) => e.Actor?.ID === r.ex.id || e.Actor?.Attributes?.name === r.ex.id);
      assert.deepEqual(mine.map((e) => `${e.Type} ${e.Action}`), []);
      assert.equal(containerExists(r.ex.id), false);
      assert.equal(volumeExists(r.ex.id), false);
      const st = readState(r.ex.id);
      assert.equal(st.status, 'failed');
      assert.deepEqual(st.run, steps);
      assert.equal(st.builtImage, undefined);
      // No use of an image that does not exist is remembered.
      assert.equal(fs.existsSync(path.join(STATE_DIR, '.cache-use', tag.replace(':', '-'))), false);
    } finally {
      deleteState(r.ex.id);
      // The builder leaves the layer of the step that succeeded (untagged).
      const at = r.lines.findIndex((l) => l.startsWith('Step 3/'));
      const intermediate = /^ ---> ([0-9a-f]{12})$/.exec(r.lines[at - 1] ?? '')?.[1];
      if (intermediate) dockerOk('rmi', intermediate);
      rmrf(path.join(STATE_DIR, '.cache-use', tag.replace(':', '-')));
    }
  });

  test('cancel during the build: the run ends cancelled at once, creates nothing, and the daemon stops the build', async () => {
    const tok = token();
    const steps = [`sleep 30; echo ${tok}`];
    const tag = cacheTag(BUSYBOX, steps);
    const lines = [];
    let building;
    const started = new Promise((r) => { building = r; });
    const since = Date.now() - 1000;
    const ex = new DockerRunner().run({
      image: BUSYBOX, network: 'none', run: steps, command: 'true',
      onLog: (l) => { lines.push(l); if (l.startsWith(' ---> Running in ')) building(l.slice(' ---> Running in '.length)); },
    });
    try {
      const buildContainer = await started;
      assert.ok(containerExists(buildContainer), 'the step runs in a container of the builder');
      const t0 = Date.now();
      ex.cancel();
      const r = await ex.result;
      const waited = Date.now() - t0;
      assert.equal(r.cancelled, true);
      assert.equal(r.success, false);
      assert.ok(waited < 10_000, `resolved ${waited} ms after the cancel, not after the 30 s step`);
      assert.equal(readState(ex.id).status, 'cancelled');
      // The step's container goes: the build was abandoned, not left running.
      await waitFor(() => !containerExists(buildContainer), { timeout: 15_000 });
      const mine = events(since, Date.now() + 1000).filter((e) => e.Actor?.ID === ex.id || e.Actor?.Attributes?.name === ex.id);
      assert.deepEqual(mine.map((e) => `${e.Type} ${e.Action}`), []);
      assert.equal(imageExists(tag), false);
    } finally {
      deleteState(ex.id);
      removeCache(tag);
    }
  });

  test('a cancelled waiter does not stop the build; a cancelled builder leaves the build to the waiter', async () => {
    const tok = token();
    const steps = [`sleep 4; echo ${tok} > /built`];
    const tag = cacheTag(BUSYBOX, steps);
    const ids = [];
    try {
      // The waiter is cancelled: the builder finishes and uses the image.
      let building;
      const started = new Promise((r) => { building = r; });
      const builder = run({
        run: steps, command: 'cat /built', onLog: (l) => { if (l.startsWith(' ---> Running in ')) building(); },
      });
      await started;
      const waiter = new DockerRunner().run({ image: BUSYBOX, network: 'none', run: steps, command: 'cat /built' });
      ids.push(waiter.id);
      waiter.cancel();
      const w = await waiter.result;
      assert.equal(w.cancelled, true);
      const b = await builder;
      ids.push(b.ex.id);
      assert.equal(b.error, undefined, b.error?.message);
      assert.equal(b.lines.at(-1), tok);
      assert.ok(imageExists(tag));
      assertGone(waiter.id);
      assertGone(b.ex.id);
    } finally {
      for (const id of ids) deleteState(id);
      removeCache(tag);
    }
    const tok2 = token();
    const steps2 = [`sleep 4; echo ${tok2} > /built`];
    const tag2 = cacheTag(BUSYBOX, steps2);
    const ids2 = [];
    try {
      // The builder is cancelled: the waiter builds and runs.
      let building;
      const started = new Promise((r) => { building = r; });
      const first = new DockerRunner().run({
        image: BUSYBOX, network: 'none', run: steps2, command: 'cat /built',
        onLog: (l) => { if (l.startsWith(' ---> Running in ')) building(); },
      });
      ids2.push(first.id);
      await started;
      const since = Date.now() - 1000;
      const second = run({ run: steps2, command: 'cat /built' });
      first.cancel();
      assert.equal((await first.result).cancelled, true);
      const s = await second;
      ids2.push(s.ex.id);
      assert.equal(s.error, undefined, s.error?.message);
      assert.equal(s.lines.at(-1), tok2);
      assert.equal(tagEvents(tag2, since, Date.now() + 1000), 1, 'the waiter built it once');
    } finally {
      for (const id of ids2) deleteState(id);
      removeCache(tag2);
    }
  });

  test('detached: the state file records the steps in run and the built image in builtImage', async () => {
    const tok = token();
    const steps = [`echo ${tok} > /built`];
    const tag = cacheTag(BUSYBOX, steps);
    const ex = new DockerRunner().run({
      image: BUSYBOX, network: 'none', detached: true, run: steps, command: `test "$(cat /built)" = ${tok}`,
    });
    try {
      assert.deepEqual(readState(ex.id).run, steps, 'recorded from run() on');
      const result = await ex.result;
      assert.equal(result.success, true, JSON.stringify(result));
      const st = readState(ex.id);
      assert.equal(st.status, 'exited');
      assert.deepEqual(st.run, steps);
      assert.equal(st.builtImage, tag);
      assert.equal(st.image, BUSYBOX);
      await waitFor(() => !containerExists(ex.id) && !volumeExists(ex.id), { timeout: 15_000 });
      assertGone(ex.id);
    } finally {
      deleteState(ex.id);
      removeCache(tag);
    }
  });
});
