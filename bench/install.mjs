// npm run bench:install: what installing light-runner costs a user, in one
// run: the prebuilt tarballs of `npm run pack` (root + linux-x64-gnu) installed
// with npm and with pnpm, beside the install from source this package had
// before (a tarball of the last commit with an install script: `npm install`
// compiles the addon with napi build).
//
// Each install: a fresh project, an empty npm cache / pnpm store, scripts
// ignored for the prebuilt ones. The prebuilt tarballs come from a local
// registry (scripts/local-registry.mjs) with PATH = node, npm, pnpm only; the
// from-source install fetches @napi-rs/cli and its dependencies from the npm
// registry and compiles with the machine's Rust (crates from ~/.cargo's
// cache). Needs the release build (`npm run build`).
//
// Knobs: BENCH_INSTALL_SAMPLES [5] prebuilt installs per tool,
// BENCH_SOURCE_REF [f4f9124, the last main commit that compiled at install],
// BENCH_SOURCE=0 skips the from-source install (about 4 minutes here).
// Writes bench/results-install.json (gitignored) and prints Markdown tables.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { startRegistry } from '../scripts/local-registry.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SAMPLES = Number(process.env.BENCH_INSTALL_SAMPLES ?? 5);
const SOURCE_REF = process.env.BENCH_SOURCE_REF ?? 'f4f912482617d5dba034894c7442e70673feb37c';
const WITH_SOURCE = process.env.BENCH_SOURCE !== '0';
const OUT = path.join(ROOT, 'bench', 'results-install.json');

const run = promisify(execFile);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lr-bench-install-'));
const log = (...a) => console.error('[bench:install]', ...a);
const du = (dir) => Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
const mib = (n) => `${(n / 1048576).toFixed(n < 10 * 1048576 ? 2 : 1)} MiB`;
const kib = (n) => (n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : mib(n));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

// PATH for the prebuilt installs: node, npm, pnpm and nothing that compiles.
const bin = path.join(work, 'bin');
fs.mkdirSync(bin);
fs.symlinkSync(process.execPath, path.join(bin, 'node'));
fs.symlinkSync(fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim()), path.join(bin, 'npm'));
fs.symlinkSync(path.join(ROOT, 'node_modules', 'pnpm', 'bin', 'pnpm.cjs'), path.join(bin, 'pnpm'));
const bareEnv = { PATH: bin, HOME: path.join(work, 'home') };

let n = 0;
function project() {
  const dir = path.join(work, `p${++n}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "name": "consumer", "version": "1.0.0", "private": true }\n');
  return dir;
}

async function timed(cmd, args, opts) {
  const t0 = process.hrtime.bigint();
  try {
    await run(cmd, args, { maxBuffer: 64 << 20, ...opts });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${e.stdout}${e.stderr}`);
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const result = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), kernel: os.release() },
  node: process.version,
  npm: execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim(),
  pnpm: execFileSync(process.execPath, [path.join(bin, 'pnpm'), '--version'], { encoding: 'utf8', env: bareEnv }).trim(),
  loadavgStart: os.loadavg(),
  samples: SAMPLES,
  tarballs: [],
  installs: [],
};

