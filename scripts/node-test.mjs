// `npm test`'s end-to-end half: `node --test --test-concurrency=1 __test__/`
// (extra arguments are passed on, e.g. a file) with a state directory of its
// own, made fresh for this run. The last test file (zz-leaks) checks that the
// suite left no state file there: a fixed path shared by every run on the
// machine would also show what earlier runs left.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = process.env.LIGHT_RUNNER_STATE_DIR
  ?? fs.mkdtempSync(path.join(os.tmpdir(), 'light-runner-test-state-'));
// By default the files of __test__/ itself: __test__/long/ is `npm run test:long`.
const files = process.argv.slice(2);
const all = fs.readdirSync('__test__').filter((f) => f.endsWith('.test.mjs')).sort().map((f) => `__test__/${f}`);
const r = spawnSync(process.execPath,
  ['--test', '--test-concurrency=1', ...(files.length ? files : all)],
  { stdio: 'inherit', env: { ...process.env, LIGHT_RUNNER_STATE_DIR: dir } });
if (r.status === 0 && !process.env.LIGHT_RUNNER_STATE_DIR) fs.rmSync(dir, { recursive: true, force: true });
else if (r.status !== 0) console.error(`state directory of this run kept: ${dir}`);
process.exit(r.status ?? 1);
