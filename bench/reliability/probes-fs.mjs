// The host's disk says no: an extract destination that is full, and a state
// directory that cannot be written (read-only, in the way, full).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { BUSYBOX, docker, dockerTry, forceRemove, host, rmrf, settleLeaks, sleep, stateIds, survived } from './lib.mjs';

function mountTmpfs(dir, opts) {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
}

function umount(dir) {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {}
}

/** Every file below `dir` (relative), directories excluded. */
function filesIn(dir) {
  const out = [];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  try {
    walk('');
  } catch {}
  return out;
}

export async function extractFull({ work }) {
  const full = path.join(work, 'full');
  const roomy = path.join(work, 'roomy');
  const stateDir = path.join(work, 'state');
  mountTmpfs(full, 'size=1m,mode=0755');
  try {
    const h = host('attached', {
      request: {
        command: 'mkdir -p /app/out /app/small && head -c 4194304 /dev/zero > /app/out/big.bin && echo kept > /app/small/s.txt',
        extract: [{ from: 'out', to: full }, { from: 'out/big.bin', to: full }, { from: 'small', to: roomy }],
      },
    }, { env: { LIGHT_RUNNER_STATE_DIR: stateDir } });
    const end = await Promise.race([h.event('result'), h.event('rejected')]).catch((e) => ({ error: e.message }));
    const exit = await h.exited;
    const r = end.result;
    const left = filesIn(full);
    const ids = stateIds(stateDir);
    const leaks = await settleLeaks(ids, 10_000);
    forceRemove(leaks);
    const ex = r?.extracted ?? [];
    const small = fs.existsSync(path.join(roomy, 's.txt')) && fs.readFileSync(path.join(roomy, 's.txt'), 'utf8') === 'kept\n';
    return {
      probe: 'extract destination full (a 1 MiB tmpfs as `to`, a 4 MiB file)',
      n: 1,
      outcomes: `result ${r ? `exit ${r.exitCode}, success ${r.success}` : JSON.stringify(end)}; entries ${ex.map((e) => `${e.from} → ${e.status}${e.error ? ` (${e.error})` : ''}`).join('; ')}; files left in the full tmpfs: ${left.length ? left.join(', ') : 'none'}`,
      leaks: leaks.length,
      host: survived(exit) ? 'survived' : 'DIED',
      figures: '-',
      expect: [
        { what: 'the run\'s result is intact (exit 0, success)', ok: r?.success === true },
        { what: 'the entries that did not fit report an error', ok: ex[0]?.status === 'error' && ex[1]?.status === 'error' },
        { what: 'no partial file stays in the full destination', ok: left.length === 0, detail: left.join(' ') },
        { what: 'the other entry is extracted whole', ok: ex[2]?.status === 'ok' && small },
        { what: '0 leaks; the host survives', ok: leaks.length === 0 && survived(exit) },
      ],
    };
  } finally {
    umount(full);
    rmrf(full);
    rmrf(roomy);
    rmrf(stateDir);
  }
}

/** Image creations of `image` seen while `fn` runs. */
async function createsDuring(image, fn) {
  const since = Math.floor(Date.now() / 1000) - 1;
  const r = await fn();
  await sleep(1500);
  const until = Math.ceil(Date.now() / 1000) + 1;
  const ev = docker('events', '--since', String(since), '--until', String(until), '--filter', 'type=container',
    '--filter', `image=${image}`, '--format', '{{.Action}}').split('\n').filter(Boolean);
  const vol = docker('events', '--since', String(since), '--until', String(until), '--filter', 'type=volume',
    '--filter', 'event=create', '--format', '{{.Actor.ID}}').split('\n').filter(Boolean);
  return { r, creates: ev.filter((a) => a === 'create').length, volumes: vol, };
}

export async function stateDirUnwritable({ work }) {
  // A tag of its own, so the daemon's events say whether anything was created.
  const image = `light-runner-rel-probe:${process.pid}`;
  docker('tag', BUSYBOX, image);
  const cases = [];
  const ro = path.join(work, 'ro');
  const fullDir = path.join(work, 'full');
  const fileInWay = path.join(work, 'file');
  fs.writeFileSync(fileInWay, 'not a directory\n');
  mountTmpfs(ro, 'ro,size=64k');
  mountTmpfs(fullDir, 'size=64k');
  try {
    // Fill it: nothing more fits.
    try {
      fs.writeFileSync(path.join(fullDir, 'filler'), Buffer.alloc(1 << 20));
    } catch {}
    const before = new Set(fs.readdirSync(fullDir));
    const dirs = [
      { name: 'read-only', dir: path.join(ro, 'state') },
      { name: 'read-only (dir exists)', dir: ro },
      { name: 'a file in the way', dir: path.join(fileInWay, 'state') },
      { name: 'full', dir: fullDir },
    ];
    for (const d of dirs) {
      for (const detached of [false, true]) {
        const h = host('try-run', { image, detached }, { env: { LIGHT_RUNNER_STATE_DIR: d.dir } });
        const { r, creates, volumes } = await createsDuring(image, async () => {
          const e = await h.event('done').catch((err) => ({ error: err.message }));
          await h.exited;
          return e;
        });
        // `.lock` is the directory's lock file, there in every state dir.
        const stray = d.name === 'full' ? fs.readdirSync(fullDir).filter((f) => !before.has(f) && f !== '.lock') : [];
        cases.push({
          name: `${d.name}, ${detached ? 'detached' : 'attached'}`,
          threw: r.threw,
          message: r.message,
          creates,
          volumes: volumes.length,
          stray,
          exit: h.exit,
          ok: r.threw === true && /state file/.test(r.message ?? '') && creates === 0 && stray.length === 0 && survived(h.exit),
        });
      }
    }
  } finally {
    umount(ro);
    umount(fullDir);
    rmrf(ro);
    rmrf(fullDir);
    rmrf(fileInWay);
    dockerTry('rmi', image);
  }
  return {
    probe: 'state directory unwritable (read-only, a file in the way) or full',
    n: cases.length,
    outcomes: cases.map((c) => `${c.name}: ${c.threw ? `run() threw "${c.message}"` : `did not throw ${JSON.stringify(c)}`}`).join('; '),
    leaks: cases.reduce((a, c) => a + c.creates, 0),
    host: cases.every((c) => survived(c.exit)) ? 'survived' : 'DIED',
    figures: '-',
    expect: [
      { what: 'run() fails synchronously, naming the state file', ok: cases.every((c) => c.threw && /state file/.test(c.message ?? '')) },
      { what: 'nothing started (no container created; no temp file left in the full dir)', ok: cases.every((c) => c.creates === 0 && c.stray.length === 0), detail: JSON.stringify(cases.filter((c) => c.creates || c.stray.length)) },
      { what: 'the host survives', ok: cases.every((c) => survived(c.exit)) },
    ],
  };
}

export { spawn };
