// Installing without a Rust toolchain. `npm run pack` (on the release
// build `npm run build` made) writes the root and platform tarballs; a
// throwaway registry serves them; npm and pnpm install `light-runner` into
// fresh projects with no cargo, rustc, cc or gcc on PATH and scripts
// ignored; the installed package then loads (require and import), runs a
// real job, and guards attached runs with the platform package's watchdog.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { startRegistry } from '../scripts/local-registry.mjs';
import {
  FIXTURES, ROOT, STATE_DIR, assertGone, containerExists, inspectJson, rmrf, runNode, scopeOf, tmpdir,
  volumeExists, waitFor,
} from './helpers.mjs';

const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const PLATFORM = 'linux-x64-gnu';
const PLATFORM_PKG = `light-runner-${PLATFORM}`;
const ADDON = `light-runner.${PLATFORM}.node`;
const WATCHDOG = 'light-runner-watchdog';
const COMPILERS = ['cargo', 'rustc', 'cc', 'gcc', 'c++', 'g++', 'clang', 'zig', 'cargo-zigbuild'];

const WORK = tmpdir('lr-install-');
const PACK = path.join(WORK, 'dist-pkg');
const BIN = path.join(WORK, 'bin');
let registry;
let packed;

/** PATH holds node, npm and pnpm only: nothing that could compile the addon. */
function makeBin() {
  fs.mkdirSync(BIN);
  const npmCli = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
  const pnpmCli = path.join(ROOT, 'node_modules', 'pnpm', 'bin', 'pnpm.cjs');
  assert.ok(fs.existsSync(pnpmCli), 'pnpm is a devDependency (npm ci installs it)');
  fs.symlinkSync(process.execPath, path.join(BIN, 'node'));
  fs.symlinkSync(npmCli, path.join(BIN, 'npm'));
  fs.symlinkSync(pnpmCli, path.join(BIN, 'pnpm'));
}

/** The environment of everything run inside the consumer projects. */
function consumerEnv() {
  const env = { PATH: BIN, HOME: path.join(WORK, 'home'), LIGHT_RUNNER_STATE_DIR: STATE_DIR };
  for (const k of ['DOCKER_HOST', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH']) {
    if (process.env[k] !== undefined) env[k] = process.env[k];
  }
  return env;
}

/** The newest glibc symbol version `file` needs (the brief's objdump pipeline). */
function glibcNeeded(file) {
  const out = execFileSync('bash', ['-o', 'pipefail', '-c',
    `objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1`, 'glibc', file], { encoding: 'utf8' }).trim();
  assert.match(out, /^GLIBC_\d+(\.\d+)*$/, `objdump -T ${file}`);
  return out.slice('GLIBC_'.length);
}

const atMost = (v, max) => {
  const [a, b] = [v, max].map((s) => s.split('.').map(Number));
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0);
  }
  return true;
};

/** pid -> { ppid, exe, cmdline } of every child process of `pid`. */
function childrenOf(pid) {
  const out = [];
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      out.push({
        pid: Number(p),
        exe: fs.readlinkSync(`/proc/${p}/exe`),
        cmdline: fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean),
      });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** False once `pid` exited (gone, or a zombie nobody reaped yet). */
function isAlive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

before(async () => {
  makeBin();
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'pack.mjs'), '--out', PACK], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'],
  });
  packed = JSON.parse(fs.readFileSync(path.join(PACK, 'pack.json'), 'utf8')).packages;
  registry = await startRegistry(PACK);
});

after(async () => {
  await registry?.close();
  rmrf(WORK);
});

