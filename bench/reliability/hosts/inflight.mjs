// Runs in flight across a daemon stop. argv[2]: JSON { attached, detached,
// command, detachedCommand, extractTo, setupDir }. Starts the runs, prints
// {event:'running'} once every container runs, then on a 'setup' line on
// stdin starts one attached and one detached run seeding `setupDir` (in
// setup when the daemon stops), and prints {event:'result', id, kind, ...}
// for every run, then {event:'done'}.
import { execFileSync } from 'node:child_process';
import readline from 'node:readline';
import { DockerRunner, readState } from 'light-runner';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const runner = new DockerRunner();
const runs = [];
const started = new Set();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function track(kind, ex) {
  out({ event: 'id', id: ex.id, kind });
  runs.push(ex.result.then(
    (result) => out({ event: 'result', id: ex.id, kind, result, state: readState(ex.id) }),
    (e) => out({ event: 'result', id: ex.id, kind, code: e.code, message: e.message, state: readState(ex.id) }),
  ));
}

for (let i = 0; i < cfg.attached; i++) {
  const ex = runner.run({
    image: 'light-runner-busybox:latest',
    command: cfg.command,
    onLog: (l) => {
      if (l === 'started') started.add(ex.id);
    },
  });
  track('attached', ex);
}
const detached = [];
for (let i = 0; i < cfg.detached; i++) {
  const ex = runner.run({
    image: 'light-runner-busybox:latest',
    command: cfg.detachedCommand,
    extract: [{ from: 'r.txt', to: `${cfg.extractTo}/${i}` }],
    detached: true,
  });
  detached.push(ex.id);
  track('detached', ex);
}
const isRunning = (id) => {
  try {
    return execFileSync('docker', ['container', 'inspect', '-f', '{{.State.Running}}', id], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() === 'true';
  } catch {
    return false;
  }
};
for (;;) {
  if (started.size === cfg.attached && detached.every(isRunning)) break;
  await sleep(100);
}
out({ event: 'running' });
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', () => {
  if (!cfg.setupDir) return;
  track('attached-in-setup', runner.run({ image: 'light-runner-busybox:latest', command: 'true', dir: cfg.setupDir }));
  track('detached-in-setup', runner.run({ image: 'light-runner-busybox:latest', command: 'true', dir: cfg.setupDir, detached: true }));
  out({ event: 'setup-started' });
});
// Every run settles: none may hang.
await sleep(50);
for (;;) {
  const n = runs.length;
  await Promise.all(runs);
  if (runs.length === n) break;
}
rl.close();
out({ event: 'done' });
