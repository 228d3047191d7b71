// `npm test`'s end-to-end half: every file of __test__/ under `node --test`
// (extra arguments: the files to run instead, e.g. one file).
//
// Most of the suite's time is spent waiting on the daemon, not on the CPU, so
// files run in lanes: LIGHT_RUNNER_TEST_LANES files at once (default 4; 1
// runs them one at a time), one `node --test <file>` process each, the
// longest first. Each lane has a state
// directory of its own, so a file sees, lists and sweeps only the states of
// its own runs, as when files ran one at a time. What lanes still share is the
// daemon: the files in ALONE look at or change it as a whole (sweeps over
// every labelled resource, the default network, the shared dockerd, timing or
// memory bounds), so they run afterwards, one at a time, with nothing beside
// them. zz-leaks.test.mjs runs last of all: it checks that the suite left no
// labelled container or volume on the daemon and no state file in any lane's
// directory (they are all under one fresh directory, made for this run).
//
// Each file's TAP output is printed whole when it ends; the totals at the end
// add up the files' own counts.
//
// Four lanes take the suite from ~970 s to ~460-480 s here. The load they
// add found two races one file at a time never showed, both fixed: a cancel
// recorded as an exit when 20 hosts cancel one run (the cancel is now on
// record before the driver is told), and a run killed by its memory cap
// ending with oomKilled false (dockerd 20.10 can get containerd's OOM event
// after the exit; the daemon's `oom` event is now an observation of its own,
// see bench/oom-under-load.mjs).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Files that must run with no other file beside them.
const ALONE = [
  // Sweeps over every labelled resource on the daemon, which would take
  // another file's runs: reapOrphans() (its age lowered to seconds),
  // cleanupOrphanVolumes(), cleanupOrphanCache() with a TTL of seconds.
  'sweeps.test.mjs',
  'detached-reap.test.mjs',
  'image-reclaim.test.mjs',
  // Removes the shared default network.
  'network.test.mjs',
  // Bounds of a few seconds on kills, removals and attach, with 1-3 s of
  // slack over their usual time, windows timed to a held create, a count
  // of daemon requests in a window, gVisor's CPU-heavy ptrace platform.
  'control.test.mjs',
  'detached-attach.test.mjs',
  'host-killed-mid-create.test.mjs',
  'runtimes.test.mjs',
  'waiting-costs-nothing.test.mjs',
];
// Stress (floods, bombs, random kills, memory bounds, each on a private
// dockerd): in lanes, but never two of them at once.
const HEAVY = [
  'reliability.test.mjs',
  'security-suite.test.mjs',
];
// Files that take longest, started first so that the lanes end together.
const LONGEST = [
  'reliability.test.mjs',
  'security-suite.test.mjs',
  'daemon-restart.test.mjs',
  'install.test.mjs',
  'drop-in-values.test.mjs',
  'endpoint-ssh.test.mjs',
  'detached-failures.test.mjs',
  'build-steps.test.mjs',
  'attached-runs-persisted.test.mjs',
  'security-profiles.test.mjs',
];
const LAST = 'zz-leaks.test.mjs';

const base = process.env.LIGHT_RUNNER_STATE_DIR
  ?? fs.mkdtempSync(path.join(os.tmpdir(), 'light-runner-test-state-'));
const lanes = Math.max(1, Number(process.env.LIGHT_RUNNER_TEST_LANES ?? 4) || 1);

const named = process.argv.slice(2).map((f) => path.relative('__test__', f));
const all = named.length
  ? named
  : fs.readdirSync('__test__').filter((f) => f.endsWith('.test.mjs')).sort();
const unknown = [...ALONE, ...HEAVY, ...LONGEST].filter((f) => !fs.existsSync(path.join('__test__', f)));
if (unknown.length) {
  console.error(`scripts/node-test.mjs names files that do not exist: ${unknown.join(', ')}`);
  process.exit(1);
}
const rank = (f) => (LONGEST.includes(f) ? LONGEST.indexOf(f) : LONGEST.length);
const together = all.filter((f) => !ALONE.includes(f) && f !== LAST)
  .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
const alone = all.filter((f) => ALONE.includes(f));
const last = all.filter((f) => f === LAST);

const totals = {};
const failed = [];
const t0 = Date.now();
const secs = (ms) => (ms / 1000).toFixed(1);

function runFile(file, dir) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', path.join('__test__', file)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LIGHT_RUNNER_STATE_DIR: dir, LIGHT_RUNNER_TEST_STATE_ROOT: base },
    });
    const out = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => out.push(b));
    child.on('close', (code, signal) => {
      const text = Buffer.concat(out).toString();
      for (const m of text.matchAll(/^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) {
        totals[m[1]] = (totals[m[1]] ?? 0) + Number(m[2]);
      }
      const ok = code === 0;
      if (!ok) failed.push(file);
      process.stdout.write(`# ==== ${file}: ${ok ? 'ok' : `FAILED (exit ${code ?? signal})`} in ${secs(Date.now() - started)} s (at ${secs(Date.now() - t0)} s)\n${text}`);
      resolve();
    });
  });
}

// Each lane takes the first file of the queue, skipping a heavy file while
// another heavy file runs.
async function inLanes(files, n) {
  const queue = [...files];
  let heavyRunning = false;
  const next = () => {
    const i = queue.findIndex((f) => !(heavyRunning && HEAVY.includes(f)));
    return i < 0 ? undefined : queue.splice(i, 1)[0];
  };
  await Promise.all(Array.from({ length: Math.min(n, queue.length) }, async (_, i) => {
    const dir = path.join(base, `lane-${i + 1}`);
    for (let f = next(); f; f = next()) {
      const heavy = HEAVY.includes(f);
      if (heavy) heavyRunning = true;
      await runFile(f, dir);
      if (heavy) heavyRunning = false;
    }
  }));
}

console.log(`# ${together.length} files in ${lanes} lanes, then ${alone.length + last.length} alone; state under ${base}`);
await inLanes(together, lanes);
for (const f of alone) await runFile(f, path.join(base, 'alone'));
for (const f of last) await runFile(f, path.join(base, 'alone'));

console.log(`# all files: ${Object.entries(totals).map(([k, v]) => `${k} ${v}`).join(', ')} in ${secs(Date.now() - t0)} s`);
for (const k of ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo']) console.log(`# ${k} ${totals[k] ?? 0}`);
if (failed.length) {
  console.error(`# files that failed: ${failed.join(', ')}\nstate directory of this run kept: ${base}`);
  process.exit(1);
}
if (!process.env.LIGHT_RUNNER_STATE_DIR) fs.rmSync(base, { recursive: true, force: true });