describe('npm run pack', () => {
  test('the root tarball: JS only, no install script, no Rust sources, optionalDependencies on every platform', () => {
    const root = packed.find((p) => p.name === 'light-runner');
    assert.ok(root, 'root tarball written');
    assert.equal(path.basename(root.file), `light-runner-${PKG.version}.tgz`);
    assert.deepEqual([...root.files].sort(),
      ['LICENSE', 'README.md', 'bin/light-runner.mjs', 'index.d.ts', 'index.js', 'index.mjs', 'native.js', 'package.json', 'watchdog.js']);
    const m = root.manifest;
    for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(m.scripts?.[s], undefined, s);
    assert.equal(m.dependencies, undefined, 'no runtime dependency (@napi-rs/cli is a devDependency)');
    assert.equal(m.license, 'MIT');
    const platforms = PKG.napi.targets.length;
    assert.equal(Object.keys(m.optionalDependencies).length, platforms);
    assert.equal(m.optionalDependencies[PLATFORM_PKG], PKG.version);
    for (const v of Object.values(m.optionalDependencies)) assert.equal(v, PKG.version);
  });

  test(`the ${PLATFORM_PKG} tarball: the addon and the watchdog, os/cpu/libc declared`, () => {
    const p = packed.find((x) => x.name === PLATFORM_PKG);
    assert.ok(p, `${PLATFORM_PKG} tarball written`);
    assert.deepEqual([...p.files].sort(), ['LICENSE', 'README.md', ADDON, WATCHDOG, 'package.json'].sort());
    assert.deepEqual(p.manifest.os, ['linux']);
    assert.deepEqual(p.manifest.cpu, ['x64']);
    assert.deepEqual(p.manifest.libc, ['glibc']);
    assert.equal(p.manifest.version, PKG.version);
  });

  test(`the ${PLATFORM} binaries need glibc 2.17 at most`, (t) => {
    const p = packed.find((x) => x.name === PLATFORM_PKG);
    const dir = path.join(WORK, 'extracted');
    fs.mkdirSync(dir);
    execFileSync('tar', ['-xzf', p.file, '-C', dir]);
    for (const f of [ADDON, WATCHDOG]) {
      const file = path.join(dir, 'package', f);
      const v = glibcNeeded(file);
      t.diagnostic(`${f}: GLIBC_${v}`);
      assert.ok(atMost(v, '2.17'), `${f} needs GLIBC_${v} (> 2.17)`);
    }
    assert.ok(fs.statSync(path.join(dir, 'package', WATCHDOG)).mode & 0o100, 'the watchdog is executable');
  });
});

test('without the platform package (--omit=optional), require() names the platform and how to build', { timeout: 120_000 }, async () => {
  const project = path.join(WORK, 'consumer-omit');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), '{ "name": "consumer", "version": "1.0.0", "private": true }\n');
  const env = consumerEnv();
  await promisify(execFile)('npm', ['install', 'light-runner', '--omit=optional', '--registry', registry.url,
    '--cache', path.join(WORK, 'npm-cache-omit'), '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier'],
  { cwd: project, env, timeout: 110_000 });
  assert.equal(fs.existsSync(path.join(project, 'node_modules', PLATFORM_PKG)), false);
  fs.copyFileSync(path.join(FIXTURES, 'cjs-consumer.cjs'), path.join(project, 'cjs-consumer.cjs'));
  const r = await runNode([path.join(project, 'cjs-consumer.cjs')], { env, cwd: project });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`no native addon for ${PLATFORM}`));
  assert.match(r.stderr, new RegExp(`${PLATFORM_PKG} is not installed`));
  assert.match(r.stderr, /Build from source: .*Rust.*npm run build:host/);
});

