// A run's output outlives its container: it is kept beside the state file
// (`<id>.log`, 0600), capped by LIGHT_RUNNER_MAX_LOG_BYTES keeping the end,
// with the cap and what was dropped recorded in the state; deleteState and
// cleanupOldStates remove it with the state.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, deleteState, readState } from 'light-runner';
import { BUSYBOX, STATE_DIR, assertGone, rmrf, tmpdir } from './helpers.mjs';

const logFile = (dir, id) => path.join(dir, `${id}.log`);

async function replay(id) {
  const lines = [];
  const ex = DockerRunner.attach(id, { onLog: (line, meta) => lines.push({ line, stream: meta.stream }) });
  await ex.result;
  return lines;
}

/** Runs with env overrides for the duration of `fn` (read by the addon at call time). */
async function withEnv(vars, fn) {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

for (const detached of [false, true]) {
  const kind = detached ? 'detached' : 'attached';
  test(`kept (${kind}): the output is kept beside the state, 0600, and replayed after the container is gone`, { timeout: 60_000 }, async () => {
    const ex = new DockerRunner().run({
      image: BUSYBOX, command: 'echo first; echo oops >&2; printf "no newline"', detached,
    });
    try {
      const result = await (detached ? DockerRunner.attach(ex.id).result : ex.result);
      assert.equal(result.success, true);
      assertGone(ex.id);
      const file = logFile(STATE_DIR, ex.id);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      const records = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(records.map((r) => [r.stream, r.line]).sort(),
        [['stderr', 'oops'], ['stdout', 'first'], ['stdout', 'no newline']]);
      const state = readState(ex.id);
      assert.deepEqual(state.logs, { bytes: fs.statSync(file).size, lines: 3, droppedLines: 0, cap: 10 * 1024 * 1024 });
      assert.equal(state.logsTruncated, undefined);
      assert.deepEqual((await replay(ex.id)).map((l) => l.line).sort(), ['first', 'no newline', 'oops']);
      // No part of the rotation is left behind.
      assert.deepEqual(fs.readdirSync(STATE_DIR).filter((f) => f.includes(ex.id) && f.startsWith('.')), []);
    } finally {
      await ex.result.catch(() => {});
      deleteState(ex.id);
    }
    assert.equal(fs.existsSync(logFile(STATE_DIR, ex.id)), false, 'deleteState removed the kept output');
  });

  test(`kept (${kind}): LIGHT_RUNNER_MAX_LOG_BYTES keeps the end, on whole lines, and the state says what was dropped`, { timeout: 60_000 }, async () => {
    const N = 400;
    const cap = 4000;
    const ex = await withEnv({ LIGHT_RUNNER_MAX_LOG_BYTES: String(cap) }, async () => {
      const e = new DockerRunner().run({
        image: BUSYBOX, command: `for i in $(seq 1 ${N}); do echo "line $i"; done`, detached,
      });
      // The host that removes the container keeps the output with the cap it reads then.
      await (detached ? DockerRunner.attach(e.id).result : e.result);
      return e;
    });
    try {
      const state = readState(ex.id);
      const { logs } = state;
      assert.equal(logs.cap, cap);
      assert.ok(logs.bytes <= cap && logs.bytes > cap / 2, `kept ${logs.bytes} bytes`);
      assert.equal(logs.lines + logs.droppedLines, N);
      assert.ok(logs.droppedLines > 0);
      assert.equal(fs.statSync(logFile(STATE_DIR, ex.id)).size, logs.bytes);
      const lines = (await replay(ex.id)).map((l) => l.line);
      assert.equal(lines.length, logs.lines);
      const first = N - logs.lines + 1;
      assert.deepEqual(lines, Array.from({ length: logs.lines }, (_, i) => `line ${first + i}`),
        'the last lines, contiguous, ending with the last');
    } finally {
      deleteState(ex.id);
    }
  });
}

test('kept: LIGHT_RUNNER_MAX_LOG_BYTES=0 keeps nothing; the run is unaffected', { timeout: 60_000 }, async () => {
  const lines = [];
  const ex = await withEnv({ LIGHT_RUNNER_MAX_LOG_BYTES: '0' }, async () => {
    const e = new DockerRunner().run({ image: BUSYBOX, command: 'echo a; echo b', onLog: (l) => lines.push(l) });
    await e.result;
    return e;
  });
  try {
    assert.deepEqual(lines, ['a', 'b'], 'onLog still sees every line');
    assert.deepEqual(readState(ex.id).logs, { bytes: 0, lines: 0, droppedLines: 2, cap: 0 });
    assert.equal(fs.existsSync(logFile(STATE_DIR, ex.id)), false);
    assert.deepEqual(await replay(ex.id), []);
  } finally {
    deleteState(ex.id);
  }
});

test('kept: cleanupOldStates removes the kept output with its old state, never a running one\'s', { timeout: 60_000 }, async () => {
  const dir = tmpdir('lr-kept-');
  try {
    await withEnv({ LIGHT_RUNNER_STATE_DIR: dir }, async () => {
      const runner = new DockerRunner();
      const done = runner.run({ image: BUSYBOX, command: 'echo kept' });
      await done.result;
      assert.ok(fs.existsSync(logFile(dir, done.id)));
      const running = runner.run({ image: BUSYBOX, command: 'echo still; sleep 30', detached: true });
      // A rotation part of a run being written, and a stale one of a dead writer.
      fs.writeFileSync(path.join(dir, `.${running.id}.log.1.00000000.b`), '');
      fs.writeFileSync(logFile(dir, running.id), '');
      try {
        await withEnv({ LIGHT_RUNNER_STATE_TTL_MS: '0' }, async () => {
          assert.equal(DockerRunner.cleanupOldStates(), 1);
        });
        assert.equal(fs.existsSync(logFile(dir, done.id)), false, 'kept output removed with its state');
        assert.equal(fs.existsSync(path.join(dir, `${done.id}.json`)), false);
        assert.ok(fs.existsSync(logFile(dir, running.id)), 'a running run keeps its files');
      } finally {
        running.cancel();
        await running.result.catch(() => {});
        deleteState(running.id);
      }
      assert.deepEqual(fs.readdirSync(dir).filter((f) => f !== '.lock' && !f.startsWith('.cache')), [],
        'deleteState removed the state, the kept output and the rotation parts');
    });
  } finally {
    rmrf(dir);
  }
});

test('kept: a finished run is replayed from its kept output alone, without the daemon', { timeout: 60_000 }, async () => {
  const runner = new DockerRunner();
  const talks = runner.run({ image: BUSYBOX, command: 'echo said' });
  const silent = runner.run({ image: BUSYBOX, command: 'true' });
  try {
    await Promise.all([talks.result, silent.result]);
    await withEnv({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' }, async () => {
      assert.deepEqual(await replay(talks.id), [{ line: 'said', stream: 'stdout' }]);
      assert.deepEqual(await replay(silent.id), []);
      const all = [];
      for await (const l of silent.logs()) all.push(l);
      assert.deepEqual(all, []);
    });
  } finally {
    deleteState(talks.id);
    deleteState(silent.id);
  }
});
