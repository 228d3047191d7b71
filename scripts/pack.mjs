// `npm run pack [-- --out <dir>]`: writes the npm tarballs of a release into
// <dir> (default dist-pkg/, gitignored), the napi-rs way:
//
// - one platform package per target of package.json `napi.targets` whose
//   release build exists here (`npm run build` makes x86_64-unknown-linux-gnu;
//   `npm run build:all` makes them all): npm/<platform>/ receives the
//   `.node` and the `light-runner-watchdog` binary of that build, then
//   `npm pack`;
// - the root package: the `files` of package.json, README.md and LICENSE, its
//   package.json gaining `optionalDependencies` on every platform package at
//   the same version (added here, like `napi pre-publish` does, so a clone
//   installs with `npm ci` before any platform package is published).
//
// Also writes <dir>/pack.json: each tarball with its manifest, for the
// install test and bench/install.mjs. Never compiles anything.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WATCHDOG = 'light-runner-watchdog';
/** What cargo names the cdylib of crate `light-runner` for a target. */
export function crateLib(triple) {
  if (triple.includes('-apple-')) return 'liblight_runner.dylib';
  if (triple.includes('-windows-')) return 'light_runner.dll';
  return 'liblight_runner.so';
}

/** napi-rs platform name of a Rust target: x86_64-unknown-linux-gnu -> linux-x64-gnu. */
export function platformOf(triple) {
  const [arch, , sys, abi] = triple.split('-');
  const cpu = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' }[arch] ?? arch;
  const platform = { linux: 'linux', darwin: 'darwin', windows: 'win32' }[sys] ?? sys;
  return abi ? `${platform}-${cpu}-${abi}` : `${platform}-${cpu}`;
}

function npmPack(dir, out) {
  const json = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], {
    cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [info] = JSON.parse(json);
  return { file: path.join(out, info.filename), size: info.size, unpackedSize: info.unpackedSize, files: info.files.map((f) => f.path) };
}

export function pack(out) {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const { binaryName, targets } = pkg.napi;
  fs.mkdirSync(out, { recursive: true });
  for (const f of fs.readdirSync(out)) {
    if (f.endsWith('.tgz') || f === 'pack.json') fs.rmSync(path.join(out, f));
  }

  const packages = [];
  const skipped = [];
  for (const triple of targets) {
    const platform = platformOf(triple);
    const dir = path.join(ROOT, 'npm', platform);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    if (manifest.name !== `${pkg.name}-${platform}` || manifest.version !== pkg.version) {
      throw new Error(`npm/${platform}/package.json must be ${pkg.name}-${platform}@${pkg.version}, `
        + `is ${manifest.name}@${manifest.version}`);
    }
    const release = path.join(ROOT, 'target', triple, 'release');
    const addon = path.join(ROOT, `${binaryName}.${platform}.node`);
    const watchdog = path.join(release, WATCHDOG);
    const lib = path.join(release, crateLib(triple));
    if (![addon, watchdog, lib].every((f) => fs.existsSync(f))) {
      skipped.push(`${platform} (no release build of ${triple} here)`);
      continue;
    }
    // The `.node` the tests load must be this target's release build, not a
    // later build:host or build:debug that wrote the same file name.
    if (!fs.readFileSync(addon).equals(fs.readFileSync(lib))) {
      throw new Error(`${path.basename(addon)} is not the release build in target/${triple}/release `
        + '(a build:host or build:debug ran since?): run `npm run build` (or `npm run build:all`) first');
    }
    fs.copyFileSync(addon, path.join(dir, path.basename(addon)));
    fs.copyFileSync(watchdog, path.join(dir, WATCHDOG));
    fs.chmodSync(path.join(dir, WATCHDOG), 0o755);
    fs.copyFileSync(path.join(ROOT, 'LICENSE'), path.join(dir, 'LICENSE'));
    packages.push({ name: manifest.name, platform, manifest, ...npmPack(dir, out) });
  }
  if (packages.length === 0) {
    throw new Error(`no release build found for any of ${targets.join(', ')}: run \`npm run build\` first`);
  }

  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'light-runner-pack-'));
  try {
    for (const f of [...pkg.files, 'README.md', 'LICENSE']) fs.cpSync(path.join(ROOT, f), path.join(stage, f));
    const manifest = {
      ...pkg,
      optionalDependencies: Object.fromEntries(targets.map((t) => [`${pkg.name}-${platformOf(t)}`, pkg.version])),
    };
    fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    packages.unshift({ name: pkg.name, platform: null, manifest, ...npmPack(stage, out) });
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  fs.writeFileSync(path.join(out, 'pack.json'), `${JSON.stringify({ packages, skipped }, null, 2)}\n`);
  return { packages, skipped };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = path.resolve(i > 0 ? process.argv[i + 1] : path.join(ROOT, 'dist-pkg'));
  const { packages, skipped } = pack(out);
  const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
  for (const p of packages) {
    console.log(`${path.relative(process.cwd(), p.file)}  packed ${kb(p.size)}, unpacked ${kb(p.unpackedSize)}`);
  }
  for (const s of skipped) console.log(`skipped: ${s}`);
}
