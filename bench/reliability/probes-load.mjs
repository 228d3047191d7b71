// Floods of output, hostile jobs, and a soak: the host's memory, file
// descriptors and survival, and every byte accounted for.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { MiB, fmtTally, forceRemove, host, mib, rmrf, settleLeaks, stateIds, survived, tally } from './lib.mjs';

const LINE_1K = 'yes "$(head -c 1023 /dev/zero | tr \'\\000\' x)"';

export async function floods({ work, gib, lineMb, oneByteLines }) {
  const cases = [
    { name: `${mib(gib)} MiB of 1 KiB lines`, command: `${LINE_1K} | head -c ${gib}`, char: 'x', bytes: (gib / 1024) * 1023, lines: gib / 1024 },
    { name: `one ${lineMb} MB line (no newline)`, command: `head -c ${lineMb * 1e6} /dev/zero | tr '\\000' y`, char: 'y', bytes: lineMb * 1e6, lines: Math.ceil((lineMb * 1e6) / MiB) },
    { name: `${(oneByteLines / 1e6).toFixed(1)} M one-byte lines`, command: `yes z | head -n ${oneByteLines}`, char: 'z', bytes: oneByteLines, lines: oneByteLines },
  ];
  const stateDir = path.join(work, 'state');
  const rows = [];
  for (const c of cases) {
    const h = host('flood', { command: c.command, char: c.char }, { env: { LIGHT_RUNNER_STATE_DIR: stateDir }, wrap: [] });
    const done = await h.event('done', 1_800_000).catch((e) => ({ error: e.message }));
    const exit = await h.exited;
    const ok = done.bytes === c.bytes && done.lines === c.lines && done.bad === 0 && done.result?.success === true;
    // The floor: the same output through the docker CLI's attach, counted by wc.
    const f0 = Date.now();
    execFileSync('sh', ['-c', `docker run --rm --network none light-runner-busybox:latest sh -c '${c.command.replace(/'/g, "'\\''")}' | wc -c`], { stdio: 'ignore' });
    const floorMs = Date.now() - f0;
    rows.push({ c, done, exit, ok, floorMs });
  }
  const ids = stateIds(stateDir);
  const left = await settleLeaks(ids, 10_000);
  forceRemove(left);
  rmrf(stateDir);
  return {
    probe: 'log floods through onLog',
    n: cases.length,
    outcomes: rows.map((r) => `${r.c.name}: ${r.ok ? 'every byte and line delivered' : `WRONG ${r.done.bytes}/${r.c.bytes} bytes, ${r.done.lines}/${r.c.lines} lines, ${r.done.bad} bad, ${JSON.stringify(r.done.result ?? r.done.error)}`}`).join('; '),
    leaks: left.length,
    host: rows.every((r) => survived(r.exit)) ? 'survived' : 'DIED',
    figures: rows.map((r) => `${r.c.name}: ${(r.done.ms / 1000).toFixed(1)} s from run() to result (\`docker run … | wc -c\` of the same output: ${(r.floorMs / 1000).toFixed(1)} s), ${(r.done.bytes / MiB / (r.done.ms / 1000)).toFixed(1)} MiB/s, ${(r.done.lines / (r.done.ms / 1000) / 1e6).toFixed(2)} M lines/s, host RSS +${mib(r.done.rssPeak - r.done.rssStart)} MiB at peak (${mib(r.done.rssStart)} → ${mib(r.done.rssPeak)})`).join('; '),
    expect: [
      { what: 'every byte and every line accounted for', ok: rows.every((r) => r.ok) },
      { what: 'host RSS growth under 64 MiB', ok: rows.every((r) => r.done.rssPeak - r.done.rssStart < 64 * MiB) },
      { what: 'the host survives; 0 leaks', ok: rows.every((r) => survived(r.exit)) && left.length === 0 },
    ],
  };
}

/** One attached run in its own host; resolves with what the host printed. */
async function attachedIn(stateDir, request, options, inputBytes) {
  const h = host('attached', { request, options, inputBytes }, { env: { LIGHT_RUNNER_STATE_DIR: stateDir } });
  const end = await Promise.race([h.event('result', 600_000), h.event('rejected', 600_000)]).catch((e) => ({ error: e.message }));
  const exit = await h.exited;
  return { end, exit };
}

