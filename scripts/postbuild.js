'use strict';
// After `napi build`: copy the native watchdog binary (built by the same
// cargo invocation) next to index.js, where the loader (native.js) finds it
// in a source checkout. Published installs take it from the platform package.
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const name = 'light-runner-watchdog';
const target = path.join(root, 'target');
// The profile just built: `node scripts/postbuild.js debug` after a debug build.
const profile = process.argv[2] === 'debug' ? 'debug' : 'release';
const candidates = [path.join(target, profile, name)];
for (const dir of fs.existsSync(target) ? fs.readdirSync(target) : []) {
  candidates.push(path.join(target, dir, profile, name));
}
const found = candidates
  .filter((p) => fs.existsSync(p))
  .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
if (!found) {
  console.warn(`light-runner: ${name} not built; attached runs will use a node watchdog`);
} else {
  // Copy then rename: a running watchdog keeps its old inode (no ETXTBSY).
  const tmp = path.join(root, `.${name}.${process.pid}.tmp`);
  fs.copyFileSync(found, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, path.join(root, name));
}