for (const pm of ['npm', 'pnpm']) {
  describe(`installed with ${pm} from the tarballs, no Rust toolchain on PATH`, () => {
    const project = path.join(WORK, `consumer-${pm}`);
    const env = consumerEnv();
    const run = (file, args = [], timeout = 60_000) => runNode([path.join(project, file), ...args],
      { env, cwd: project, timeout });

    test(`${pm} installs light-runner with scripts ignored`, { timeout: 180_000 }, async (t) => {
      for (const dir of env.PATH.split(':')) {
        for (const c of COMPILERS) assert.equal(fs.existsSync(path.join(dir, c)), false, `${c} is on PATH`);
      }
      fs.mkdirSync(project);
      fs.writeFileSync(path.join(project, 'package.json'), '{ "name": "consumer", "version": "1.0.0", "private": true }\n');
      const args = pm === 'npm'
        ? ['install', 'light-runner', '--registry', registry.url, '--cache', path.join(WORK, 'npm-cache'),
          '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier']
        : ['add', 'light-runner', '--registry', registry.url, '--store-dir', path.join(WORK, 'pnpm-store'),
          '--cache-dir', path.join(WORK, 'pnpm-cache'), '--ignore-scripts', '--config.update-notifier=false'];
      const seen = registry.requests.length;
      const t0 = Date.now();
      try {
        // Asynchronous: the registry answers from this very process.
        await promisify(execFile)(pm, args, { cwd: project, env, timeout: 170_000 });
      } catch (e) {
        assert.fail(`${pm} ${args.join(' ')} failed:\n${e.stdout}${e.stderr}`);
      }
      t.diagnostic(`${pm} install: ${Date.now() - t0} ms`);
      const fetched = registry.requests.slice(seen).filter((r) => r.endsWith('.tgz'));
      assert.deepEqual(fetched.sort(),
        [`-/tarballs/light-runner-${PKG.version}.tgz`, `-/tarballs/${PLATFORM_PKG}-${PKG.version}.tgz`].sort());

      const installed = fs.realpathSync(path.join(project, 'node_modules', 'light-runner'));
      const names = fs.readdirSync(installed);
      for (const n of names) assert.ok(!n.endsWith('.node') && !['src', 'Cargo.toml', 'target'].includes(n), `${n} in light-runner`);
      const platformDir = path.dirname(createRequire(path.join(installed, 'package.json')).resolve(`${PLATFORM_PKG}/package.json`));
      assert.ok(platformDir.startsWith(project), platformDir);
      assert.deepEqual(fs.readdirSync(platformDir).filter((n) => n === ADDON || n === WATCHDOG).sort(), [ADDON, WATCHDOG].sort());
    });

    test('require() and import both load it', async () => {
      fs.copyFileSync(path.join(FIXTURES, 'cjs-consumer.cjs'), path.join(project, 'cjs-consumer.cjs'));
      fs.copyFileSync(path.join(FIXTURES, 'esm-consumer.mjs'), path.join(project, 'esm-consumer.mjs'));
      const cjs = await run('cjs-consumer.cjs');
      assert.equal(cjs.code, 0, cjs.stderr);
      const out = JSON.parse(cjs.stdout);
      for (const name of ['DockerRunner', 'Execution', 'LightRunnerError', 'listStates', 'readState']) {
        assert.equal(out.exports[name], 'function', `require: ${name}`);
      }
      assert.equal(out.errorIsClass, true);
      const esm = await run('esm-consumer.mjs');
      assert.equal(esm.code, 0, esm.stderr);
      assert.deepEqual(Object.values(JSON.parse(esm.stdout)), Array(5).fill('function'));
    });

    test('a real run: onLog lines and an extract', { timeout: 60_000 }, async (t) => {
      fs.copyFileSync(path.join(FIXTURES, 'install-run.mjs'), path.join(project, 'install-run.mjs'));
      const to = path.join(project, 'results');
      const r = await run('install-run.mjs', [to]);
      assert.equal(r.code, 0, r.stderr);
      const { id, result, lines } = JSON.parse(r.stdout);
      scopeOf(t).track(id);
      assert.equal(result.success, true);
      assert.deepEqual(lines, ['line one', 'line two']);
      assert.deepEqual(result.extracted.map((e) => e.status), ['ok']);
      assert.equal(fs.readFileSync(path.join(to, 'proof.txt'), 'utf8'), 'installed\n');
      assertGone(id);
    });

    test('a SIGKILLed host: the platform package\'s watchdog removes its run within seconds', { timeout: 60_000 }, async (t) => {
      fs.copyFileSync(path.join(FIXTURES, 'host-killed.mjs'), path.join(project, 'host-killed.mjs'));
      const installed = fs.realpathSync(path.join(project, 'node_modules', 'light-runner'));
      const platformDir = path.dirname(createRequire(path.join(installed, 'package.json')).resolve(`${PLATFORM_PKG}/package.json`));
      const child = spawn(process.execPath, [path.join(project, 'host-killed.mjs'), 'wait', '1'], {
        cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'],
      });
      scopeOf(t).defer(() => child.kill('SIGKILL'));
      let out = '';
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
      const id = scopeOf(t).track(await new Promise((resolve, reject) => {
        child.stdout.on('data', (d) => {
          out += d;
          const m = out.match(/light-runner-[0-9a-f]{12}\n/);
          if (m) resolve(m[0].trim());
        });
        exited.then(() => reject(new Error(`host exited early: ${out} ${err}`)));
      }));
      assert.equal(inspectJson(id).State.Running, true, 'the container runs');

      // The addon mapped into the host is the platform package's .node ...
      const maps = fs.readFileSync(`/proc/${child.pid}/maps`, 'utf8');
      const addons = [...new Set(maps.split('\n').map((l) => l.split(/\s+/).slice(5).join(' '))
        .filter((f) => f.endsWith('.node')))];
      assert.deepEqual(addons, [path.join(platformDir, ADDON)]);
      // ... and its watchdog child runs the platform package's binary.
      const kids = childrenOf(child.pid);
      const watchdog = kids.find((k) => k.exe === path.join(platformDir, WATCHDOG));
      assert.ok(watchdog, `no child runs ${path.join(platformDir, WATCHDOG)}: ${JSON.stringify(kids)}`);
      assert.deepEqual(watchdog.cmdline, [path.join(platformDir, WATCHDOG), String(child.pid)]);
      t.diagnostic(`watchdog pid ${watchdog.pid}: ${watchdog.exe}`);

      const t0 = Date.now();
      child.kill('SIGKILL');
      await exited;
      await waitFor(() => !containerExists(id) && !volumeExists(id),
        { timeout: 10_000, what: 'the run of the killed host removed' });
      const elapsed = Date.now() - t0;
      t.diagnostic(`container and volume removed ${elapsed} ms after the SIGKILL`);
      // It keeps watching for 10 s for a create the host sent just before it
      // died (the daemon may land it after the first removal), then exits.
      await waitFor(() => !isAlive(watchdog.pid), { timeout: 20_000, what: 'the watchdog exited' });
      assertGone(id);
    });
  });
}
