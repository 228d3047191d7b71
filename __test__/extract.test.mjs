// Extract, end to end (SPEC section 7): where a directory or a file lands,
// per-entry errors that never fail the run, the cap enforced while
// streaming, nothing extracted from a failed run, and a hostile container
// that cannot make the host write outside `to`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { DockerRunner } from '../index.mjs';
import { BUSYBOX, rmrf, runToEnd, tmpdir, treeOf } from './helpers.mjs';

const read = (p) => fs.readFileSync(p, 'utf8');

function assertOk(r, spec) {
  assert.equal(r.from, spec.from, 'from echoed');
  assert.equal(r.to, spec.to, 'to echoed');
  assert.equal(r.status, 'ok', `status of ${JSON.stringify(spec)}: ${JSON.stringify(r)}`);
  assert.equal(typeof r.bytes, 'number', `bytes of ${JSON.stringify(r)}`);
  assert.ok(r.bytes > 0, `bytes > 0: ${JSON.stringify(r)}`);
  assert.equal(r.error, undefined, `no error on ok: ${JSON.stringify(r)}`);
}

function assertError(r, spec, re) {
  assert.equal(r.from, spec.from, 'from echoed');
  assert.equal(r.to, spec.to, 'to echoed');
  assert.equal(r.status, 'error', `status of ${JSON.stringify(spec)}: ${JSON.stringify(r)}`);
  assert.equal(typeof r.error, 'string', `error message: ${JSON.stringify(r)}`);
  assert.ok(r.error.length > 0);
  if (re) assert.match(r.error, re);
}

// Produces, under /app: out/{x.txt, sub/y.txt, sub/deeper/z.txt}, single.txt.
const PRODUCE = [
  'mkdir -p /app/out/sub/deeper',
  'printf "x-content" > /app/out/x.txt',
  'printf "y-content" > /app/out/sub/y.txt',
  'printf "z-content" > /app/out/sub/deeper/z.txt',
  'printf "single" > /app/single.txt',
].join(' && ');

const OUT_TREE = ['sub/deeper/z.txt:file', 'sub/deeper:dir', 'sub/y.txt:file', 'sub:dir', 'x.txt:file'];

test('extract: dir from lands directly in to (trailing slash, absolute or relative), file from lands as to/basename, missing reported, order kept', async (t) => {
  const base = tmpdir('lr-extract-');
  try {
    const specs = [
      { from: 'out', to: path.join(base, 'rel') },
      { from: 'out/', to: path.join(base, 'slash') },
      { from: '/app/out', to: path.join(base, 'abs/created/recursively') },
      { from: '/app/out/', to: path.join(base, 'abs-slash') },
      { from: 'single.txt', to: path.join(base, 'file') },
      { from: '/app/out/sub/y.txt', to: path.join(base, 'file-abs/a/b') },
      { from: 'nope', to: path.join(base, 'missing') },
      { from: '/app/out/sub', to: path.join(base, 'subdir') },
      { from: '/does/not/exist.txt', to: path.join(base, 'missing2') },
    ];
    const runner = new DockerRunner();
    const { result, lines } = await runToEnd(t, runner, {
      image: BUSYBOX, network: 'none', command: PRODUCE, extract: specs,
    });
    assert.equal(result.success, true, lines.join('\n'));
    assert.ok(Array.isArray(result.extracted), 'extracted present');
    assert.equal(result.extracted.length, specs.length, 'one ExtractResult per spec');

    for (const i of [0, 1, 2, 3]) {
      assertOk(result.extracted[i], specs[i]);
      assert.deepEqual(treeOf(specs[i].to), OUT_TREE, `contents of out directly in ${specs[i].to}`);
      assert.equal(read(path.join(specs[i].to, 'x.txt')), 'x-content');
      assert.equal(read(path.join(specs[i].to, 'sub/y.txt')), 'y-content');
      assert.equal(read(path.join(specs[i].to, 'sub/deeper/z.txt')), 'z-content');
    }
    assertOk(result.extracted[4], specs[4]);
    assert.deepEqual(treeOf(specs[4].to), ['single.txt:file']);
    assert.equal(read(path.join(specs[4].to, 'single.txt')), 'single');

    assertOk(result.extracted[5], specs[5]);
    assert.deepEqual(treeOf(specs[5].to), ['y.txt:file']);
    assert.equal(read(path.join(specs[5].to, 'y.txt')), 'y-content');

    assert.deepEqual(result.extracted[6], { from: 'nope', to: specs[6].to, status: 'missing' });

    assertOk(result.extracted[7], specs[7]);
    assert.deepEqual(treeOf(specs[7].to), ['deeper/z.txt:file', 'deeper:dir', 'y.txt:file']);

    assert.deepEqual(result.extracted[8], { from: specs[8].from, to: specs[8].to, status: 'missing' });
  } finally {
    rmrf(base);
  }
});

