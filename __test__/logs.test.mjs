// onLog of an attached run: one call per stdout/stderr line, in order per
// stream, without the newline, empty lines skipped, the last unterminated line
// delivered; split writes, UTF-8, many lines and long lines arrive whole; a
// throwing onLog neither crashes the process nor loses the run.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DockerRunner } from 'light-runner';
import { BUSYBOX, assertGone, runToEnd, scopeOf } from './helpers.mjs';

const runner = new DockerRunner();

describe('onLog delivers each output line', () => {
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
