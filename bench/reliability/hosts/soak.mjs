// Many runs in one host. argv[2]: JSON { sequential, rounds, width }.
// Samples RSS and open fds (after a GC) as it goes; prints
// {event:'sample', phase, runs, rss, fds} and {event:'done', ids, failures, ms}.
import fs from 'node:fs';
import { DockerRunner } from 'light-runner';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
const fds = () => fs.readdirSync('/proc/self/fd').length;
const runner = new DockerRunner();
const ids = [];
let failures = 0;
let runs = 0;
// How long after its own `duration` each result settled (ms).
const gaps = [];
// What went wrong, for the first few failures.
const failed = [];
const sample = (phase) => {
  globalThis.gc?.();
  out({ event: 'sample', phase, runs, rss: rss(), fds: fds(), at: Date.now() });
};
async function one(i) {
  let lines = 0;
  const t0 = Date.now();
  const ex = runner.run({ image: 'light-runner-busybox:latest', command: `echo line ${i}`, onLog: () => lines++ });
  ids.push(ex.id);
  try {
    const r = await ex.result;
    gaps.push(Date.now() - t0 - r.duration);
    if (!r.success || lines !== 1) {
      failures++;
      if (failed.length < 10) failed.push({ id: ex.id, lines, result: r });
    }
  } catch (e) {
    failures++;
    if (failed.length < 10) failed.push({ id: ex.id, lines, code: e.code, message: e.message });
  }
  runs++;
}
const t0 = Date.now();
sample('sequential');
for (let i = 0; i < cfg.sequential; i++) {
  await one(i);
  if ((i + 1) % Math.max(1, Math.floor(cfg.sequential / 20)) === 0) sample('sequential');
}
const seqMs = Date.now() - t0;
const t1 = Date.now();
sample('concurrent');
for (let r = 0; r < cfg.rounds; r++) {
  await Promise.all(Array.from({ length: cfg.width }, (_, k) => one(r * cfg.width + k)));
  if ((r + 1) % Math.max(1, Math.floor(cfg.rounds / 20)) === 0) sample('concurrent');
}
gaps.sort((a, b) => a - b);
const gap = { p50: gaps[Math.floor(gaps.length / 2)], p99: gaps[Math.floor(gaps.length * 0.99)], max: gaps[gaps.length - 1] };
out({ event: 'done', ids, failures, failed, seqMs, concMs: Date.now() - t1, gap });
