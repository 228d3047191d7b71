'use strict';
// Loads the addon for this platform and tells it where its native watchdog
// binary is: from the prebuilt platform package npm or pnpm picked among the
// published package's `optionalDependencies` (light-runner-linux-x64-gnu,
// ...), else from a `.node` built in this folder (`npm run build`, for
// contributors), else an error naming the platform and how to build.
const fs = require('node:fs');
const path = require('node:path');

function isMusl() {
  try {
    return fs.readFileSync('/usr/bin/ldd', 'latin1').includes('musl');
  } catch {
    const report = process.report && process.report.getReport();
    return !(report && report.header && report.header.glibcVersionRuntime);
  }
}

// The napi-rs platform name: linux-x64-gnu, linux-arm64-musl, darwin-arm64, ...
const platform = process.platform === 'linux'
  ? `linux-${process.arch}-${isMusl() ? 'musl' : 'gnu'}`
  : `${process.platform}-${process.arch}`;
const pkg = `light-runner-${platform}`;
const file = `light-runner.${platform}.node`;

const sources = [() => path.dirname(require.resolve(`${pkg}/package.json`)), () => __dirname];

const errors = [];
let native;
for (const source of sources) {
  let dir;
  try {
    dir = source();
    native = require(path.join(dir, file));
  } catch (e) {
    errors.push(`  ${dir ? path.join(dir, file) : pkg}: ${e.message.split('\n')[0]}`);
    continue;
  }
  // What was loaded, for `light-runner doctor`.
  let version;
  if (source === sources[0]) {
    try {
      version = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
    } catch { /* unknown */ }
  }
  Object.defineProperty(native, '_loaded', {
    value: { platform, file: path.join(dir, file), package: source === sources[0] ? pkg : null, version },
  });
  const watchdog = path.join(dir, 'light-runner-watchdog');
  try {
    fs.accessSync(watchdog, fs.constants.X_OK);
    native._setWatchdogBinary(watchdog);
  } catch {
    // No native watchdog: attached runs use `node watchdog.js` instead.
  }
  break;
}

if (!native) {
  throw new Error(
    `light-runner: no native addon for ${platform}. The prebuilt package ${pkg} is not `
    + 'installed (optional dependencies omitted, or none is published for this platform) '
    + `and no build was found:\n${errors.join('\n')}\n`
    + 'Build from source: with Rust (https://rustup.rs) and a C compiler, run '
    + '`npm install && npm run build:host` in a checkout of the light-runner (Rust) repository '
    + '(see its README, "Build from source").',
  );
}

module.exports = native;
