// Issue 2, points 3, 5, 6, 7, 8, 10 and 13: attached runs end to end against
// the real daemon.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DockerRunner, LightRunnerError } from 'light-runner';
import {
  BUSYBOX, FIXTURES, assertGone, assertResultShape, countContainerEvents, docker, dockerOk, finish, inspectJson,
  runNode, runToEnd, scopeOf, startedRun,
} from './helpers.mjs';

const runner = new DockerRunner();

describe('point 3: command, entrypoint, the image\'s own entrypoint, exit codes', () => {
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

describe('point 5: input', () => {
  // od prints stdin byte by byte; cat only ends on EOF.
  const DUMP = 'od -An -v -tx1 | tr -d " \\n"; echo';
  const values = [
    ['an object', { a: 1, s: 'héllo "quoted" \\ back\nnew\tline', arr: [1, null, true, 2.5], nested: { e: {} }, emoji: '😀', u: '\u2028' }],
    ['an array', [1, 'two', [3]]],
    ['a string', 'just a string'],
    ['a number', 0],
    ['false', false],
    ['null', null],
  ];
  for (const [name, input] of values) {
    test(`stdin is exactly JSON.stringify(input), then EOF: ${name}`, async (t) => {
      const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: DUMP, input, timeout: 60_000 });
      assert.equal(result.timedOut, false, 'stdin reached EOF');
      assert.equal(result.success, true);
      assert.deepEqual(lines, [Buffer.from(JSON.stringify(input), 'utf8').toString('hex')]);
    });
  }

  test('a large input (1 MB) arrives whole', async (t) => {
    const input = { big: 'x'.repeat(1024 * 1024), tail: 'end' };
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'wc -c; md5sum', input, timeout: 60_000 });
    assert.equal(result.success, true);
    const json = JSON.stringify(input);
    assert.equal(Number(lines[0].trim()), Buffer.byteLength(json));
  });

  test('the whole input is readable by a program that reads to EOF', async (t) => {
    const input = { n: 42, list: ['a', 'b'] };
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'cat; echo; echo EOF-seen', input, timeout: 60_000 });
    assert.equal(result.success, true);
    assert.deepEqual(lines, [JSON.stringify(input), 'EOF-seen']);
  });

  // Run in a child process: a run that never settles keeps its host alive.
  for (const [name, command, timeout] of [
    ['a command that never reads stdin, with a 1 MB input, still completes', 'echo ignoring-stdin; exit 0', 30_000],
    ['the timeout still fires when a large input is never read', 'sleep 60', 3_000],
  ]) {
    test(name, { timeout: 120_000 }, async (t) => {
      const r = await runNode([path.join(FIXTURES, 'run.mjs'), JSON.stringify({ image: BUSYBOX, command, timeout }), String(1024 * 1024)], { timeout: 60_000 });
      const id = scopeOf(t).track(r.stderr.match(/id (light-runner-[0-9a-f]{12})/)?.[1]);
      assert.ok(id, `the child printed its run id: ${r.stderr}`);
      assert.equal(r.signal, null, `the run never settled (host killed after 60 s); stdout=${r.stdout}`);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.error, undefined, JSON.stringify(out.error));
      if (timeout === 30_000) {
        assert.equal(out.result.success, true);
        assert.equal(out.result.exitCode, 0);
        assert.equal(out.result.timedOut, false);
      } else {
        assert.equal(out.result.timedOut, true);
        assert.equal(out.result.success, false);
      }
      assertGone(id);
    });
  }

  test('no input: stdin is empty, reading it does not hang', async (t) => {
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'cat; echo after-cat', timeout: 60_000 });
    assert.equal(result.timedOut, false);
    assert.equal(result.success, true);
    assert.deepEqual(lines, ['after-cat']);
  });
});

