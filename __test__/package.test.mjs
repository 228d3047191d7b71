// Issue 2, points 1 and 2: the package (ESM/CJS entries, index.d.ts) and the
// synchronous contract of run() and the constructor.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test, describe } from 'node:test';

import * as esm from 'light-runner';
import { DockerRunner, Execution, LightRunnerError, listStates, readState } from 'light-runner';
import { BUSYBOX, FIXTURES, ROOT, assertGone, runNode, scopeOf } from './helpers.mjs';

const require = createRequire(import.meta.url);
const EXPORTS = ['DockerRunner', 'Execution', 'LightRunnerError', 'listStates', 'readState'];

describe('point 1: package', () => {
  test('ESM import by package name exposes the five exports', () => {
    for (const name of EXPORTS) assert.equal(typeof esm[name], 'function', `ESM export ${name}`);
    assert.equal(typeof DockerRunner.isAvailable, 'function');
    assert.equal(typeof listStates, 'function');
    assert.equal(typeof readState, 'function');
    assert.equal(typeof Execution, 'function');
  });

  test('CJS require by package name exposes the same objects', () => {
    const cjs = require('light-runner');
    for (const name of EXPORTS) {
      assert.equal(typeof cjs[name], 'function', `CJS export ${name}`);
      assert.equal(cjs[name], esm[name], `ESM and CJS ${name} are the same object`);
    }
  });

  test('a separate CommonJS process can require("light-runner")', async () => {
    const r = await runNode([path.join(FIXTURES, 'cjs-consumer.cjs')]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    for (const name of EXPORTS) assert.equal(out.exports[name], 'function', name);
    assert.equal(out.errorIsClass, true);
    assert.equal(out.hasIsAvailable, 'function');
  });

  test('a separate ESM process can import from "light-runner"', async () => {
    const r = await runNode([path.join(FIXTURES, 'esm-consumer.mjs')]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    for (const name of EXPORTS) assert.equal(out[name], 'function', name);
  });

  test('LightRunnerError is a real Error class', () => {
    const e = new LightRunnerError({ code: 'SEED_FAILED', message: 'boom', dockerOp: 'put_archive', containerId: 'c1' });
    assert.ok(e instanceof Error);
    assert.ok(e instanceof LightRunnerError);
    assert.equal(e.name, 'LightRunnerError');
    assert.equal(e.code, 'SEED_FAILED');
    assert.equal(e.message, 'boom');
    assert.equal(e.dockerOp, 'put_archive');
    assert.equal(e.containerId, 'c1');
    assert.equal(typeof e.stack, 'string');
    assert.deepEqual(e.toJSON(), {
      name: 'LightRunnerError', code: 'SEED_FAILED', message: 'boom', dockerOp: 'put_archive', containerId: 'c1',
    });
    assert.deepEqual(JSON.parse(JSON.stringify(new LightRunnerError({ code: 'EXTRACT_FAILED', message: 'm' }))), {
      name: 'LightRunnerError', code: 'EXTRACT_FAILED', message: 'm',
    });
  });

  test('a TypeScript file using the whole API passes tsc --noEmit (strict, nodenext)', () => {
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    assert.ok(fs.existsSync(tsc), 'typescript is a devDependency');
    try {
      execFileSync(process.execPath, [tsc, '-p', path.join(ROOT, '__test__', 'types', 'tsconfig.json')], {
        cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
    }
  });

  test('index.d.ts and the runtime exports do not drift apart', async () => {
    const ts = (await import('typescript')).default;
    const file = path.join(ROOT, 'index.d.ts');
    const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const isExported = (n) => n.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    const values = new Map(); // name -> { statics:Set, members:Set } | null for functions
    const types = new Set();
    for (const st of sf.statements) {
      if (!isExported(st)) continue;
      if (ts.isClassDeclaration(st)) {
        const statics = new Set();
        const members = new Set();
        for (const m of st.members) {
          if (!m.name || ts.isConstructorDeclaration(m)) continue;
          if (m.modifiers?.some((x) => x.kind === ts.SyntaxKind.PrivateKeyword)) continue;
          const isStatic = m.modifiers?.some((x) => x.kind === ts.SyntaxKind.StaticKeyword);
          (isStatic ? statics : members).add(m.name.getText(sf));
        }
        values.set(st.name.text, { statics, members });
      } else if (ts.isFunctionDeclaration(st)) {
        values.set(st.name.text, null);
      } else if (ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) {
        types.add(st.name.text);
      }
    }
    const cjs = require('light-runner');
    const runtimeNames = Object.keys(cjs).sort();
    assert.deepEqual(runtimeNames, [...values.keys()].sort(), 'runtime exports == value exports of index.d.ts');
    const esmNames = Object.keys(esm).filter((k) => k !== 'default').sort();
    assert.deepEqual(esmNames, runtimeNames, 'ESM named exports == CJS exports');

    for (const [name, decl] of values) {
      if (decl === null) {
        assert.equal(typeof cjs[name], 'function', `${name} is a function`);
        continue;
      }
      const C = cjs[name];
      const ignore = new Set(['length', 'name', 'prototype', 'arguments', 'caller', 'constructor']);
      const rtStatics = Object.getOwnPropertyNames(C).filter((k) => !ignore.has(k) && !k.startsWith('_'));
      const rtMembers = Object.getOwnPropertyNames(C.prototype).filter((k) => !ignore.has(k) && !k.startsWith('_'));
      for (const s of rtStatics) assert.ok(decl.statics.has(s), `${name}.${s} is not declared in index.d.ts`);
      for (const s of decl.statics) assert.ok(rtStatics.includes(s), `${name}.${s} is declared but missing at runtime`);
      for (const m of rtMembers) assert.ok(decl.members.has(m), `${name}#${m} is not declared in index.d.ts`);
      // Instance fields (name, code, dockerOp, ...) are set in the constructor;
      // methods must exist on the prototype.
      for (const m of decl.members) {
        const onProto = Object.getOwnPropertyDescriptor(C.prototype, m);
        if (name === 'LightRunnerError' && m !== 'toJSON') continue;
        assert.ok(onProto, `${name}#${m} is declared but missing at runtime`);
      }
    }
    for (const t of ['Runtime', 'LightRunnerErrorCode', 'RunnerOptions', 'RunRequest', 'RunResult', 'ExtractSpec',
      'ExtractResult', 'RunState', 'StopOptions', 'AttachOptions']) {
      assert.ok(types.has(t), `type ${t} is exported by index.d.ts`);
    }
  });

  test('every export of index.d.ts carries a doc comment', () => {
    const src = fs.readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8');
    const re = /^export (?:declare )?(?:class|function|interface|type) (\w+)/gm;
    let m;
    let n = 0;
    while ((m = re.exec(src))) {
      n++;
      const before = src.slice(0, m.index).trimEnd();
      assert.ok(before.endsWith('*/'), `export ${m[1]} has no doc comment`);
    }
    assert.ok(n >= 15, `found ${n} exports`);
  });
});

describe('point 2: run() is synchronous and validates its input', () => {
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
    ['negative timeout', { image: BUSYBOX, timeout: -1 }, /timeout/],
    ['string env', { image: BUSYBOX, env: 'A=1' }, /env/],
    ['non-string env value', { image: BUSYBOX, env: { A: 1 } }, /env/],
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
    ['a function inside env', { image: BUSYBOX, env: { A: () => 1 } }, /env/],
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

  const badOptions = [
    ['memory', { memory: 'lots' }, /memory/, /lots/],
    ['memory', { memory: '10x' }, /memory/, /10x/],
    ['memory', { memory: '' }, /memory/, null],
    ['memory', { memory: '-5m' }, /memory/, /-5m/],
    ['cpus', { cpus: '0' }, /cpus/, /0/],
    ['cpus', { cpus: '-1' }, /cpus/, /-1/],
    ['cpus', { cpus: 'two' }, /cpus/, /two/],
    ['gpus', { gpus: '-all' }, /gpus/, /-all/],
    ['gpus', { gpus: 'all;rm -rf /' }, /gpus/, /all;rm/],
    ['gpus', { gpus: '$(id)' }, /gpus/, /\$\(id\)/],
    ['gpus', { gpus: 'device=0|1' }, /gpus/, /device=0\|1/],
    ['runtime', { runtime: 'docker' }, /runtime/, /docker/],
    ['noNewPrivileges', { noNewPrivileges: 'no' }, /noNewPrivileges/, null],
    ['maxExtractBytes', { maxExtractBytes: -1 }, /maxExtractBytes/, null],
    ['memory', { memory: 512 }, /memory/, /512/],
  ];
  for (const [field, opts, re, valueRe] of badOptions) {
    test(`constructor throws synchronously on invalid ${field}: ${JSON.stringify(opts[field])}`, () => {
      assert.throws(() => new DockerRunner(opts), (e) => {
        assert.ok(e instanceof Error);
        assert.match(e.message, re);
        if (valueRe) assert.match(e.message, valueRe, 'the message names the value');
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