test('extract: relative from is relative to a custom workdir', async (t) => {
  const base = tmpdir('lr-extract-');
  try {
    const spec = { from: 'res', to: path.join(base, 'to') };
    const runner = new DockerRunner();
    const { result, lines } = await runToEnd(t, runner, {
      image: BUSYBOX,
      network: 'none',
      workdir: '/job',
      command: 'mkdir -p /job/res /app/res && echo right > /job/res/r.txt && echo wrong > /app/res/w.txt',
      extract: [spec],
    });
    assert.equal(result.success, true, lines.join('\n'));
    assertOk(result.extracted[0], spec);
    assert.deepEqual(treeOf(spec.to), ['r.txt:file']);
    assert.equal(read(path.join(spec.to, 'r.txt')), 'right\n');
  } finally {
    rmrf(base);
  }
});

test('extract: empty from/to, .. segments and a file destination are per-entry errors; the run still succeeds', async (t) => {
  const base = tmpdir('lr-extract-');
  try {
    const fileDest = path.join(base, 'dest-is-a-file');
    fs.writeFileSync(fileDest, 'keep me');
    const specs = [
      { from: '', to: path.join(base, 'e1') },
      { from: 'out', to: '' },
      { from: '../etc/passwd', to: path.join(base, 't1') },
      { from: 'out/../../etc', to: path.join(base, 't2') },
      { from: '/app/out/..', to: path.join(base, 't3') },
      { from: 'out', to: fileDest },
      { from: 'out', to: path.join(base, 'good') },
    ];
    const runner = new DockerRunner();
    const { result, lines } = await runToEnd(t, runner, {
      image: BUSYBOX, network: 'none', command: PRODUCE, extract: specs,
    });
    assert.equal(result.success, true, `a bad extract entry must not fail the run: ${JSON.stringify(result)} ${lines.join('\n')}`);
    assert.equal(result.exitCode, 0);
    assert.equal(result.extracted.length, specs.length);
    assertError(result.extracted[0], specs[0]);
    assertError(result.extracted[1], specs[1]);
    for (const i of [2, 3, 4]) {
      assertError(result.extracted[i], specs[i], /traversal/);
      assert.equal(fs.existsSync(specs[i].to), false, `nothing written for a rejected ${specs[i].from}`);
    }
    assertError(result.extracted[5], specs[5]);
    assert.equal(read(fileDest), 'keep me', 'destination file untouched');
    assertOk(result.extracted[6], specs[6]);
    assert.deepEqual(treeOf(specs[6].to), OUT_TREE);
    // Nothing else appeared next to the destinations.
    assert.deepEqual(fs.readdirSync(base).sort(), ['dest-is-a-file', 'good']);
  } finally {
    rmrf(base);
  }
});

test('extract: maxExtractBytes 1000 turns an over-cap entry into an error; the run still succeeds', async (t) => {
  const base = tmpdir('lr-extract-');
  try {
    const specs = [
      { from: 'big.bin', to: path.join(base, 'big') },
      { from: 'bigdir', to: path.join(base, 'bigdir') },
    ];
    const runner = new DockerRunner({ maxExtractBytes: 1000 });
    const { result, lines } = await runToEnd(t, runner, {
      image: BUSYBOX,
      network: 'none',
      command: 'head -c 5000 /dev/urandom > /app/big.bin && mkdir /app/bigdir && head -c 3000 /dev/urandom > /app/bigdir/a && head -c 3000 /dev/urandom > /app/bigdir/b',
      extract: specs,
    });
    assert.equal(result.success, true, lines.join('\n'));
    assert.equal(result.extracted.length, 2);
    for (const [i, spec] of specs.entries()) {
      assertError(result.extracted[i], spec);
      // Enforced while streaming: never more than the cap lands on disk.
      if (fs.existsSync(spec.to)) {
        let total = 0;
        for (const e of treeOf(spec.to)) {
          if (e.endsWith(':file')) total += fs.statSync(path.join(spec.to, e.slice(0, -5))).size;
        }
        assert.ok(total <= 1000, `${total} bytes written past a 1000-byte cap`);
      }
    }
  } finally {
    rmrf(base);
  }
});