describe('point 6: timeout', () => {
  test('expiry kills the container: success false, timedOut true, non-zero exit', async (t) => {
    const { id, result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60; echo finished', timeout: 2000 });
    assertResultShape(result);
    assert.equal(result.timedOut, true);
    assert.equal(result.success, false);
    assert.equal(result.cancelled, false);
    assert.notEqual(result.exitCode, 0);
    assert.ok(result.duration < 60_000, 'killed before the command ended');
    assert.deepEqual(lines, ['started']);
    assertGone(id);
  });

  test('a process that ignores SIGTERM is still killed at expiry', async (t) => {
    const { id, result } = await runToEnd(t, runner, { image: BUSYBOX, command: "trap '' TERM INT; echo started; sleep 60", timeout: 1500 });
    assert.equal(result.timedOut, true);
    assert.equal(result.success, false);
    assert.notEqual(result.exitCode, 0);
    assert.ok(result.duration < 60_000);
    assertGone(id);
  });

  test('timeout 0 means none', async (t) => {
    const { result } = await runToEnd(t, runner, { image: BUSYBOX, command: 'sleep 2; echo ok', timeout: 0 });
    assert.equal(result.success, true);
    assert.equal(result.timedOut, false);
  });

  test('a run longer than 2 minutes with a larger timeout completes (no 120 s client timeout)',
    { timeout: 300_000 }, async (t) => {
      const { id, result, lines } = await runToEnd(t, runner, {
        image: BUSYBOX, command: 'echo begin; sleep 125; echo done', timeout: 200_000,
      });
      assertResultShape(result);
      assert.equal(result.timedOut, false);
      assert.equal(result.cancelled, false);
      assert.equal(result.exitCode, 0);
      assert.equal(result.success, true);
      assert.deepEqual(lines, ['begin', 'done']);
      assert.ok(result.duration >= 125_000, `duration ${result.duration}`);
      assertGone(id);
    });
});

describe('point 7: cancel() and AbortSignal', () => {
  test('cancel() mid-run kills the container: cancelled true', async (t) => {
    const { ex, started, lines } = startedRun(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60; echo finished' });
    try {
      await started;
      assert.equal(ex.cancelled, false);
      const ret = ex.cancel();
      assert.equal(ret, undefined, 'cancel() is synchronous');
      assert.equal(ex.cancelled, true, 'marked cancelled at once');
      const result = await ex.result;
      assertResultShape(result);
      assert.equal(result.cancelled, true);
      assert.equal(result.success, false);
      assert.equal(result.timedOut, false);
      assert.ok(result.duration < 60_000);
      assert.deepEqual(lines, ['started']);
      assertGone(ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('cancel() kills a process that ignores SIGTERM', async (t) => {
    const { ex, started } = startedRun(t, runner, { image: BUSYBOX, command: "trap '' TERM INT; echo started; sleep 60" });
    try {
      await started;
      ex.cancel();
      const result = await ex.result;
      assert.equal(result.cancelled, true);
      assert.equal(result.success, false);
      assert.ok(result.duration < 60_000);
      assertGone(ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('a run that ends normally is not cancelled', async (t) => {
    const ex = runner.run({ image: BUSYBOX, command: 'true' });
    scopeOf(t).track(ex.id);
    const result = await ex.result;
    assert.equal(result.cancelled, false);
    assert.equal(ex.cancelled, false);
  });

  test('cancel() twice and after the end is harmless', async (t) => {
    const { ex, started } = startedRun(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60' });
    try {
      await started;
      ex.cancel();
      ex.cancel();
      const result = await ex.result;
      assert.equal(result.cancelled, true);
      ex.cancel();
      assert.equal(await ex.result, result);
    } finally {
      await finish(ex);
    }
  });

  test('AbortSignal aborted mid-run cancels the run', async (t) => {
    const ac = new AbortController();
    const { ex, started } = startedRun(t, runner, { image: BUSYBOX, command: 'echo started; sleep 60', signal: ac.signal });
    try {
      await started;
      ac.abort();
      const result = await ex.result;
      assert.equal(result.cancelled, true);
      assert.equal(result.success, false);
      assert.equal(result.timedOut, false);
      assert.equal(ex.cancelled, true);
      assertGone(ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('an already-aborted signal: the container is never started', async (t) => {
    const since = Date.now() - 1000;
    const ex = runner.run({ image: BUSYBOX, command: 'echo should-not-run', signal: AbortSignal.abort(), onLog: () => assert.fail('logged') });
    scopeOf(t).track(ex.id);
    const result = await ex.result;
    assertResultShape(result);
    assert.equal(result.cancelled, true);
    assert.equal(result.success, false);
    assert.equal(ex.cancelled, true);
    assertGone(ex.id);
    assert.equal(countContainerEvents(ex.id, 'start', since), 0, 'no start event for the container');
  });

  test('cancel() right after run() prevents the start', async (t) => {
    const since = Date.now() - 1000;
    const ex = runner.run({ image: BUSYBOX, command: 'echo should-not-run; sleep 30', onLog: () => assert.fail('logged') });
    scopeOf(t).track(ex.id);
    ex.cancel();
    const result = await ex.result;
    assert.equal(result.cancelled, true);
    assert.equal(result.success, false);
    assertGone(ex.id);
    assert.equal(countContainerEvents(ex.id, 'start', since), 0, 'no start event for the container');
  });
});

describe('point 8: onLog', () => {
  test('stdout and stderr lines in order per stream; empty lines skipped; last line without newline', async (t) => {
    const command = [
      'for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done',
      'echo', 'echo "" >&2', 'printf "\\n\\n"',
      'echo "  spaced  "',
      'printf "err-last" >&2',
      'printf "out-last"',
    ].join('; ');
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command });
    assert.equal(result.success, true);
    assert.ok(!lines.includes(''), 'no empty line delivered');
    for (const l of lines) assert.ok(!l.endsWith('\n') && !l.endsWith('\r'), `line without newline: ${JSON.stringify(l)}`);
    assert.deepEqual(lines.filter((l) => l.startsWith('out')), ['out1', 'out2', 'out3', 'out4', 'out5', 'out-last']);
    assert.deepEqual(lines.filter((l) => l.startsWith('err')), ['err1', 'err2', 'err3', 'err4', 'err5', 'err-last']);
    assert.ok(lines.includes('  spaced  '));
    assert.equal(lines.length, 13);
  });

  test('a line split across writes is delivered once, whole', async (t) => {
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'printf "hel"; sleep 1; printf "lo\\nwor"; sleep 1; printf "ld"' });
    assert.equal(result.success, true);
    assert.deepEqual(lines, ['hello', 'world']);
  });

  test('UTF-8 lines arrive intact', async (t) => {
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'echo "héllo wörld 😀 中文"' });
    assert.equal(result.success, true);
    assert.deepEqual(lines, ['héllo wörld 😀 中文']);
  });

  test('20,000 stdout lines arrive complete and in order', { timeout: 120_000 }, async (t) => {
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'seq 1 20000' });
    assert.equal(result.success, true);
    assert.equal(lines.length, 20000);
    for (let i = 0; i < 20000; i++) if (lines[i] !== String(i + 1)) assert.fail(`line ${i}: ${lines[i]}`);
  });

  test('20,000 lines on each of stdout and stderr, each in order', { timeout: 120_000 }, async (t) => {
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'seq 1 20000 | sed s/^/o/ & seq 1 20000 | sed s/^/e/ >&2; wait' });
    assert.equal(result.success, true);
    const o = lines.filter((l) => l[0] === 'o');
    const e = lines.filter((l) => l[0] === 'e');
    assert.equal(o.length, 20000);
    assert.equal(e.length, 20000);
    assert.equal(lines.length, 40000);
    for (let i = 0; i < 20000; i++) {
      if (o[i] !== `o${i + 1}`) assert.fail(`stdout line ${i}: ${o[i]}`);
      if (e[i] !== `e${i + 1}`) assert.fail(`stderr line ${i}: ${e[i]}`);
    }
  });

  test('an onLog that throws does not crash the process or lose the run', async (t) => {
    const seen = [];
    const ex = runner.run({
      image: BUSYBOX,
      command: 'echo one; echo two; echo three; exit 0',
      onLog: (l) => { seen.push(l); throw new Error(`onLog failure on ${l}`); },
    });
    scopeOf(t).track(ex.id);
    const result = await ex.result;
    assert.equal(result.success, true);
    assert.equal(result.exitCode, 0);
    assert.deepEqual(seen, ['one', 'two', 'three'], 'every line still delivered');
    assertGone(ex.id);
  });

  test('a single 300 KB line arrives whole', async (t) => {
    const { result, lines } = await runToEnd(t, runner, { image: BUSYBOX, command: 'head -c 300000 /dev/zero | tr "\\0" a; echo; echo end' });
    assert.equal(result.success, true);
    assert.equal(lines.length, 2);
    assert.equal(lines[0], 'a'.repeat(300000));
    assert.equal(lines[1], 'end');
  });

  test('a run without onLog works', async (t) => {
    const ex = runner.run({ image: BUSYBOX, command: 'seq 1 1000; exit 4' });
    scopeOf(t).track(ex.id);
    const result = await ex.result;
    assert.equal(result.exitCode, 4);
  });
});

describe('point 10: env', () => {
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

describe('point 13: errors and availability', () => {
  test('isAvailable() is true with a running daemon', async () => {
    assert.equal(await DockerRunner.isAvailable(), true);
  });

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

  test('DOCKER_HOST at a missing socket: DOCKER_UNREACHABLE quickly, isAvailable() false', { timeout: 60_000 }, async () => {
    const r = await runNode([path.join(FIXTURES, 'unreachable.mjs')], {
      env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent.sock' },
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
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
    assert.equal(out.available, false);
    assert.ok(out.availableMs < 7000, `isAvailable took ${out.availableMs} ms`);
    assert.equal(out.isLightRunnerError, true);
    assert.equal(out.code, 'DOCKER_UNREACHABLE');
    assert.ok(out.ms < 7000, `rejected after ${out.ms} ms`);
  });

  test('DOCKER_HOST at a closed tcp port: DOCKER_UNREACHABLE', { timeout: 60_000 }, async () => {
    const r = await runNode([path.join(FIXTURES, 'unreachable.mjs')], {
      env: { ...process.env, DOCKER_HOST: 'tcp://127.0.0.1:1' },
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
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
