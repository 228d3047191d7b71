'use strict';
// After `napi build`: copy the native watchdog binary (built by the same
// cargo invocation) next to index.js, where the loader (native.js) finds it
// in a source checkout. Published installs take it from the platform package.
//
// Only a build for this machine qualifies: `target/<profile>/` (a build
// without --target) or `target/<host triple>/<profile>/` (`npm run build`'s
// zig build names the host triple). A cross build (`npm run build:all`:
// arm64, musl, macOS) never lands in the checkout root, so local runs are
// never guarded by a binary this machine cannot execute.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const name = 'light-runner-watchdog';
const target = path.join(root, 'target');
// The profile just built: `node scripts/postbuild.js debug` after a debug build.
const profile = process.argv[2] === 'debug' ? 'debug' : 'release';

/** rustc's host triple (x86_64-unknown-linux-gnu, aarch64-apple-darwin, ...). */
function hostTriple() {
  try {
    const out = execFileSync('rustc', ['-vV'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return /^host: (\S+)$/m.exec(out)?.[1];
  } catch {
    return undefined;
  }
}

const host = hostTriple();
const candidates = [path.join(target, profile, name)];
if (host) candidates.push(path.join(target, host, profile, name));
const found = candidates
  .filter((p) => fs.existsSync(p))
  .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
if (!found) {
  console.warn(`light-runner: ${name} not built for this machine (${host ?? 'rustc not found'}); `
    + 'attached runs will use a node watchdog');
} else {
  // Copy then rename: a running watchdog keeps its old inode (no ETXTBSY).
  const tmp = path.join(root, `.${name}.${process.pid}.tmp`);
  fs.copyFileSync(found, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, path.join(root, name));
}