test('extract: the cap is per entry and counts while streaming (1 MiB over a 64 KiB cap fails, a small entry passes)', async (t) => {
  const base = tmpdir('lr-extract-');
  try {
    const cap = 64 * 1024;
    const specs = [
      { from: 'small', to: path.join(base, 'small') },
      { from: 'large', to: path.join(base, 'large') },
      { from: 'small2', to: path.join(base, 'small2') },
    ];
    const runner = new DockerRunner({ maxExtractBytes: cap });
    const { result, lines } = await runToEnd(t, runner, {
      image: BUSYBOX,
      network: 'none',
      command: 'mkdir small large small2 && echo s > small/s.txt && head -c 1048576 /dev/urandom > large/l.bin && head -c 40000 /dev/urandom > small2/m.bin',
      extract: specs,
    });
    assert.equal(result.success, true, lines.join('\n'));
    assertOk(result.extracted[0], specs[0]);
    assert.ok(result.extracted[0].bytes <= cap);
    assert.equal(read(path.join(specs[0].to, 's.txt')), 's\n');
    assertError(result.extracted[1], specs[1]);
    if (fs.existsSync(path.join(specs[1].to, 'l.bin'))) {
      assert.ok(fs.statSync(path.join(specs[1].to, 'l.bin')).size <= cap, 'cap enforced while streaming');
    }
    assertOk(result.extracted[2], specs[2]);
    assert.equal(fs.statSync(path.join(specs[2].to, 'm.bin')).size, 40000);
  } finally {
    rmrf(base);
  }
});

test('extract: no `extracted` when the run fails (non-zero exit) and none when extract is not given', async (t) => {
  const base = tmpdir('lr-extract-');
  try {
    const spec = { from: 'out', to: path.join(base, 'to') };
    const runner = new DockerRunner();
    const failed = await runToEnd(t, runner, {
      image: BUSYBOX, network: 'none', command: `${PRODUCE} && exit 3`, extract: [spec],
    });
    assert.equal(failed.result.success, false);
    assert.equal(failed.result.exitCode, 3);
    assert.equal('extracted' in failed.result, false, `extracted on a failed run: ${JSON.stringify(failed.result)}`);
    assert.equal(fs.existsSync(spec.to), false, 'nothing extracted from a failed run');

    const plain = await runToEnd(t, runner, { image: BUSYBOX, network: 'none', command: PRODUCE });
    assert.equal(plain.result.success, true);
    assert.equal('extracted' in plain.result, false, `extracted without extract: ${JSON.stringify(plain.result)}`);

    const empty = await runToEnd(t, runner, { image: BUSYBOX, network: 'none', command: PRODUCE, extract: [] });
    assert.equal(empty.result.success, true);
    if ('extracted' in empty.result) assert.deepEqual(empty.result.extracted, []);
  } finally {
    rmrf(base);
  }
});

