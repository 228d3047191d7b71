// Failures that need Docker reject `result` with a LightRunnerError (an image
// nobody has: CONTAINER_START_FAILED; a daemon that is missing, silent or
// refuses: DOCKER_UNREACHABLE within about 5 s), and isAvailable() tells
// whether the daemon answers.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner, LightRunnerError } from 'light-runner';
import { BUSYBOX, FIXTURES, assertGone, runNode, runToEnd, scopeOf } from './helpers.mjs';

const runner = new DockerRunner();

describe('an image nobody has rejects with CONTAINER_START_FAILED', () => {
  test('an unpullable image rejects with a LightRunnerError CONTAINER_START_FAILED', async (t) => {
    const image = 'localhost:1/light-runner-no-such-image:latest';
    const ex = runner.run({ image, command: 'true' });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof LightRunnerError, 'instanceof LightRunnerError');
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'LightRunnerError');
    assert.equal(err.code, 'CONTAINER_START_FAILED');
    assert.match(err.message, /light-runner-no-such-image/);
    const json = err.toJSON();
    assert.equal(json.name, 'LightRunnerError');
    assert.equal(json.code, 'CONTAINER_START_FAILED');
    assert.equal(json.message, err.message);
    if (err.dockerOp !== undefined) assert.equal(json.dockerOp, err.dockerOp);
    if (err.containerId !== undefined) assert.equal(json.containerId, err.containerId);
    assert.deepEqual(JSON.parse(JSON.stringify(err)), json);
    assertGone(ex.id);
  });

  test('an image name that does not exist in any reachable registry rejects the same way', async (t) => {
    const ex = runner.run({ image: `light-runner-does-not-exist-${process.pid}:latest`, command: 'true' });
    scopeOf(t).track(ex.id);
    const err = await ex.result.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof LightRunnerError);
    assert.equal(err.code, 'CONTAINER_START_FAILED');
    assertGone(ex.id);
  });
});

describe('daemon availability: isAvailable() and DOCKER_UNREACHABLE', () => {
  test('isAvailable() is true with a running daemon', async () => {
    assert.equal(await DockerRunner.isAvailable(), true);
  });

  test('DOCKER_HOST at a missing socket: DOCKER_UNREACHABLE quickly, isAvailable() false', { timeout: 60_000 }, async (t) => {
    const r = await runNode([path.join(FIXTURES, 'unreachable.mjs')], {
      env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent.sock' },
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    scopeOf(t).track(out.id);
    assert.equal(out.available, false);
    assert.ok(out.availableMs < 6000, `isAvailable took ${out.availableMs} ms`);
    assert.equal(out.isLightRunnerError, true);
    assert.equal(out.name, 'LightRunnerError');
    assert.equal(out.code, 'DOCKER_UNREACHABLE');
    assert.equal(out.json.code, 'DOCKER_UNREACHABLE');
    assert.ok(out.ms < 6000, `rejected after ${out.ms} ms`);
  });

  test('DOCKER_HOST at a socket that never answers: DOCKER_UNREACHABLE within about 5 s', { timeout: 60_000 }, async (t) => {
    const sock = path.join(scopeOf(t).tmp('lr-test-'), 'hang.sock');
    const r = await runNode([path.join(FIXTURES, 'unreachable.mjs'), 'hang', sock], {
      env: { ...process.env, DOCKER_HOST: `unix://${sock}` },
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    scopeOf(t).track(out.id);
    assert.equal(out.available, false);
    assert.ok(out.availableMs < 7000, `isAvailable took ${out.availableMs} ms`);
    assert.equal(out.isLightRunnerError, true);
    assert.equal(out.code, 'DOCKER_UNREACHABLE');
    assert.ok(out.ms < 7000, `rejected after ${out.ms} ms`);
  });

  test('DOCKER_HOST at a closed tcp port: DOCKER_UNREACHABLE', { timeout: 60_000 }, async (t) => {
    const r = await runNode([path.join(FIXTURES, 'unreachable.mjs')], {
      env: { ...process.env, DOCKER_HOST: 'tcp://127.0.0.1:1' },
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    scopeOf(t).track(out.id);
    assert.equal(out.available, false);
    assert.equal(out.code, 'DOCKER_UNREACHABLE');
    assert.ok(out.ms < 7000, `rejected after ${out.ms} ms`);
  });

  test('the DOCKER_HOST of a child did not leak: this process still reaches the daemon', async (t) => {
    const r = await runNode([path.join(FIXTURES, 'available.mjs')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).available, true);
    const { result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'true' });
    assert.equal(result.success, true);
  });
});
