// No value from JS can crash the host process: cycles, depth, throwing
// getters and proxy traps, BigInt, symbols, functions and huge strings, in
// every field of every entry point, are a synchronous Error naming the field
// (or are accepted, where the original accepts them).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner, readState, deleteState, createNetwork } from 'light-runner';
import { FIXTURES } from './helpers.mjs';

function throwsNaming(f, field, expectedText) {
  assert.throws(f, (e) => {
    assert.ok(e instanceof Error, 'an Error');
    assert.match(e.message, new RegExp(`Invalid ${field}\\b`), e.message);
    if (expectedText) assert.match(e.message, expectedText, e.message);
    return true;
  });
}

const cyclic = () => { const c = { a: 1 }; c.self = c; return c; };
const nested = (n) => { let d = []; for (let i = 0; i < n; i++) d = [d]; return d; };

describe('hostile values from JS', () => {
  test('a circular value in an option throws naming it (it used to crash the process)', () => {
    throwsNaming(() => new DockerRunner({ memory: cyclic() }), 'memory', /circular or nested deeper/);
  });

  test('arrays nested 100,000 deep throw naming the field', () => {
    throwsNaming(() => new DockerRunner({ memory: nested(100_000) }), 'memory', /circular or nested deeper/);
    throwsNaming(() => new DockerRunner().run({ image: 'x', extract: nested(100_000) }), 'extract');
  });

  test('a circular env is read as the original reads it: String() of each value', () => {
    const ex = new DockerRunner().run({ image: 'x', env: cyclic(), signal: AbortSignal.abort() });
    return ex.result.then((r) => {
      assert.equal(r.cancelled, true);
      deleteState(ex.id);
    });
  });

  test('getters and proxy traps that throw are reported with the field', () => {
    throwsNaming(() => new DockerRunner({ get memory() { throw new Error('nope'); } }), 'memory', /reading it threw: nope/);
    const trap = new Proxy({}, { get() { throw new Error('trap'); } });
    throwsNaming(() => new DockerRunner().run(trap), 'onLog', /reading it threw: trap/);
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    throwsNaming(() => new DockerRunner(proxy), 'memory', /revoked/);
    throwsNaming(() => new DockerRunner().run({ image: 'x', env: { get A() { throw new Error('env getter'); } } }), 'env.A', /env getter/);
    throwsNaming(() => new DockerRunner().run({ image: 'x', env: { A: { toString() { throw new Error('ts'); } } } }), 'env.A', /ts/);
  });

  test('BigInt, symbols and functions where a value is expected name the field and what it takes', () => {
    throwsNaming(() => new DockerRunner().run({ image: 'x', timeout: 10n }), 'timeout', /expected a number of milliseconds, got a bigint \(10n\)/);
    throwsNaming(() => new DockerRunner({ cpus: Symbol('s') }), 'cpus', /expected a positive decimal.*got a symbol/);
    throwsNaming(() => new DockerRunner().run({ image: () => 1 }), 'image', /got a function/);
    throwsNaming(() => DockerRunner.attach(10n), 'id', /got a bigint/);
    throwsNaming(() => readState(cyclic()), 'id', /expected a string/);
  });

  test('null, arrays and functions as the whole argument say what was expected', () => {
    throwsNaming(() => new DockerRunner().run(null), 'request', /expected an object, got null/);
    throwsNaming(() => new DockerRunner().run([]), 'request', /expected an object, got an array/);
    throwsNaming(() => new DockerRunner().run(() => 1), 'request', /expected an object, got a function/);
    throwsNaming(() => new DockerRunner([1]), 'options', /expected an object, got an array/);
    throwsNaming(() => createNetwork('light-runner-x', 'nope'), 'options', /expected an object, got a string/);
  });

  test('huge strings are refused with the field, not copied into a state file', async () => {
    const huge = 'x'.repeat(16 * 1024 * 1024);
    throwsNaming(() => new DockerRunner().run({ image: huge }), 'image', /longer than/);
    throwsNaming(() => new DockerRunner().run({ image: 'x', command: huge }), 'command', /longer than/);
    // A memory string is the right type: as in the original, each run rejects.
    const ex = new DockerRunner({ memory: huge }).run({ image: 'x' });
    await assert.rejects(ex.result, (e) => e.name === 'LightRunnerError' && /Invalid memory/.test(e.message)
      && e.message.length < 300);
    deleteState(ex.id);
  });

  // 1,000 per entry point in `npm test`; `npm run test:long` sets 10,000.
  const RUNS = Number(process.env.LIGHT_RUNNER_FUZZ_RUNS || 1000);
  test(`fuzz: ${RUNS} random and hostile values per entry point, no crash, no hang, no unhandled rejection`, { timeout: 600_000 }, async () => {
    const state = fs.mkdtempSync(path.join(os.tmpdir(), 'lr-fuzz-'));
    try {
      const child = spawn(process.execPath, [path.join(FIXTURES, 'fuzz-api.mjs')], {
        // A socket that does not exist: no value ever reaches a daemon.
        env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent/light-runner-fuzz.sock', LIGHT_RUNNER_STATE_DIR: state, FUZZ_RUNS: String(RUNS) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { err += d; });
      const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])));
      assert.equal(signal, null, `the fuzzed process died by ${signal}\n${err.slice(-2000)}`);
      assert.equal(code, 0, `exit ${code}\n${out}\n${err.slice(-4000)}`);
      const lines = out.trim().split('\n').map((l) => JSON.parse(l));
      const entries = lines.filter((l) => l.entry);
      assert.equal(entries.length, 13, out);
      for (const e of entries) assert.equal(e.runs, RUNS, e.entry);
      assert.deepEqual(lines.at(-1), { done: true, unhandled: 0 });
    } finally {
      fs.rmSync(state, { recursive: true, force: true });
    }
  });
});
