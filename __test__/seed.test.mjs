// Seeding `dir` into the run's volume through the Engine archive API (SPEC
// section 6): structure, ignores, symlinks skipped, modes, a missing or
// non-directory `dir` rejected before any Docker resource exists, and memory
// that does not grow with the folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { DockerRunner } from '../index.mjs';
import {
  BUSYBOX, ROOT, assertGone, docker, labelledResources, rmrf, runNode, runToEnd, scopeOf, sleep, tmpdir,
} from './helpers.mjs';

const DEFAULT_IGNORES = ['.git', 'node_modules', 'dist', 'build', '.next', '.cache', '.turbo', 'coverage'];

function write(root, rel, content, mode) {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  if (mode !== undefined) fs.chmodSync(p, mode);
}

/** Parses `stat -c '%a|%F|%n'` lines (paths relative to /app, `./x`). */
function parseStat(lines) {
  const map = new Map();
  for (const l of lines) {
    const m = /^STAT (\d+)\|([^|]+)\|(.*)$/.exec(l);
    if (m) map.set(m[3].replace(/^\.\/?/, '') || '.', { mode: m[1], type: m[2] });
  }
  return map;
}

test('seed: structure kept, default ignores + ignore at any depth, symlinks skipped, a+rwX, exec bits', async (t) => {
  const dir = tmpdir('lr-seed-');
  try {
    // Plain content and nested structure.
    write(dir, 'a.txt', 'alpha\n', 0o644);
    write(dir, 'private.txt', 'secret-ish\n', 0o600);
    write(dir, 'readonly.txt', 'ro\n', 0o444);
    write(dir, 'run.sh', '#!/bin/sh\necho "script ran: $0"\n', 0o755);
    write(dir, 'owner-exec.sh', '#!/bin/sh\necho owner-exec-ok\n', 0o700);
    write(dir, 'sub/deep/nested/file.txt', 'deep content\n', 0o640);
    write(dir, 'sub/tool.sh', '#!/bin/sh\necho nested-tool-ok\n', 0o750);
    fs.mkdirSync(path.join(dir, 'empty-dir'));
    fs.chmodSync(path.join(dir, 'empty-dir'), 0o700);
    fs.mkdirSync(path.join(dir, 'sub/locked'));
    write(dir, 'sub/locked/in.txt', 'locked\n', 0o600);
    fs.chmodSync(path.join(dir, 'sub/locked'), 0o700);
    // Default ignores, at the top and deep down.
    for (const name of DEFAULT_IGNORES) {
      write(dir, `${name}/x.txt`, 'ignored\n');
      write(dir, `sub/deep/${name}/y.txt`, 'ignored\n');
    }
    // Caller's ignore: a file name and a directory name, at several depths.
    write(dir, 'secret.env', 'TOKEN=1\n');
    write(dir, 'sub/secret.env', 'TOKEN=2\n');
    write(dir, 'scratch/z.txt', 'ignored\n');
    write(dir, 'sub/deep/scratch/z.txt', 'ignored\n');
    // Symlinks: to a file, to a dir, absolute, dangling, nested.
    fs.symlinkSync('a.txt', path.join(dir, 'link-to-file'));
    fs.symlinkSync('sub', path.join(dir, 'link-to-dir'));
    fs.symlinkSync('/etc/passwd', path.join(dir, 'link-abs'));
    fs.symlinkSync('does-not-exist', path.join(dir, 'link-dangling'));
    fs.symlinkSync('../../a.txt', path.join(dir, 'sub/deep/link-up'));

    const runner = new DockerRunner();
    const { result, lines } = await runToEnd(t, runner, {
      image: BUSYBOX,
      network: 'none',
      dir,
      ignore: ['secret.env', 'scratch'],
      command: [
        'cd /app',
        "find . -exec stat -c 'STAT %a|%F|%n' {} \\;",
        'echo "CAT $(cat sub/deep/nested/file.txt)"',
        './run.sh',
        './owner-exec.sh',
        './sub/tool.sh',
        // Writable by anyone: a file owned by root with 666 can be appended to.
        'echo appended >> readonly.txt && echo "RO $(cat readonly.txt | tr "\\n" ,)"',
      ].join(' && '),
    });
    assert.equal(result.success, true, `run failed: ${JSON.stringify(result)}\n${lines.join('\n')}`);

    const st = parseStat(lines);
    const expected = {
      '.': ['777', 'directory'],
      'a.txt': ['666', 'regular file'],
      'private.txt': ['666', 'regular file'],
      'readonly.txt': ['666', 'regular file'],
      'run.sh': ['777', 'regular file'],
      'owner-exec.sh': ['777', 'regular file'],
      'empty-dir': ['777', 'directory'],
      sub: ['777', 'directory'],
      'sub/tool.sh': ['777', 'regular file'],
      'sub/deep': ['777', 'directory'],
      'sub/deep/nested': ['777', 'directory'],
      'sub/deep/nested/file.txt': ['666', 'regular file'],
      'sub/locked': ['777', 'directory'],
      'sub/locked/in.txt': ['666', 'regular file'],
    };
    // One comparison of the whole tree, so every difference shows at once.
    const actual = Object.fromEntries([...st].map(([p, v]) => [p, [v.mode, v.type]]));
    assert.deepEqual(actual, expected,
      `seeded tree (path -> [mode, type]) differs:\n${lines.filter((l) => l.startsWith('STAT')).join('\n')}`);
    assert.ok(lines.includes('CAT deep content'), 'nested file content arrives');
    assert.ok(lines.includes('script ran: ./run.sh'), 'chmod 755 script runs directly');
    assert.ok(lines.includes('owner-exec-ok'), 'chmod 700 script runs directly');
    assert.ok(lines.includes('nested-tool-ok'), 'nested executable runs directly');
    assert.ok(lines.includes('RO ro,appended,'), 'read-only file became writable');
  } finally {
    rmrf(dir);
  }
});

