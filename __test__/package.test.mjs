// The package as its users load it: the ESM and CommonJS entries by package
// name (in this process and in fresh ones), LightRunnerError as a real Error
// class, and index.d.ts (type-checks, matches the runtime exports, documented).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test, describe } from 'node:test';

import * as esm from 'light-runner';
import { DockerRunner, Execution, LightRunnerError, listStates, readState } from 'light-runner';
import { FIXTURES, ROOT, runNode } from './helpers.mjs';

const require = createRequire(import.meta.url);
const EXPORTS = ['DockerRunner', 'Execution', 'LightRunnerError', 'listStates', 'readState'];

describe('the package: ESM and CommonJS entries, index.d.ts', () => {
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
        const fields = new Set();
        for (const m of st.members) {
          if (!m.name || ts.isConstructorDeclaration(m)) continue;
          if (m.modifiers?.some((x) => x.kind === ts.SyntaxKind.PrivateKeyword)) continue;
          const isStatic = m.modifiers?.some((x) => x.kind === ts.SyntaxKind.StaticKeyword);
          // Instance fields (a property, not a method or accessor) live on each instance.
          if (!isStatic && ts.isPropertyDeclaration(m)) fields.add(m.name.getText(sf));
          (isStatic ? statics : members).add(m.name.getText(sf));
        }
        values.set(st.name.text, { statics, members, fields });
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
        if (decl.fields.has(m)) continue;
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