test('extract: a malicious container (symlinks, hardlink, FIFO, device node) cannot make the host write outside `to`', async (t) => {
  const base = tmpdir('lr-extract-evil-');
  try {
    const to = path.join(base, 'to');
    const sibling = path.join(base, 'sibling');
    fs.mkdirSync(sibling);
    const passwdBefore = fs.readFileSync('/etc/passwd');
    // A symlink target that exists on the host (not in the container).
    const hostTarget = path.join(sibling, 'pwned.txt');
    const command = [
      'set -e',
      'mkdir -p /app/out/sub /app/out/dirlinks',
      'cd /app/out',
      'echo normal > normal.txt',
      'echo deep > sub/deep.txt',
      'ln -s /etc/passwd passwd-link',
      'ln -s / root-link',
      'ln -s ../../.. up-link',
      'ln -s ../../../../../../../../.. sub/far-up-link',
      `ln -s ${hostTarget} host-target-link`,
      `ln -s ${sibling} dirlinks/sibling-link`,
      'ln -s /etc dirlinks/etc-link',
      'ln normal.txt zz-hardlink.txt',
      'ln sub/deep.txt sub/zz-hardlink-deep.txt',
      'mkfifo fifo',
      'mkfifo sub/fifo2',
      '(mknod null-dev c 1 3 && echo MKNOD_OK) || echo MKNOD_FAILED',
      // Links also at the paths `from` names directly.
      'ln -s /etc /app/evil-dir-link',
      'ln -s /etc/passwd /app/evil-file-link',
      'ls -la /app/out',
    ].join('\n');
    const specs = [
      { from: 'out', to },
      { from: 'out/passwd-link', to: path.join(base, 'to-link-file') },
      { from: 'out/root-link', to: path.join(base, 'to-link-root') },
      { from: 'out/fifo', to: path.join(base, 'to-fifo') },
      { from: 'evil-dir-link', to: path.join(base, 'to-evil-dir') },
      { from: 'evil-file-link', to: path.join(base, 'to-evil-file') },
    ];
    const runner = new DockerRunner();
    const { result, lines } = await runToEnd(t, runner, {
      image: BUSYBOX, network: 'none', command, extract: specs,
    });
    assert.equal(result.success, true, `${JSON.stringify(result)}\n${lines.join('\n')}`);
    assert.equal(result.extracted.length, specs.length);
    // The container really produced the hostile entries.
    assert.ok(lines.some((l) => /passwd-link -> \/etc\/passwd$/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /root-link -> \/$/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /up-link -> \.\.\/\.\.\/\.\.$/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^p.* fifo$/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^-\S+\s+2 .* normal\.txt$/.test(l)), `hardlink count 2: ${lines.join('\n')}`);
    t.diagnostic(`mknod: ${lines.includes('MKNOD_OK') ? 'created' : 'refused (CapDrop MKNOD)'}`);
    t.diagnostic(`statuses: ${result.extracted.map((r) => `${r.from}=${r.status}`).join(', ')}`);
    // The main extraction succeeds: unsafe entries are skipped, not fatal.
    assertOk(result.extracted[0], specs[0]);
    // Hardlinks inside the tree land as regular files (SPEC section 7);
    // symlinks, FIFOs and devices never do.
    assert.deepEqual(treeOf(to), ['normal.txt:file', 'sub/deep.txt:file', 'sub:dir', 'dirlinks:dir',
      'zz-hardlink.txt:file', 'sub/zz-hardlink-deep.txt:file'].sort(),
    `only the regular files, hardlinks as files, and dirs land in to:\n${treeOf(to).join('\n')}`);
    assert.equal(read(path.join(to, 'zz-hardlink.txt')), 'normal\n');
    assert.equal(read(path.join(to, 'normal.txt')), 'normal\n');
    assert.equal(read(path.join(to, 'sub/deep.txt')), 'deep\n');

    // The other specs point straight at links / a FIFO: whatever their status,
    // no link or special file may appear on the host.
    for (const [i, spec] of specs.entries()) {
      const r = result.extracted[i];
      assert.ok(['ok', 'missing', 'error'].includes(r.status), JSON.stringify(r));
      if (fs.existsSync(spec.to)) {
        const bad = treeOf(spec.to).filter((e) => !e.endsWith(':file') && !e.endsWith(':dir'));
        assert.deepEqual(bad, [], `non-regular entries under ${spec.to}`);
      }
    }
    // Nothing written outside the destinations.
    assert.deepEqual(fs.readdirSync(sibling), [], 'sibling dir stays empty');
    const allowed = new Set(['to', 'sibling', ...specs.map((s) => path.basename(s.to))]);
    for (const name of fs.readdirSync(base)) assert.ok(allowed.has(name), `unexpected ${name} in ${base}`);
    for (const e of treeOf(base)) {
      assert.ok(e.endsWith(':file') || e.endsWith(':dir'), `non-regular entry on the host: ${e}`);
    }
    assert.deepEqual(fs.readFileSync('/etc/passwd'), passwdBefore, 'host /etc/passwd untouched');
  } finally {
    rmrf(base);
  }
});
