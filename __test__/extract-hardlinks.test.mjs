// Extract, SPEC section 7: a hardlink the job made (`ln` in the container)
// comes back as a regular file with its content, whichever of the two names
// the archive lists first; hostile hardlinks (to /etc/passwd, to `..`,
// absolute, through symlinks) never write outside `to`.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, deleteState } from 'light-runner';
import { BUSYBOX, FIXTURES, archiveProxy, assertGone, rmrf, runNode, scopeOf, tmpdir } from './helpers.mjs';

/** Every entry below `root` as `relative:kind:nlink` (lstat, links never followed). */
function tree(root) {
  const out = [];
  const walk = (rel) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r));
      const kind = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      out.push(`${r}:${kind}${kind === 'file' ? `:${st.nlink}` : ''}`);
      if (kind === 'dir') walk(r);
    }
  };
  walk('');
  return out;
}

// ---- a tar writer for crafted archives (ustar headers, raw names) ----

function header(name, type, { size = 0, link = '', mode = 0o644 } = {}) {
  const h = Buffer.alloc(512);
  const put = (s, off, len) => h.write(s, off, len, 'latin1');
  const oct = (n, len) => n.toString(8).padStart(len - 1, '0') + '\0';
  put(name, 0, 100);
  put(oct(mode, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(size, 12), 124, 12);
  put(oct(Math.floor(Date.now() / 1000), 12), 136, 12);
  put('        ', 148, 8);
  put(type, 156, 1);
  put(link, 157, 100);
  put('ustar\u000000', 257, 8);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

/** A tar of `entries`: { name, type: 'dir'|'file'|'link'|'symlink', data?, link? }. */
function tar(entries) {
  const parts = [];
  for (const e of entries) {
    const type = { file: '0', link: '1', symlink: '2', dir: '5' }[e.type];
    const data = Buffer.from(e.data ?? '');
    parts.push(header(e.name, type, { size: data.length, link: e.link, mode: e.type === 'dir' ? 0o755 : 0o644 }));
    if (data.length) parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A proxy that answers every archive download with `archive`. */
async function archiveServed(dir, archive) {
  const proxy = await archiveProxy(dir, (res) => {
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    res.end(archive);
  });
  return { ...proxy, served: proxy.intercepted };
}

/** A run in a child process whose daemon is reached through `proxy`; extracts `out` to `to`. */
async function runThrough(proxy, to) {
  const request = { image: BUSYBOX, command: 'true', extract: [{ from: 'out', to }] };
  const r = await runNode([path.join(FIXTURES, 'run-with-options.mjs'), '{}', JSON.stringify(request)],
    { env: { ...process.env, DOCKER_HOST: `unix://${proxy.socket}` } });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  deleteState(out.id);
  assertGone(out.id);
  assert.ok(out.result, r.stdout);
  return out.result.extracted[0];
}

test('hardlinks made with ln in the container come back as regular files with their content', async (t) => {
  const root = tmpdir('lr-hardlinks-');
  const [dirTo, fileTo, otherTo] = ['dir', 'file', 'other'].map((n) => path.join(root, n));
  try {
    const lines = [];
    const ex = new DockerRunner().run({
      image: BUSYBOX,
      command: [
        'mkdir -p out/sub',
        'echo real > out/real', 'chmod 755 out/real', 'ln out/real out/hard',
        'echo zed > out/zz', 'ln out/zz out/aa',
        'echo deep > out/sub/x', 'ln out/sub/x out/y', 'ln out/real out/sub/h2',
        'stat -c "%n %h" out/real out/zz out/sub/x',
      ].join(' && '),
      extract: [{ from: 'out', to: dirTo }, { from: 'out/hard', to: fileTo }, { from: 'out/aa', to: otherTo }],
      onLog: (l) => lines.push(l),
    });
    const id = scopeOf(t).track(ex.id);
    const r = await ex.result;
    assert.equal(r.success, true, JSON.stringify(r));
    assert.deepEqual(lines, ['out/real 3', 'out/zz 2', 'out/sub/x 2'], 'the links existed in the container');
    assert.deepEqual(r.extracted.map((e) => e.status), ['ok', 'ok', 'ok'], JSON.stringify(r.extracted));
    assert.deepEqual(tree(dirTo), [
      'aa:file:1', 'hard:file:1', 'real:file:1', 'sub:dir', 'sub/h2:file:1', 'sub/x:file:1', 'y:file:1', 'zz:file:1',
    ]);
    const read = (...p) => fs.readFileSync(path.join(...p), 'utf8');
    for (const n of ['real', 'hard', 'sub/h2']) assert.equal(read(dirTo, n), 'real\n', n);
    for (const n of ['zz', 'aa']) assert.equal(read(dirTo, n), 'zed\n', n);
    for (const n of ['sub/x', 'y']) assert.equal(read(dirTo, n), 'deep\n', n);
    assert.ok(fs.statSync(path.join(dirTo, 'hard')).mode & 0o100, 'the link keeps its file\'s execute bit');
    // Separate files, not links to each other.
    fs.writeFileSync(path.join(dirTo, 'real'), 'changed\n');
    assert.equal(read(dirTo, 'hard'), 'real\n');
    // A single hardlinked file extracts as that file.
    assert.deepEqual(tree(fileTo), ['hard:file:1']);
    assert.equal(read(fileTo, 'hard'), 'real\n');
    assert.deepEqual(tree(otherTo), ['aa:file:1']);
    assert.equal(read(otherTo, 'aa'), 'zed\n');
    assertGone(id);
  } finally {
    rmrf(root);
  }
});

test('an archive that lists the link before its file still gives both files; hostile hardlinks write nothing outside to', async () => {
  // Docker lists a file before its links; a hostile or broken daemon need
  // not. The archive is served by a proxy in front of the daemon.
  const root = tmpdir('lr-hardlinks-hostile-');
  const tag = crypto.randomBytes(4).toString('hex');
  const passwd = fs.readFileSync('/etc/passwd');
  const parent = path.join(root, 'parent');
  const to = path.join(parent, 'to');
  fs.mkdirSync(parent);
  const proxy = await archiveServed(root, tar([
    { name: 'out/', type: 'dir' },
    { name: 'out/hard', type: 'link', link: 'out/real' },
    { name: 'out/real', type: 'file', data: 'real\n' },
    { name: 'out/pw', type: 'link', link: '/etc/passwd' },
    { name: 'out/up', type: 'link', link: `../../outside-${tag}` },
    { name: 'out/dot', type: 'link', link: '..' },
    { name: 'out/self', type: 'link', link: 'out' },
    { name: 'out/sl', type: 'symlink', link: '/etc' },
    { name: 'out/viasl', type: 'link', link: 'out/sl/passwd' },
    { name: 'out/sub/', type: 'dir' },
    { name: 'out/sub/again', type: 'link', link: 'out/hard' },
    { name: 'out/late', type: 'link', link: 'out/sub/later' },
    { name: 'out/sub/later', type: 'file', data: 'later\n' },
  ]));
  try {
    const e = await runThrough(proxy, to);
    assert.equal(proxy.served(), 1, 'the crafted archive was served');
    assert.equal(e.status, 'ok', JSON.stringify(e));
    assert.deepEqual(tree(to), ['hard:file:1', 'late:file:1', 'real:file:1', 'sub:dir', 'sub/again:file:1', 'sub/later:file:1']);
    assert.equal(fs.readFileSync(path.join(to, 'hard'), 'utf8'), 'real\n');
    assert.equal(fs.readFileSync(path.join(to, 'sub/again'), 'utf8'), 'real\n');
    assert.equal(fs.readFileSync(path.join(to, 'late'), 'utf8'), 'later\n');
    assert.deepEqual(fs.readdirSync(parent), ['to'], 'nothing beside to');
    assert.equal(fs.existsSync(path.join(root, `outside-${tag}`)), false);
    assert.deepEqual(fs.readFileSync('/etc/passwd'), passwd, '/etc/passwd untouched');
  } finally {
    await proxy.close();
    rmrf(root);
  }
});

test('an archive entry named with .. fails that entry and writes nothing outside to', async () => {
  const root = tmpdir('lr-hardlinks-dotdot-');
  const tag = crypto.randomBytes(4).toString('hex');
  const parent = path.join(root, 'parent');
  const to = path.join(parent, 'to');
  fs.mkdirSync(parent);
  const proxy = await archiveServed(root, tar([
    { name: 'out/', type: 'dir' },
    { name: 'out/real', type: 'file', data: 'real\n' },
    { name: `out/../../evil-${tag}`, type: 'link', link: 'out/real' },
    { name: `out/../../../evil2-${tag}`, type: 'file', data: 'evil\n' },
  ]));
  try {
    const e = await runThrough(proxy, to);
    assert.equal(e.status, 'error', JSON.stringify(e));
    assert.match(e.error, /unsafe|traversal/);
    assert.deepEqual(fs.readdirSync(parent).filter((n) => n !== 'to'), [], 'nothing beside to');
    for (const p of [root, path.dirname(root)]) {
      assert.deepEqual(fs.readdirSync(p).filter((n) => n.includes(tag)), [], `nothing in ${p}`);
    }
  } finally {
    await proxy.close();
    rmrf(root);
  }
});
