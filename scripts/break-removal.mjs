// `node scripts/break-removal.mjs [test files...]`: proves the removal
// tests can fail. It copies this checkout (as committed, plus uncommitted
// changes) to a temporary directory, makes the addon's removal of a run's
// container and volume (`remove_all` in src/backend/docker/container.rs) a
// no-op, builds that copy, and runs the listed test files (default: the
// removal tests) against it. The watchdog binary of the copy is replaced
// by this checkout's own, unbroken one: a host's death is the watchdog's
// to clean up, and those tests are meant to stay green.
//
// Prints, per file, how many tests went red; exits 0 when every file has
// at least one red test (the tests catch the broken removal), 1 otherwise.
// Needs a Docker daemon, the test images and this checkout's own release
// build (`npm run build:host`). Takes a full release build (minutes).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_FILES = [
  'run-end', 'cancel', 'timeout', 'errors', 'control', 'attached-runs-persisted',
  'seed', 'detached-survive', 'finalizer-died-mid-removal',
].map((n) => `__test__/${n}.test.mjs`);
const files = process.argv.slice(2).length ? process.argv.slice(2) : DEFAULT_FILES;

const FILE = 'src/backend/docker/container.rs';
const SIGNATURE = 'pub async fn remove_all(docker: &Docker, id: &str) -> Result<()> {';

const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'light-runner-broken-'));
console.log(`copy: ${copy}`);
try {
  // The tracked files as they are now (committed or not), no build output.
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of tracked) {
    if (!fs.existsSync(path.join(ROOT, f))) continue;
    fs.mkdirSync(path.dirname(path.join(copy, f)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, f), path.join(copy, f));
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));

  const src = fs.readFileSync(path.join(copy, FILE), 'utf8');
  if (!src.includes(SIGNATURE)) throw new Error(`${FILE}: \`${SIGNATURE}\` not found (renamed?): update this script`);
  fs.writeFileSync(path.join(copy, FILE), src.replace(SIGNATURE,
    `${SIGNATURE}\n    let _ = (docker, id);\n    #[allow(unreachable_code)]\n    return Ok(());`));

  console.log('building the broken copy (release)...');
  execFileSync('npm', ['run', 'build:host'], { cwd: copy, stdio: ['ignore', 'inherit', 'inherit'] });
  fs.copyFileSync(path.join(ROOT, 'light-runner-watchdog'), path.join(copy, 'light-runner-watchdog'));

  let allRed = true;
  for (const f of files) {
    const r = spawnSync(process.execPath, ['scripts/node-test.mjs', f], { cwd: copy, encoding: 'utf8' });
    const count = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(r.stdout)?.[1] ?? NaN);
    const [tests, fail] = [count('tests'), count('fail')];
    // node:test counts a file's failing subtests in its top-level test.
    const red = (r.stdout.match(/^\s*not ok \d+ - /gm) ?? []).length;
    const verdict = fail > 0 ? 'red' : 'GREEN (the broken removal went unnoticed)';
    if (!(fail > 0)) allRed = false;
    console.log(`${f}: ${verdict}; top-level ${fail}/${tests} failed, ${red} 'not ok' lines`);
  }
  console.log(allRed ? 'every listed file went red' : 'some files stayed green');
  process.exitCode = allRed ? 0 : 1;
} finally {
  // The copy's runs were removed by the tests' own cleanup; the copy goes.
  fs.rmSync(copy, { recursive: true, force: true });
}
