// One attached run whose output is a flood. argv[2]: JSON { command, char }.
// Counts every byte and line onLog receives (checking each line is made of
// `char` only), samples this process's RSS every 20 ms, and prints
// {event:'done', bytes, lines, bad, ms, rssStart, rssPeak, rssEnd, result}.
import fs from 'node:fs';
import { DockerRunner } from 'light-runner';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
globalThis.gc?.();
const rssStart = rss();
let rssPeak = rssStart;
const sampler = setInterval(() => {
  rssPeak = Math.max(rssPeak, rss());
}, 20);
let bytes = 0;
let lines = 0;
let bad = 0;
const code = cfg.char.charCodeAt(0);
const t0 = Date.now();
let result;
try {
  result = await new DockerRunner({ memory: '256m' }).run({
    image: 'light-runner-busybox:latest',
    command: cfg.command,
    timeout: 0,
    onLog: (l) => {
      bytes += l.length;
      lines++;
      // Spot-check every line's ends and a middle byte (a full scan would
      // measure the check, not the package).
      if (l.charCodeAt(0) !== code || l.charCodeAt(l.length - 1) !== code || l.charCodeAt(l.length >> 1) !== code) bad++;
    },
  }).result;
} catch (e) {
  result = { error: `${e.code} ${e.message}` };
}
const ms = Date.now() - t0;
clearInterval(sampler);
rssPeak = Math.max(rssPeak, rss());
process.stdout.write(`${JSON.stringify({ event: 'done', bytes, lines, bad, ms, rssStart, rssPeak, rssEnd: rss(), result })}\n`);
