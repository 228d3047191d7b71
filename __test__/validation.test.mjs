// The synchronous contract of run() and of the constructor: run() returns an
// Execution at once (unique ids, one result Promise), bad requests and bad
// options throw synchronously with a message naming the field (and the
// value), and Docker failures are reported through `result`, never thrown.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DockerRunner, Execution } from 'light-runner';
import { BUSYBOX, assertGone, scopeOf } from './helpers.mjs';

describe('run() is synchronous and validates its input', () => {
  const runner = new DockerRunner();

  test('run() returns an Execution synchronously; id format; result is one Promise', async (t) => {
    const ex = runner.run({ image: BUSYBOX, command: 'true', network: 'none' });
    scopeOf(t).track(ex.id);
    assert.ok(ex instanceof Execution);
    assert.ok(!(ex instanceof Promise));
    assert.match(ex.id, /^light-runner-[0-9a-f]{12}$/);
    const p1 = ex.result;
    const p2 = ex.result;
    assert.ok(p1 instanceof Promise);
    assert.equal(p1, p2, 'result is the same Promise object on every read');
    const r = await p1;
    assert.equal(ex.result, p1);
    assert.equal(r.success, true);
    assert.equal(await ex.result, r);
    assertGone(ex.id);
  });

  test('ids are unique', async (t) => {
    const exs = [];
    for (let i = 0; i < 5; i++) exs.push(runner.run({ image: BUSYBOX, command: 'true', network: 'none' }));
    for (const ex of exs) scopeOf(t).track(ex.id);
    for (const ex of exs) assert.match(ex.id, /^light-runner-[0-9a-f]{12}$/);
    assert.equal(new Set(exs.map((e) => e.id)).size, 5);
    await Promise.allSettled(exs.map((e) => e.result));
  });

  const badRequests = [
    ['no request', undefined, /request/],
    ['null request', null, /request/],
    ['a string request', 'light-runner-busybox', /request/],
    ['an array request', [BUSYBOX], /request/],
    ['missing image', {}, /image/],
    ['numeric image', { image: 5 }, /image/],
    ['empty image', { image: '' }, /image/],
    ['object image', { image: { name: BUSYBOX } }, /image/],
    ['numeric command', { image: BUSYBOX, command: 5 }, /command/],
    ['numeric entrypoint', { image: BUSYBOX, entrypoint: 5 }, /entrypoint/],
    ['command and entrypoint differ', { image: BUSYBOX, command: 'echo a', entrypoint: 'echo b' }, /command[\s\S]*entrypoint|entrypoint[\s\S]*command/],
    ['string timeout', { image: BUSYBOX, timeout: '1000' }, /timeout/],
    ['string env', { image: BUSYBOX, env: 'A=1' }, /env/],
    ['numeric network', { image: BUSYBOX, network: 1 }, /network/],
    ['numeric workdir', { image: BUSYBOX, workdir: 1 }, /workdir/],
    ['relative workdir', { image: BUSYBOX, workdir: 'app' }, /workdir/],
    ['numeric dir', { image: BUSYBOX, dir: 1 }, /dir/],
    ['non-array extract', { image: BUSYBOX, extract: { from: 'a', to: 'b' } }, /extract/],
    ['extract entry with wrong types', { image: BUSYBOX, extract: [{ from: 1, to: 'b' }] }, /extract/],
    ['non-array ignore', { image: BUSYBOX, ignore: '.git' }, /ignore/],
    ['non-function onLog', { image: BUSYBOX, onLog: 'console.log' }, /onLog/],
    ['non-AbortSignal signal', { image: BUSYBOX, signal: {} }, /signal/],
    ['non-boolean detached', { image: BUSYBOX, detached: 'yes' }, /detached/],
    ['input with detached', { image: BUSYBOX, input: { a: 1 }, detached: true }, /input/],
    ['input that is not JSON', { image: BUSYBOX, input: () => 1 }, /input/],
    ['a symbol inside extract', { image: BUSYBOX, extract: [{ from: 'a', to: Symbol('b') }] }, /extract/],
  ];
  for (const [name, req, re] of badRequests) {
    test(`run() throws synchronously: ${name}`, () => {
      assert.throws(() => runner.run(req), (e) => {
        assert.ok(e instanceof Error, 'an Error');
        assert.match(e.message, re);
        return true;
      });
    });
  }

  test('attach() with a non-string id throws a message naming the id', () => {
    assert.throws(() => DockerRunner.attach(5), /id/);
    assert.throws(() => new DockerRunner('fast'), /options/);
  });

  test('command and entrypoint both given and equal is accepted', async (t) => {
    const ex = runner.run({ image: BUSYBOX, command: 'exit 0', entrypoint: 'exit 0', network: 'none' });
    scopeOf(t).track(ex.id);
    assert.equal((await ex.result).success, true);
  });

  // Wrong types and unknown names throw at construction.
  const badOptions = [
    ['runtime', { runtime: 5 }, /runtime/, /5/],
    ['noNewPrivileges', { noNewPrivileges: 'no' }, /noNewPrivileges/, null],
    ['maxExtractBytes', { maxExtractBytes: -1 }, /maxExtractBytes/, null],
    ['memory', { memory: true }, /memory/, null],
    ['cpus', { cpus: [1] }, /cpus/, null],
    ['gpus', { gpus: {} }, /gpus/, null],
  ];
  for (const [field, opts, re, valueRe] of badOptions) {
    test(`constructor throws synchronously on a wrong ${field}: ${JSON.stringify(opts[field])}`, () => {
      assert.throws(() => new DockerRunner(opts), (e) => {
        assert.ok(e instanceof Error);
        assert.match(e.message, re);
        if (valueRe) assert.match(e.message, valueRe, 'the message names the value');
        return true;
      });
    });
  }

  // Invalid memory, cpus and gpus strings: as the original, the constructor
  // accepts them and every run's result rejects, naming field and value.
  const badValues = [
    ['memory', { memory: 'lots' }, /lots/],
    ['memory', { memory: '10x' }, /10x/],
    ['memory', { memory: '-5m' }, /-5m/],
    ['cpus', { cpus: '0' }, /0/],
    ['cpus', { cpus: '-1' }, /-1/],
    ['cpus', { cpus: 'two' }, /two/],
    ['gpus', { gpus: '-all' }, /-all/],
    ['gpus', { gpus: 'all;rm -rf /' }, /all;rm/],
    ['gpus', { gpus: '$(id)' }, /\$\(id\)/],
    ['gpus', { gpus: 'device=0|1' }, /device=0\|1/],
    // Any runtime the daemon registered is accepted (SPEC 15): one it did
    // not register rejects each run, naming it and the known ones.
    ['runtime', { runtime: 'docker' }, /docker.*not registered.*runc/],
  ];
  for (const [field, opts, valueRe] of badValues) {
    test(`an invalid ${field} ${JSON.stringify(opts[field])} rejects each run, not the constructor`, async (t) => {
      let r;
      assert.doesNotThrow(() => { r = new DockerRunner(opts); });
      const ex = r.run({ image: BUSYBOX, command: 'true' });
      scopeOf(t).track(ex.id);
      await assert.rejects(ex.result, (e) => {
        assert.equal(e.name, 'LightRunnerError');
        assert.match(e.message, new RegExp(`Invalid ${field}`));
        assert.match(e.message, valueRe, 'the message names the value');
        return true;
      });
    });
  }

  test('constructor accepts the documented option forms', () => {
    for (const o of [undefined, {}, { memory: '512m' }, { memory: '1G' }, { memory: '1048576' }, { memory: '64K' },
      { cpus: '1.5' }, { cpus: '0.25' }, { gpus: 'all' }, { gpus: 2 }, { gpus: '0,1' }, { gpus: 'device=0,1' },
      { gpus: '"device=0"' }, { runtime: 'runc' }, { runtime: 'runsc' }, { runtime: 'kata' },
      { noNewPrivileges: false }, { maxExtractBytes: 1024 }]) {
      assert.doesNotThrow(() => new DockerRunner(o), JSON.stringify(o));
    }
  });

  test('Docker failures are reported through result, never thrown by run()', async (t) => {
    let ex;
    assert.doesNotThrow(() => {
      ex = runner.run({ image: BUSYBOX, command: 'true', network: 'light-runner-no-such-network-xyz' });
    });
    scopeOf(t).track(ex.id);
    await assert.rejects(ex.result);
  });
});