try {
  log('packing the release build (scripts/pack.mjs)');
  const dist = path.join(work, 'dist-pkg');
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'pack.mjs'), '--out', dist], { stdio: ['ignore', 'ignore', 'inherit'] });
  const { packages } = JSON.parse(fs.readFileSync(path.join(dist, 'pack.json'), 'utf8'));
  for (const p of packages) {
    result.tarballs.push({ kind: 'prebuilt', file: path.basename(p.file), packed: p.size, unpacked: p.unpackedSize });
  }
  const registry = await startRegistry(dist);
  try {
    for (const pm of ['npm', 'pnpm']) {
      const times = [];
      let size;
      for (let i = 0; i < SAMPLES; i++) {
        const dir = project();
        const args = pm === 'npm'
          ? ['install', 'light-runner', '--registry', registry.url, '--cache', path.join(dir, '.cache'),
            '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier']
          : ['add', 'light-runner', '--registry', registry.url, '--store-dir', path.join(dir, '.store'),
            '--cache-dir', path.join(dir, '.cache'), '--ignore-scripts', '--config.update-notifier=false'];
        times.push(await timed(pm, args, { cwd: dir, env: bareEnv }));
        size = du(path.join(dir, 'node_modules'));
        execFileSync(process.execPath, ['-e', "require('light-runner')"], { cwd: dir, env: bareEnv });
        fs.rmSync(dir, { recursive: true, force: true });
      }
      log(`${pm} prebuilt: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
      result.installs.push({ kind: 'prebuilt', tool: pm, ms: times, medianMs: median(times), nodeModulesBytes: size });
    }
  } finally {
    await registry.close();
  }

  if (WITH_SOURCE) {
    log(`install from source: npm install of a tarball of ${SOURCE_REF.slice(0, 7)} (compiles; minutes)`);
    const src = path.join(work, 'source');
    fs.mkdirSync(src);
    execFileSync('bash', ['-o', 'pipefail', '-c', 'git -C "$1" archive "$2" | tar -x -C "$3"', 'sh', ROOT, SOURCE_REF, src], { stdio: ['ignore', 'ignore', 'inherit'] });
    const [info] = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: src, encoding: 'utf8' }));
    const tgz = path.join(work, info.filename);
    result.tarballs.push({ kind: 'source', ref: SOURCE_REF, file: info.filename, packed: info.size, unpacked: info.unpackedSize });
    const dir = project();
    const env = { ...process.env, HOME: path.join(work, 'home') };
    // A clean build inside node_modules, as a user gets it.
    env.CARGO_HOME ??= path.join(os.homedir(), '.cargo');
    env.RUSTUP_HOME ??= path.join(os.homedir(), '.rustup');
    delete env.CARGO_TARGET_DIR;
    for (const k of Object.keys(env)) if (k.startsWith('npm_')) delete env[k];
    const ms = await timed('npm', ['install', tgz, '--cache', path.join(dir, '.cache'), '--no-audit', '--no-fund',
      '--no-update-notifier'], { cwd: dir, env });
    const nm = path.join(dir, 'node_modules');
    const target = path.join(nm, 'light-runner', 'target');
    result.installs.push({
      kind: 'source', tool: 'npm', ref: SOURCE_REF, ms: [ms], medianMs: ms, nodeModulesBytes: du(nm),
      targetBytes: fs.existsSync(target) ? du(target) : 0,
    });
    log(`npm from source: ${ms.toFixed(0)} ms`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
} finally {
  result.loadavgEnd = os.loadavg();
  fs.rmSync(work, { recursive: true, force: true });
}

fs.writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
const rows = [
  '| tarball | packed | unpacked |',
  '|---|---:|---:|',
  ...result.tarballs.map((t) => `| ${t.kind === 'source' ? `from source (${t.ref.slice(0, 7)}): ` : ''}\`${t.file}\` | ${kib(t.packed)} | ${kib(t.unpacked)} |`),
  '',
  `| install into a fresh project, empty cache | tool | time (median of ${SAMPLES}) | node_modules |`,
  '|---|---|---:|---:|',
  ...result.installs.map((i) => `| ${i.kind === 'source' ? `from source (${i.ref.slice(0, 7)}, compiles)` : 'prebuilt (root + linux-x64-gnu)'} | ${i.tool} | ${secs(i.medianMs)}${i.kind === 'source' ? ' (1 run)' : ''} | ${mib(i.nodeModulesBytes)}${i.targetBytes ? ` (target/ ${mib(i.targetBytes)})` : ''} |`),
];
console.log(rows.join('\n'));
console.log(`\nnode ${result.node}, npm ${result.npm}, pnpm ${result.pnpm}; ${result.machine.cpus} CPUs; `
  + `load ${result.loadavgStart.map((l) => l.toFixed(2)).join(' ')} -> ${result.loadavgEnd.map((l) => l.toFixed(2)).join(' ')}`);
