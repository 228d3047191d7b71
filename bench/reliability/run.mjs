// The reliability suite: hosts killed at random moments, the daemon stopped
// under running runs, floods, hostile jobs, full disks, a soak, and two
// machines sharing a state directory. Each probe checks its expectations;
// the suite exits 1 if any is broken.
//
//   npm run reliability                 full run, writes RELIABILITY.md
//   npm run reliability -- --short      the CI version (small N), report on stdout
//   options: --only=a,b (probe keys), --seed=N, --out=FILE, --kill=N
//
// Needs root (tmpfs mounts, unshare, a private dockerd for the daemon
// probes, which never touch the shared daemon) and the images of
// scripts/build-test-images.sh.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { LoadSampler, ROOT, rmrf, rng, tmp } from './lib.mjs';
import { hostKillAttached, launcherKillDetached, twoMachines } from './probes-kill.mjs';
import { daemonRestart } from './probes-daemon.mjs';
import { floods, hostileJobs, soak } from './probes-load.mjs';
import { extractFull, stateDirUnwritable } from './probes-fs.mjs';

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
  return m ? [m[1], m[2] ?? true] : [a, true];
}));
const short = Boolean(args.short);
const seed = Number(args.seed ?? Date.now() % 1e9);
const random = rng(seed);
const only = args.only ? new Set(String(args.only).split(',')) : null;
const out = args.out ?? (short ? null : path.join(ROOT, 'RELIABILITY.md'));

const P = short ? {
  kill: 6, width: 3, machines: 1, stale: 3000, daemons: [['default', 'SIGTERM'], ['live-restore', 'SIGTERM']], inflight: 1,
  flood: [32 << 20, 8, 500_000], files: 5000, soak: [40, 3, 10],
} : {
  kill: 120, width: 3, machines: 5, stale: 6000,
  daemons: [['default', 'SIGTERM'], ['live-restore', 'SIGTERM'], ['default', 'SIGKILL'], ['live-restore', 'SIGKILL']], inflight: 3,
  flood: [1 << 30, 200, 50_000_000], files: 100_000, soak: [2000, 200, 10],
};

// --kill=N overrides the number of kills (e.g. to chase a rare leak).
if (args.kill) P.kill = Number(args.kill);

const probes = [
  ['attached-kill', (w) => hostKillAttached({ n: P.kill, width: P.width, random, work: w })],
  ['detached-kill', (w) => launcherKillDetached({ n: P.kill, width: P.width, random, work: w })],
  ...P.daemons.map(([mode, signal]) => [`dockerd-${mode}-${signal}`, (w) => daemonRestart({
    work: w, liveRestore: mode === 'live-restore', signal, attached: P.inflight, detached: P.inflight,
  })]),
  ['floods', (w) => floods({ work: w, gib: P.flood[0], lineMb: P.flood[1], oneByteLines: P.flood[2] })],
  ['hostile', (w) => hostileJobs({ work: w, files: P.files })],
  ['extract-full', (w) => extractFull({ work: w })],
  ['state-dir', (w) => stateDirUnwritable({ work: w })],
  ['soak', (w) => soak({ work: w, sequential: P.soak[0], rounds: P.soak[1], width: P.soak[2] })],
  ['two-machines', (w) => twoMachines({ n: P.machines, work: w, staleMs: P.stale })],
];

const load = new LoadSampler(short ? 2000 : 10_000);
const started = new Date();
const rows = [];
for (const [key, fn] of probes) {
  if (only && !only.has(key)) continue;
  const work = tmp(`lr-rel-${key}-`);
  const t0 = Date.now();
  process.stderr.write(`== ${key} ...\n`);
  let row;
  try {
    row = await fn(work);
  } catch (e) {
    row = { probe: key, n: '-', outcomes: `probe failed: ${e.stack ?? e}`, leaks: '?', host: '?', figures: '-', expect: [{ what: 'the probe runs to its end', ok: false, detail: String(e.message ?? e) }] };
  }
  row.key = key;
  row.ms = Date.now() - t0;
  row.load = load.between(t0, Date.now() + 1);
  rows.push(row);
  rmrf(work);
  const bad = row.expect.filter((x) => !x.ok);
  process.stderr.write(`   ${bad.length ? 'FAILED' : 'ok'} in ${(row.ms / 1000).toFixed(0)} s${bad.length ? `: ${bad.map((b) => `${b.what} ${b.detail ?? ''}`).join(' | ')}` : ''}\n`);
}
load.sample();
load.stop();

