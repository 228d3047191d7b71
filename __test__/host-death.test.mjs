// An attached run dies with its host: whether the Node process that started
// it is SIGKILLed, SIGTERMed or calls process.exit(), its containers and
// volumes are removed within seconds.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';

import {
  FIXTURES, assertGone, containerExists, inspectJson, scopeOf, volumeExists, waitFor,
} from './helpers.mjs';

/** Spawns the fixture and resolves with the run ids once their containers run. */
function startHost(t, mode = 'wait', count = 1) {
  const host = spawn(process.execPath, [path.join(FIXTURES, 'host-killed.mjs'), mode, String(count)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  scopeOf(t).defer(() => host.kill('SIGKILL'));
  let out = '';
  let err = '';
  host.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => host.on('exit', (code, signal) => r({ code, signal })));
  const ids = new Promise((resolve, reject) => {
    host.stdout.on('data', (d) => {
      out += d;
      const found = out.match(/light-runner-[0-9a-f]{12}\n/g) ?? [];
      if (found.length >= count) resolve(found.map((l) => l.trim()));
    });
    exited.then(() => reject(new Error(`host exited early: ${out} ${err}`)));
  });
  return { host, ids, exited };
}

describe('an attached run dies with its host', () => {
  for (const [name, kill, count] of [
    ['SIGKILL', (c) => c.kill('SIGKILL'), 1],
    ['SIGKILL, three runs', (c) => c.kill('SIGKILL'), 3],
    ['SIGTERM', (c) => c.kill('SIGTERM'), 1],
    ['process.exit()', null, 1],
  ]) {
    test(`host ended by ${name}: containers and volumes gone within about 10 s`, { timeout: 60_000 }, async (t) => {
      const { host, ids: idsFound, exited } = startHost(t, kill ? 'wait' : 'exit', count);
      const ids = await idsFound;
      for (const id of ids) scopeOf(t).track(id);
      assert.equal(ids.length, count);
      for (const id of ids) assert.equal(inspectJson(id).State.Running, true, 'the container runs');
      const t0 = Date.now();
      if (kill) kill(host);
      await exited;
      await waitFor(() => ids.every((id) => !containerExists(id) && !volumeExists(id)),
        { timeout: 10_000, every: 200, what: 'the runs of the dead host removed' });
      for (const id of ids) assertGone(id);
      const elapsed = Date.now() - t0;
      assert.ok(elapsed <= 10_000, `cleanup took ${elapsed} ms`);
    });
  }
});
