// What runs in the container of an attached run: `command` through `sh -c`,
// `entrypoint` as its alias, the image's own entrypoint/cmd when neither is
// given, exit codes passed through, and `env` reaching the command.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { DockerRunner } from 'light-runner';
import {
  BUSYBOX, assertGone, assertResultShape, docker, dockerOk, finish, inspectJson, runToEnd, startedRun,
} from './helpers.mjs';

const runner = new DockerRunner();

describe('command, entrypoint, the image\'s own entrypoint, exit codes', () => {
  const OWN = `light-runner-test-owncmd:${process.pid}`;
  before(() => {
    const tmp = `lr-test-owncmd-${process.pid}`;
    docker('create', '--name', tmp, BUSYBOX);
    try {
      docker('commit', '--change', 'CMD ["echo","hello from the image cmd"]', tmp, OWN);
    } finally {
      dockerOk('rm', '-f', tmp);
    }
  });
  after(() => { dockerOk('rmi', '-f', OWN); });

  test('command runs through sh -c', async (t) => {
    const { id, result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'A=shell; echo "$A works" && echo $((6*7))' });
    assertResultShape(result);
    assert.equal(result.success, true);
    assert.equal(result.exitCode, 0);
    assert.equal(result.cancelled, false);
    assert.equal(result.timedOut, false);
    assert.equal('extracted' in result, false, 'no extracted without extract');
    assert.deepEqual(lines, ['shell works', '42']);
    assertGone(id);
  });

  test('the container is created with Entrypoint sh and Cmd -c <command>', async (t) => {
    const command = 'echo started; sleep 30';
    const { ex, started } = startedRun(t, runner, { image: BUSYBOX, command });
    try {
      await started;
      const info = inspectJson(ex.id);
      assert.deepEqual(info.Config.Entrypoint, ['sh']);
      assert.deepEqual(info.Config.Cmd, ['-c', command]);
      ex.cancel();
      await ex.result;
    } finally {
      await finish(ex);
    }
  });

  test('entrypoint is an alias of command', async (t) => {
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, entrypoint: 'echo one; echo two | tr a-z A-Z' });
    assert.equal(result.success, true);
    assert.deepEqual(lines, ['one', 'TWO']);
  });

  test('neither command nor entrypoint: the image\'s own entrypoint/cmd runs', async (t) => {
    const { id, result, lines } = await runToEnd(t, runner, { image: OWN });
    assert.equal(result.success, true);
    assert.equal(result.exitCode, 0);
    assert.deepEqual(lines, ['hello from the image cmd']);
    assertGone(id);
  });

  for (const code of [1, 3, 42, 255]) {
    test(`exit ${code} passes through as exitCode ${code}, success false`, async (t) => {
      const { id, result } = await runToEnd(t, runner, { image: BUSYBOX, command: `echo bye; exit ${code}` });
      assertResultShape(result);
      assert.equal(result.exitCode, code);
      assert.equal(result.success, false);
      assert.equal(result.cancelled, false);
      assert.equal(result.timedOut, false);
      assertGone(id);
    });
  }

  test('a command that is not found gives exit 127, not a rejection', async (t) => {
    const { result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'no-such-program-xyz' });
    assert.equal(result.exitCode, 127);
    assert.equal(result.success, false);
  });
});

describe('env reaches the command', () => {
  test('env is passed; names not matching ^[A-Za-z_][A-Za-z0-9_]*$ are dropped', async (t) => {
    const env = {
      GOOD: 'value with spaces = and $dollar',
      _under: 'u',
      Mixed_9: 'm',
      EMPTY: '',
      '1BAD': 'v-digit-first',
      'BAD-NAME': 'v-dash',
      'A=B': 'v-equals',
      'has space': 'v-space',
      'DOT.NAME': 'v-dot',
      '': 'v-empty-name',
    };
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'env', env });
    assert.equal(result.success, true);
    assert.ok(lines.includes('GOOD=value with spaces = and $dollar'), lines.join('\n'));
    assert.ok(lines.includes('_under=u'));
    assert.ok(lines.includes('Mixed_9=m'));
    for (const bad of ['v-digit-first', 'v-dash', 'v-equals', 'v-space', 'v-dot', 'v-empty-name']) {
      assert.ok(!lines.some((l) => l.includes(bad)), `value ${bad} of an invalid name leaked: ${lines.join('\n')}`);
    }
    assert.ok(!lines.some((l) => l.startsWith('A=')));
  });

  test('an env value reaches the command through the shell', async (t) => {
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'echo "[$GREETING]"', env: { GREETING: 'hi there' } });
    assert.equal(result.success, true);
    assert.deepEqual(lines, ['[hi there]']);
  });
});