test('seed: files and dirs are readable and writable by a non-root user in the container', async (t) => {
  const dir = tmpdir('lr-seed-');
  try {
    write(dir, 'data.txt', 'x\n', 0o600);
    write(dir, 'bin.sh', '#!/bin/sh\necho nobody-exec-ok\n', 0o700);
    write(dir, 'nested/inner.txt', 'y\n', 0o600);
    fs.chmodSync(path.join(dir, 'nested'), 0o700);
    const runner = new DockerRunner();
    // Root in the container may `su` to nobody (uid 65534) without setuid.
    const { result, lines } = await runToEnd(t, runner, {
      image: BUSYBOX,
      network: 'none',
      dir,
      command: [
        'cd /app',
        'su -s /bin/sh nobody -c "id -u && cat data.txt nested/inner.txt && echo w >> data.txt && echo n > nested/new.txt && echo n2 > new-top.txt && ./bin.sh && echo NOBODY_OK"',
      ].join(' && '),
    });
    assert.equal(result.success, true, lines.join('\n'));
    assert.deepEqual(lines, ['65534', 'x', 'y', 'nobody-exec-ok', 'NOBODY_OK']);
  } finally {
    rmrf(dir);
  }
});

test('seed: a custom workdir receives the contents at its root', async (t) => {
  const dir = tmpdir('lr-seed-');
  try {
    write(dir, 'top.txt', 'top\n');
    write(dir, 'a/b.txt', 'b\n');
    const runner = new DockerRunner();
    const { result, lines } = await runToEnd(t, runner, {
      image: BUSYBOX,
      network: 'none',
      dir,
      workdir: '/srv/deep/job',
      command: 'pwd && cat /srv/deep/job/top.txt /srv/deep/job/a/b.txt && stat -c "MODE %a" /srv/deep/job',
    });
    assert.equal(result.success, true, lines.join('\n'));
    assert.deepEqual(lines, ['/srv/deep/job', 'top', 'b', 'MODE 777']);
  } finally {
    rmrf(dir);
  }
});

async function assertRejectsWithoutResources(t, dir, message) {
  const runner = new DockerRunner();
  const exec = runner.run({ image: BUSYBOX, network: 'none', dir, command: 'echo should-not-run' });
  const id = scopeOf(t).track(exec.id);
  await assert.rejects(exec.result, (e) => {
    assert.equal(e.message, message);
    return true;
  });
  // Nothing of this run may exist, now or a moment later.
  for (let i = 0; i < 3; i++) {
    assertGone(id);
    assert.deepEqual(labelledResources(id), { containers: [], volumes: [] });
    assert.ok(!docker('ps', '-a', '--format', '{{.Names}}').includes(id), `container of ${id} listed`);
    assert.ok(!docker('volume', 'ls', '-q').includes(id), `volume of ${id} listed`);
    await sleep(250);
  }
}

test('seed: a missing dir rejects with "dir path not found: <dir>" and creates nothing', async (t) => {
  const base = tmpdir('lr-seed-');
  try {
    const missing = path.join(base, 'no-such-dir');
    await assertRejectsWithoutResources(t, missing, `dir path not found: ${missing}`);
  } finally {
    rmrf(base);
  }
});

