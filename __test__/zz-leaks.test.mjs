// Runs last (files run in name order under `--test-concurrency=1`): the whole
// suite must have left nothing behind, neither in Docker nor in its state dir.
// Read-only: it never removes anything, it only reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { LABEL, STATE_DIR, docker, waitFor } from './helpers.mjs';

function leftovers() {
  const containers = docker('ps', '-a', '--filter', `label=${LABEL}`,
    '--format', '{{.Names}} {{.Status}} {{.Label "light-runner.run-id"}}')
    .split('\n').filter(Boolean);
  const volumes = docker('volume', 'ls', '--filter', `label=${LABEL}`, '--format', '{{.Name}}')
    .split('\n').filter(Boolean);
  const states = fs.existsSync(STATE_DIR)
    ? fs.readdirSync(STATE_DIR).filter((f) => f.endsWith('.json') || f.endsWith('.log'))
    : [];
  return { containers, volumes, states };
}

const clean = (l) => l.containers.length === 0 && l.volumes.length === 0 && l.states.length === 0;

test('leaks: the suite left no labelled container, no labelled volume and no state file', { timeout: 60_000 }, async () => {
  // Removal after a run's result settles is asynchronous in places (a killed
  // host's watchdog, a volume still held for a moment): give it a grace period
  // before judging, but never clean anything up here.
  let last = leftovers();
  try {
    await waitFor(() => {
      last = leftovers();
      return clean(last);
    }, { timeout: 20_000, every: 500 });
  } catch {
    /* reported below */
  }
  assert.deepEqual(last.containers, [], `labelled containers left: ${last.containers.join('; ')}`);
  assert.deepEqual(last.volumes, [], `labelled volumes left: ${last.volumes.join('; ')}`);
  assert.deepEqual(last.states, [], `state files left in ${STATE_DIR}: ${last.states.map((f) => path.join(STATE_DIR, f)).join(', ')}`);
});
