// `npm run build:all [-- <target or platform> ...]`: the release build of the
// addon (.node) and the watchdog for every target of package.json
// `napi.targets` (or the ones named: `aarch64-unknown-linux-gnu` or
// `linux-arm64-gnu`), each with cargo-zigbuild (zig as C compiler and
// linker), then `npm run pack` packs one platform package per target.
//
// - linux gnu: against glibc 2.17 (`--target <triple>.2.17`);
// - linux musl: the C runtime linked dynamically (napi build adds
//   `-C target-feature=-crt-static`, .cargo/config.toml says it to plain cargo);
// - macOS: MACOSX_DEPLOYMENT_TARGET 10.15 (x64) / 11.0 (arm64), then both
//   binaries re-signed ad hoc with `rcodesign` (crates.io `apple-codesign`,
//   installed into ~/.cargo/bin when missing): arm64 macOS kills unsigned code.
//
// Needs: rustup, zig and cargo-zigbuild on PATH (`pip install ziglang
// cargo-zigbuild`). Missing rustup targets are added. Ends with
// scripts/postbuild.js, which copies only this machine's watchdog into the
// checkout root.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { crateLib, platformOf } from './pack.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

/** How each target is built: napi's --target spelling, extra environment. */
export const BUILD = {
  'x86_64-unknown-linux-gnu': { zigTarget: 'x86_64-unknown-linux-gnu.2.17', glibc: '2.17' },
  'aarch64-unknown-linux-gnu': { zigTarget: 'aarch64-unknown-linux-gnu.2.17', glibc: '2.17' },
  'x86_64-unknown-linux-musl': {},
  'aarch64-unknown-linux-musl': {},
  'x86_64-apple-darwin': { macos: '10.15' },
  'aarch64-apple-darwin': { macos: '11.0' },
};

const RCODESIGN = { crate: 'apple-codesign', version: '0.29.0' };

function log(msg) {
  console.log(`[build:all] ${msg}`);
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function run(cmd, args, env = {}) {
  log(`${Object.entries(env).map(([k, v]) => `${k}=${v} `).join('')}${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
}

/** `rcodesign`, installed once into ~/.cargo/bin (a slow build: without its notarization features). */
export function rcodesign() {
  const cargoBin = path.join(os.homedir(), '.cargo', 'bin', 'rcodesign');
  if (have('rcodesign')) return 'rcodesign';
  if (fs.existsSync(cargoBin)) return cargoBin;
  log(`rcodesign missing: cargo install ${RCODESIGN.crate} ${RCODESIGN.version} (once, several minutes)`);
  run('nice', ['-n', '10', 'cargo', 'install', RCODESIGN.crate, '--version', RCODESIGN.version,
    '--no-default-features', '--locked']);
  return fs.existsSync(cargoBin) ? cargoBin : 'rcodesign';
}

function ensureTools(triples) {
  const missing = ['rustup', 'cargo', 'cargo-zigbuild'].filter((c) => !have(c));
  if (missing.length) {
    throw new Error(`build:all needs ${missing.join(', ')} on PATH `
      + '(zig and cargo-zigbuild: `pip install ziglang cargo-zigbuild`, see README)');
  }
  const installed = execFileSync('rustup', ['target', 'list', '--installed'], { encoding: 'utf8' }).split('\n');
  const add = triples.filter((t) => !installed.includes(t));
  if (add.length) run('rustup', ['target', 'add', ...add]);
}

/** Ad-hoc signature (no identity), replacing the one zig's linker wrote. */
function sign(tool, file, identifier) {
  run(tool, ['sign', '--binary-identifier', identifier, file]);
}

export function buildTarget(triple) {
  const spec = BUILD[triple];
  if (!spec) throw new Error(`no build recipe for ${triple} (scripts/build-all.mjs BUILD)`);
  const platform = platformOf(triple);
  const env = spec.macos ? { MACOSX_DEPLOYMENT_TARGET: spec.macos } : {};
  const t0 = Date.now();
  run('nice', ['-n', '10', 'npx', 'napi', 'build', '--platform', '--release', '-x',
    '--target', spec.zigTarget ?? triple, '--no-js', '--dts', 'native.d.ts'], env);
  const release = path.join(ROOT, 'target', triple, 'release');
  const lib = path.join(release, crateLib(triple));
  const watchdog = path.join(release, 'light-runner-watchdog');
  for (const f of [lib, watchdog]) if (!fs.existsSync(f)) throw new Error(`${triple}: ${f} was not built`);
  if (spec.macos) {
    const tool = rcodesign();
    sign(tool, watchdog, 'light-runner-watchdog');
    sign(tool, lib, 'light-runner');
    // The .node napi copied is the unsigned one: copy the signed library.
    fs.copyFileSync(lib, path.join(ROOT, `${PKG.napi.binaryName}.${platform}.node`));
  }
  const s = ((Date.now() - t0) / 1000).toFixed(0);
  log(`${triple}: built in ${s} s (${(fs.statSync(lib).size / 2 ** 20).toFixed(1)} MiB addon, `
    + `${(fs.statSync(watchdog).size / 2 ** 20).toFixed(1)} MiB watchdog)`);
  return { triple, platform, seconds: Number(s) };
}

/** The targets named on the command line (triples or platform names), else all. */
export function selectTargets(args) {
  const all = PKG.napi.targets;
  if (!args.length) return all;
  return args.map((a) => {
    const t = all.find((x) => x === a || platformOf(x) === a);
    if (!t) throw new Error(`${a} is not in package.json napi.targets (${all.join(', ')})`);
    return t;
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const targets = selectTargets(process.argv.slice(2));
  ensureTools(targets);
  const done = [];
  for (const t of targets) done.push(buildTarget(t));
  run(process.execPath, [path.join(ROOT, 'scripts', 'postbuild.js')]);
  for (const d of done) log(`${d.platform}: ${d.seconds} s`);
}
