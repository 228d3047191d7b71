// Runs last, alone (scripts/node-test.mjs): the whole suite must have left
// nothing behind, neither in Docker nor in its state dirs (each lane's dir is
// under LIGHT_RUNNER_TEST_STATE_ROOT, made fresh for the run).
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
  const states = fs.existsSync(ROOT)
    ? fs.readdirSync(ROOT, { recursive: true }).filter((f) => f.endsWith('.json') || f.endsWith('.log'))
    : [];
  return { containers, volumes, states };
}

// Every lane's state dir is under the root; run alone, the file's own dir.
const ROOT = process.env.LIGHT_RUNNER_TEST_STATE_ROOT ?? STATE_DIR;

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
  assert.deepEqual(last.states, [], `state files left in ${ROOT}: ${last.states.map((f) => path.join(ROOT, f)).join(', ')}`);
});