export async function hostileJobs({ work, files }) {
  const stateDir = path.join(work, 'state');
  const out = path.join(work, 'many');
  const rows = [];
  // Run one at a time: the fork bomb must not share the machine with the rest.
  const oom = await attachedIn(stateDir, { command: 'x=a; while true; do x="$x$x"; done' }, { memory: '16m' });
  rows.push({ name: 'memory hog (16m cap)', ...oom, ok: oom.end.result?.oomKilled === true && oom.end.result.exitCode === 137, what: `exit ${oom.end.result?.exitCode}, oomKilled ${oom.end.result?.oomKilled}` });
  const bomb = await attachedIn(stateDir, { command: 'b() { b | b & }; b; sleep 5', timeout: 8000 });
  rows.push({ name: 'fork bomb (PidsLimit 100, 8 s timeout)', ...bomb, ok: bomb.end.result !== undefined, what: `exit ${bomb.end.result?.exitCode}, timedOut ${bomb.end.result?.timedOut}` });
  const stdin = await attachedIn(stateDir, { command: 'exec 0<&-; echo started; sleep 1; echo fine' }, undefined, 8 * MiB);
  rows.push({ name: 'closes stdin at once (8 MiB input)', ...stdin, ok: stdin.end.result?.success === true, what: `exit ${stdin.end.result?.exitCode}` });
  const t0 = Date.now();
  const many = await attachedIn(stateDir, {
    command: `mkdir -p /app/out && cd /app/out && seq ${files} | sed 's/^/f/' | xargs touch && echo last > f${files}`,
    extract: [{ from: 'out', to: out }],
    timeout: 0,
  });
  const took = Date.now() - t0;
  let count = 0;
  try {
    count = fs.readdirSync(out).length;
  } catch {}
  rows.push({ name: `${files} files extracted`, ...many, ok: many.end.result?.extracted?.[0]?.status === 'ok' && count === files, what: `${count} files in ${took} ms, ${JSON.stringify(many.end.result?.extracted?.[0]?.bytes)} archive bytes` });
  rmrf(out);
  const ids = stateIds(stateDir);
  const left = await settleLeaks(ids, 15_000);
  forceRemove(left);
  rmrf(stateDir);
  return {
    probe: 'hostile jobs: OOM, fork bomb, stdin closed at once, 100,000 files for extract',
    n: rows.length,
    outcomes: rows.map((r) => `${r.name}: ${r.what}`).join('; '),
    leaks: left.length,
    host: rows.every((r) => survived(r.exit)) ? 'survived' : `DIED ${rows.filter((r) => !survived(r.exit)).map((r) => r.name).join(', ')}`,
    figures: rows.map((r) => `${r.name}: ${r.end.result ? `${r.end.result.duration} ms` : r.end.error ?? r.end.code}`).join('; '),
    expect: [
      ...rows.map((r) => ({ what: r.name, ok: r.ok, detail: JSON.stringify(r.end) })),
      { what: 'the host survives every one; 0 leaks', ok: rows.every((r) => survived(r.exit)) && left.length === 0 },
    ],
  };
}

export async function soak({ work, sequential, rounds, width }) {
  const stateDir = path.join(work, 'state');
  const h = host('soak', { sequential, rounds, width }, { env: { LIGHT_RUNNER_STATE_DIR: stateDir, NODE_OPTIONS: '--expose-gc' } });
  const done = await h.event('done', 4 * 3600_000).catch((e) => ({ error: e.message, ids: [] }));
  const exit = await h.exited;
  const samples = h.events.filter((e) => e.event === 'sample');
  const phase = (p) => samples.filter((s) => s.phase === p);
  // Flat: the last sample against the one after warm-up (10 % in).
  const flat = (list, key, limit) => {
    if (list.length < 3) return { ok: false, text: 'too few samples' };
    const base = list[Math.max(1, Math.floor(list.length / 10))][key];
    const last = list[list.length - 1][key];
    const max = Math.max(...list.map((s) => s[key]));
    return { ok: last - base <= limit, base, last, max };
  };
  const seqRss = flat(phase('sequential'), 'rss', 16 * MiB);
  const conRss = flat(phase('concurrent'), 'rss', 16 * MiB);
  const seqFd = flat(phase('sequential'), 'fds', 4);
  const conFd = flat(phase('concurrent'), 'fds', 4);
  const ids = done.ids ?? stateIds(stateDir);
  const left = await settleLeaks(ids, 20_000);
  forceRemove(left);
  rmrf(stateDir);
  const total = sequential + rounds * width;
  return {
    probe: `soak: ${sequential} sequential runs, then ${rounds} rounds of ${width} concurrent`,
    n: total,
    outcomes: `${total - (done.failures ?? total)} ok, ${done.failures ?? '?'} failed`,
    leaks: left.length,
    host: survived(exit) ? 'survived' : `DIED ${JSON.stringify(exit)}`,
    figures: `sequential ${(sequential / (done.seqMs / 1000)).toFixed(1)} runs/s, RSS ${mib(seqRss.base)} → ${mib(seqRss.last)} MiB (max ${mib(seqRss.max)}), fds ${seqFd.base} → ${seqFd.last} (max ${seqFd.max}); concurrent ${((rounds * width) / (done.concMs / 1000)).toFixed(1)} runs/s, RSS ${mib(conRss.base)} → ${mib(conRss.last)} MiB (max ${mib(conRss.max)}), fds ${conFd.base} → ${conFd.last} (max ${conFd.max}); result settled after its \`duration\` ended: p50 ${done.gap?.p50} ms, p99 ${done.gap?.p99} ms, max ${done.gap?.max} ms (the removal of container and volume)`,
    expect: [
      { what: 'every run succeeds with its line', ok: done.failures === 0, detail: JSON.stringify(done.failed ?? done.error) },
      { what: 'RSS flat (last sample ≤ post-warm-up sample + 16 MiB) in both phases', ok: seqRss.ok && conRss.ok },
      { what: 'open fds flat (≤ +4) in both phases', ok: seqFd.ok && conFd.ok },
      { what: '0 leaks; the host survives', ok: left.length === 0 && survived(exit) },
    ],
  };
}

export { tally, fmtTally };