const esc = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
const sh = (cmd, a) => {
  try {
    return execFileSync(cmd, a, { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
};
const all = load.between(started.getTime(), Date.now() + 1);
const watchdog = fs.existsSync(path.join(ROOT, 'light-runner-watchdog')) ? 'native watchdog' : 'node watchdog (native not built)';
const addon = fs.readdirSync(ROOT).filter((f) => f.endsWith('.node')).map((f) => `${f} ${(fs.statSync(path.join(ROOT, f)).size / 1e6).toFixed(1)} MB`).join(', ');
const fmtLoad = (l) => (l ? `load1 ${l.load1.min.toFixed(1)}–${l.load1.max.toFixed(1)} (avg ${l.load1.avg.toFixed(1)}), rustc ${l.rustc.max}, node ${l.node.max}, running containers ${l.containers.min}–${l.containers.max}` : '-');
const failed = rows.filter((r) => r.expect.some((x) => !x.ok));

const md = [];
md.push(`# Reliability${short ? ' (short run)' : ''}`);
md.push('');
md.push(`Written by \`npm run reliability${short ? ' -- --short' : ''}\` (bench/reliability/) in one run, ${started.toISOString()} → ${new Date().toISOString()}, seed ${seed}. Every figure below comes from that run; each probe checks its expectations and the suite exits 1 if one is broken.`);
md.push('');
md.push(`Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, Docker ${sh('docker', ['version', '--format', '{{.Server.Version}}'])}, Node ${process.version}; addon ${addon}, ${watchdog}.`);
md.push(`Shared with other agents compiling Rust and running Docker tests during the run: ${fmtLoad(all)} (sampled every ${short ? 2 : 10} s). Timings are under that load.`);
md.push('');
md.push('| probe | N | outcomes | leaks | host | figures | expectations |');
md.push('|---|---|---|---|---|---|---|');
for (const r of rows) {
  const ok = r.expect.every((x) => x.ok);
  md.push(`| ${esc(r.probe)} | ${r.n} | ${esc(r.outcomes)} | ${r.leaks} | ${esc(r.host)} | ${esc(r.figures)}; ${(r.ms / 1000).toFixed(0)} s | ${ok ? 'all met' : `**BROKEN**: ${esc(r.expect.filter((x) => !x.ok).map((x) => x.what).join('; '))}`} |`);
}
md.push('');
md.push('## Expectations checked');
md.push('');
for (const r of rows) {
  md.push(`- **${r.probe}** (${fmtLoad(r.load)})`);
  for (const x of r.expect) md.push(`  - ${x.ok ? '✓' : '✗'} ${x.what}${!x.ok && x.detail ? ` — ${x.detail}` : ''}`);
  for (const d of r.details ?? []) md.push(`  - detail: ${d}`);
}
md.push('');
md.push('## How each probe works');
md.push('');
md.push(`- Kills are SIGKILLs at moments drawn uniformly over one whole host's life (measured first), from a seeded PRNG (\`--seed\`). Leaks are counted per run id (every id that got a state file in the probe's private state directory): a labelled container or volume still there after the wait given, before anything force-removes it.
- Detached collection runs in another process (\`DockerRunner.attach\`); "started" means the daemon emitted a \`start\` event for the container.
- The dockerd probes run on a private dockerd (own data root, exec root, socket and bridge; never \`--bridge=none\`, which deletes the host's docker0), stopped with SIGTERM (it stops its containers unless live-restore) or SIGKILL, then started again; \`cleanupOrphanStates()\` and \`reapOrphans()\` (with \`LIGHT_RUNNER_REAP_AGE_MS=0\`) run before leaks are counted.
- Floods count every byte and line \`onLog\` receives in a host of their own and sample its RSS every 20 ms.
- The two "machines" are node processes under \`unshare --uts --pid\` with their own hostnames, on the same daemon and state directory; the claim staleness is shortened with \`LIGHT_RUNNER_CLAIM_STALE_MS\`.`);
md.push('');
const text = md.join('\n');
if (out) {
  fs.writeFileSync(out, `${text}\n`);
  process.stderr.write(`wrote ${out}\n`);
} else {
  process.stdout.write(`${text}\n`);
}
process.exit(failed.length ? 1 : 0);
