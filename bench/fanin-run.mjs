// One side of the bench's fan-in phase (f), in its own process.
// argv[2]: JSON { role, ... }
//  role 'launch':  { detached: bool, ends: [epoch s], image } starts one run
//                  per end time (`sleep` until then) and prints
//                  {event:'ids', t0, ids}; detached runs let the process exit
//                  once every container started, attached ones keep it alive
//                  and print {event:'result', id, t, result} each.
//  role 'collect': { ids: [...], own: [epoch s], image } attaches to every id
//                  and runs one attached run of its own per `own` end time;
//                  prints {event:'attached', t}, {event:'result', id, t,
//                  result} as each resolves, then {event:'done', rss} with
//                  the RSS samples ([epoch ms, bytes], every 250 ms).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
// BENCH_PKG: another build of the package to measure (an A/B against an
// older watcher, for instance); default this checkout.
const { DockerRunner } = require(process.env.BENCH_PKG || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
const cfg = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const command = (end) => `d=$((${end} - $(date +%s))); [ "$d" -gt 0 ] && sleep "$d"; true`;
const runner = new DockerRunner();
const base = { image: cfg.image, network: 'none', timeout: 60 * 60 * 1000 };

function report(ex) {
  ex.result.then(
    (result) => out({ event: 'result', id: ex.id, t: Date.now(), result }),
    (e) => out({ event: 'result', id: ex.id, t: Date.now(), error: String(e.message) }),
  );
}

if (cfg.role === 'launch') {
  const t0 = Date.now();
  const runs = cfg.ends.map((end) => runner.run({ ...base, command: command(end), detached: cfg.detached }));
  out({ event: 'ids', t0, ids: runs.map((r) => r.id) });
  if (!cfg.detached) runs.forEach(report);
} else {
  const rss = [];
  const sample = setInterval(() => rss.push([Date.now(), process.memoryUsage.rss()]), 250);
  const handles = cfg.ids.map((id) => DockerRunner.attach(id));
  const own = cfg.own.map((end) => runner.run({ ...base, command: command(end) }));
  out({ event: 'attached', t: Date.now(), missing: handles.filter((h) => !h).length, own: own.map((r) => r.id) });
  const all = [...handles.filter(Boolean), ...own];
  all.forEach(report);
  await Promise.allSettled(all.map((h) => h.result));
  clearInterval(sample);
  out({ event: 'done', rss });
}