test('seed: a file instead of a dir rejects with "dir path is not a directory: <dir>" and creates nothing', async (t) => {
  const base = tmpdir('lr-seed-');
  try {
    const file = path.join(base, 'a-file.txt');
    fs.writeFileSync(file, 'not a dir');
    await assertRejectsWithoutResources(t, file, `dir path is not a directory: ${file}`);
  } finally {
    rmrf(base);
  }
});

// ---- streaming: RSS of the launching process stays flat -------------------

const FILES = 20;
const FILE_MB = 10;
const LIMIT_MB = 64;

// Runs in a fresh Node process so the test runner's own allocations (and
// the 200 MB fixture generation) don't pollute the measurement.
const CHILD = `
import { DockerRunner } from ${JSON.stringify(path.join(ROOT, 'index.mjs'))};
const [bigDir, smallDir, image] = process.argv.slice(-3);
const runner = new DockerRunner();
const lines = [];
const ids = [];
async function run(dir, command) {
  const exec = runner.run({ image, dir, network: 'none', command, onLog: (l) => lines.push(l) });
  ids.push(exec.id);
  process.stderr.write(\`id \${exec.id}\\n\`);
  return exec.result;
}
// Warm-up: the runtime, the connection pool, a small seed.
await run(smallDir, 'true');
await run(smallDir, 'true');
globalThis.gc?.();
await new Promise((r) => setTimeout(r, 200));
const baseline = process.memoryUsage().rss;
let max = baseline;
const timer = setInterval(() => { max = Math.max(max, process.memoryUsage().rss); }, 20);
const result = await run(bigDir, 'cd /app && md5sum f07.bin && echo "TOTAL $(cat *.bin | wc -c)" && echo "COUNT $(ls | wc -l)"');
clearInterval(timer);
max = Math.max(max, process.memoryUsage().rss);
process.stdout.write(JSON.stringify({ baseline, max, growth: max - baseline, result, lines, ids }) + '\\n');
`;

test(`seed: streaming a ${FILES * FILE_MB} MB folder grows the launching process RSS by < ${LIMIT_MB} MB`, { timeout: 300_000 }, async (t) => {
  const big = tmpdir('lr-seed-big-');
  const small = tmpdir('lr-seed-small-');
  try {
    let md5of07 = null;
    for (let i = 0; i < FILES; i++) {
      const name = `f${String(i).padStart(2, '0')}.bin`;
      const fd = fs.openSync(path.join(big, name), 'w');
      const hash = crypto.createHash('md5');
      for (let j = 0; j < FILE_MB; j++) {
        const chunk = crypto.randomBytes(1 << 20);
        hash.update(chunk);
        fs.writeSync(fd, chunk);
      }
      fs.closeSync(fd);
      if (i === 7) md5of07 = hash.digest('hex');
    }
    write(small, 'w.txt', 'warm\n');
    write(small, 'w.bin', crypto.randomBytes(1 << 20));

    const r = await runNode(['--expose-gc', '--input-type=module', '-e', CHILD, big, small, BUSYBOX],
      { timeout: 280_000 });
    const ids = [...r.stderr.matchAll(/id (light-runner-[0-9a-f]{12})/g)].map((m) => scopeOf(t).track(m[1]));
    assert.equal(r.code, 0, `child exited ${r.code} (${r.signal}): ${r.stderr}`);
    let out;
    try {
      out = JSON.parse(r.stdout.trim().split('\n').pop());
    } catch {
      assert.fail(`bad child output: ${r.stdout}\n${r.stderr}`);
    }
    assert.equal(ids.length, 3, `the child announced its three runs: ${r.stderr}`);

    assert.equal(out.result.success, true, `big seed run failed: ${JSON.stringify(out)}`);
    // The bytes arrived.
    assert.ok(out.lines.includes(`${md5of07}  f07.bin`), `md5 of f07.bin: ${out.lines.join('\n')}`);
    assert.ok(out.lines.includes(`TOTAL ${FILES * FILE_MB * (1 << 20)}`), out.lines.join('\n'));
    assert.ok(out.lines.includes(`COUNT ${FILES}`), out.lines.join('\n'));
    const growthMb = out.growth / (1 << 20);
    t.diagnostic(`rss baseline ${(out.baseline / (1 << 20)).toFixed(1)} MB, growth ${growthMb.toFixed(1)} MB`);
    assert.ok(growthMb < LIMIT_MB,
      `RSS grew by ${growthMb.toFixed(1)} MB while seeding ${FILES * FILE_MB} MB (limit ${LIMIT_MB} MB)`);
    for (const id of ids) assertGone(id);
  } finally {
    rmrf(big);
    rmrf(small);
  }
});
