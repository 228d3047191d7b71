// `input` of an attached run: exactly JSON.stringify(input) on the container's
// stdin, then EOF; large inputs arrive whole; a command that never reads its
// stdin still completes (or times out); no input is an empty stdin.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner } from 'light-runner';
import { BUSYBOX, FIXTURES, assertGone, runNode, runToEnd, scopeOf } from './helpers.mjs';

const runner = new DockerRunner();

describe('input is JSON on stdin, then EOF', () => {
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
