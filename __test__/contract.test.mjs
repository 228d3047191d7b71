// The typed contract, field by field: index.d.ts (read with the TypeScript
// compiler API) against what the addon really accepts (the fields the
// binding reads) and really returns (a RunResult, an ExtractResult and the
// RunState of real runs on the daemon). Adding a field on one side only
// fails here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner, readState } from 'light-runner';
import { BUSYBOX, ROOT, scopeOf } from './helpers.mjs';

const require = createRequire(import.meta.url);
const ts = require('typescript');
const native = require(path.join(ROOT, 'native.js'));

/** interface name → Map(prop → { optional, type }) for every interface of index.d.ts. */
function declaredInterfaces() {
  const file = path.join(ROOT, 'index.d.ts');
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out = new Map();
  sf.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node)) return;
    const props = new Map();
    for (const m of node.members) {
      if (!ts.isPropertySignature(m)) continue;
      props.set(m.name.getText(sf), { optional: Boolean(m.questionToken), type: m.type.getText(sf) });
    }
    out.set(node.name.getText(sf), props);
  });
  return out;
}

const IFACES = declaredInterfaces();

/** Does runtime value `v` fit declared type text `t` (the shapes this d.ts uses)? */
function fits(v, t) {
  t = t.trim();
  if (t === 'unknown') return true;
  if (t.includes('|') && !t.startsWith('{')) return t.split('|').some((part) => fits(v, part));
  if (t === 'string' || t === 'number' || t === 'boolean') return typeof v === t;
  if (/^'.*'$/.test(t)) return v === t.slice(1, -1);
  if (t.endsWith('[]')) return Array.isArray(v) && v.every((x) => fits(x, t.slice(0, -2)));
  if (t.startsWith('{')) return v !== null && typeof v === 'object';
  if (IFACES.has(t)) return conforms(v, t).length === 0;
  if (declaredUnion(t)) return declaredUnion(t).includes(v);
  return false;
}

/** Problems of `obj` against interface `name`: missing required, undeclared, mistyped fields. */
function conforms(obj, name) {
  const props = IFACES.get(name);
  assert.ok(props, `interface ${name} in index.d.ts`);
  const problems = [];
  for (const [k, { optional }] of props) {
    if (!optional && !(k in obj)) problems.push(`${name}.${k} is required but missing`);
  }
  for (const [k, v] of Object.entries(obj)) {
    const decl = props.get(k);
    if (!decl) problems.push(`${name}.${k} is returned but not declared`);
    else if (!fits(v, decl.type)) problems.push(`${name}.${k} = ${JSON.stringify(v)} does not fit ${decl.type}`);
  }
  return problems;
}

/** The string literals of type alias `name` in index.d.ts. */
function declaredUnion(name) {
  const file = path.join(ROOT, 'index.d.ts');
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  let out;
  sf.forEachChild((node) => {
    if (ts.isTypeAliasDeclaration(node) && node.name.getText(sf) === name && ts.isUnionTypeNode(node.type)) {
      out = node.type.types.filter((t) => ts.isLiteralTypeNode(t)).map((t) => t.literal.text);
    }
  });
  return out;
}

describe('index.d.ts matches what the addon accepts', () => {
  const { errorCodes, dockerOps, ...contract } = native._contract();
  // Fields the JS layer reads itself before handing the rest to Rust.
  const readInJs = { RunRequest: ['onLog', 'signal', 'input'] };
  test('LightRunnerErrorCode: exactly the codes the Rust core produces', () => {
    assert.deepEqual([...declaredUnion('LightRunnerErrorCode')].sort(), [...errorCodes].sort());
    assert.ok(dockerOps.includes('extractFromVolume') && dockerOps.includes('seedVolume'), dockerOps.join());
  });
  for (const name of Object.keys(contract)) {
    test(`${name}: the declared fields are exactly the fields read`, () => {
      const declared = [...IFACES.get(name).keys()].sort();
      const read = [...contract[name], ...(readInJs[name] ?? [])].sort();
      assert.deepEqual(declared, read);
    });
  }
});

describe('index.d.ts matches what the addon returns', () => {
  test('RunResult, ExtractResult and RunState of real runs, attached and detached', { timeout: 120_000 }, async (t) => {
    // Runs are tracked: checked for leftovers in Docker, then removed (state
    // files included), when the test ends.
    const scope = scopeOf(t);
    const to = scope.tmp('lr-contract-');
    const runner = new DockerRunner();
    const ex = runner.run({
      image: BUSYBOX,
      command: 'mkdir out && echo x > out/a',
      extract: [{ from: 'out', to }, { from: 'missing', to }, { from: '../bad', to }],
      onLog: () => {},
    });
    scope.track(ex.id);
    const r = await ex.result;
    assert.deepEqual(conforms(r, 'RunResult'), []);
    assert.equal(r.extracted.length, 3);
    for (const x of r.extracted) assert.deepEqual(conforms(x, 'ExtractResult'), []);
    assert.deepEqual(r.extracted.map((x) => x.status), ['ok', 'missing', 'error']);
    assert.deepEqual(conforms(readState(ex.id), 'RunState'), []);

    const det = runner.run({ image: BUSYBOX, command: 'sleep 1', detached: true, extract: [{ from: 'out', to }] });
    scope.track(det.id);
    assert.deepEqual(conforms(readState(det.id), 'RunState'), [], 'a running detached state');
    await det.result;
    assert.deepEqual(conforms(readState(det.id), 'RunState'), [], 'a terminal detached state');

    const failed = runner.run({ image: BUSYBOX, networks: ['light-runner-contract-no-such-net'] });
    scope.track(failed.id);
    await assert.rejects(failed.result);
    assert.deepEqual(conforms(readState(failed.id), 'RunState'), [], 'a failed state');
  });
});
